"""Import a ready stamp set in the candels-blender Zenodo layout (record 2604740).

Layout: ``candels_img.npy`` (N, 128, 128) float32 cleaned stamps, ``candels_seg.npy``
segmentation stamps, ``candels_cat.csv`` with ID, RA, DEC, FIELD (a bytes-like string such
as ``b'GDS'``), mag, mag_err, radius (Re in pixels), z, galtype (sph, sphd, disk, irr),
segval. The central galaxy's label is the segmentation value at the central pixel.
The ground-truth photometry is measured here exactly as in the clean stage.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pandas as pd

from blendphot import io
from blendphot.clean import FLAGS, CleanParams, measure_isolated, touches_edge
from blendphot.errors import InputError

__all__ = ["GALTYPES", "find_stampset", "import_stampset"]

GALTYPES = {"sph": "bulge", "disk": "disk", "sphd": "bulge_disk", "irr": "irregular"}
_FILES = ("candels_img.npy", "candels_seg.npy", "candels_cat.csv")


def find_stampset(root: str | Path) -> Path:
    """The directory under ``root`` that holds the three stamp-set files."""
    root = Path(root)
    for candidate in [root, *sorted(p.parent for p in root.rglob(_FILES[0]))]:
        if all((candidate / f).exists() for f in _FILES):
            return candidate
    raise InputError(f"{root}: no stamp set found (needs {', '.join(_FILES)})")


def _fetch(cfg: dict, workdir: Path) -> Path:
    if cfg.get("path"):
        return find_stampset(cfg["path"])
    from blendphot.download import download

    archive = download(cfg["url"], workdir / Path(cfg["url"].split("?")[0]).name, sha256=cfg.get("sha256"))
    target = workdir / "extracted"
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")  # refuses absolute paths and links out of target
        return find_stampset(target)
    return find_stampset(archive.parent)


def import_stampset(cfg: dict, params: CleanParams, *, zeropoint: float, pixel_scale: float, workdir="."):
    """Returns (images, masks, catalog, dropped) in the clean stage's format."""
    root = _fetch(cfg, Path(workdir))
    images = io.load_array(root / "candels_img.npy", mmap=False).astype(np.float32)
    seg = io.load_array(root / "candels_seg.npy", mmap=False)
    cat = io.read_csv(root / "candels_cat.csv", required=["ID", "FIELD", "mag", "radius", "galtype"])
    if not (len(images) == len(seg) == len(cat)) or images.shape[1:] != seg.shape[1:]:
        raise InputError(f"{root}: stamp set sizes differ: images {images.shape}, segmentation {seg.shape}, "
                         f"catalogue {len(cat)} rows")
    bad_type = ~cat["galtype"].isin(list(GALTYPES))
    if bad_type.any():
        raise InputError(f"{root / 'candels_cat.csv'}: column 'galtype' has unknown value "
                         f"{cat.loc[bad_type, 'galtype'].iat[0]!r} (expected {sorted(GALTYPES)})")
    if not np.isfinite(images).all():
        raise InputError(f"{root / 'candels_img.npy'}: {int((~np.isfinite(images)).sum())} NaN/inf pixels")
    field = cat["FIELD"].astype(str).str.replace(r"^b['\"](.*)['\"]$", r"\1", regex=True).str.strip()
    ra = cat["RA"] if "RA" in cat else pd.Series(np.nan, index=cat.index)
    dec = cat["DEC"] if "DEC" in cat else pd.Series(np.nan, index=cat.index)
    c = images.shape[-1] // 2
    rows, masks, kept, dropped = [], [], [], []
    for k in range(len(cat)):
        gid = f"{field.iat[k]}-{cat['ID'].iat[k]}"
        label = seg[k, c, c]
        if label == 0:
            dropped.append((gid, "central_not_in_segmentation"))
            continue
        central = seg[k] == label
        background = images[k][seg[k] == 0]
        level = float(np.median(background)) if background.size else 0.0
        covered = np.ones(images[k].shape, bool)
        measured = measure_isolated(images[k], covered, params, level=level)
        if isinstance(measured, str):
            dropped.append((gid, measured))
            continue
        flags = {"central_touches_edge": touches_edge(central),
                 "not_isolated_after_cleaning": measured["n_sources_after"] != 1}
        rows.append({"gid": gid, "cls": GALTYPES[cat["galtype"].iat[k]], "field": field.iat[k],
                     "id": cat["ID"].iat[k], "ra": ra.iat[k], "dec": dec.iat[k], "mag": cat["mag"].iat[k],
                     "re_arcsec": float(cat["radius"].iat[k]) * pixel_scale, **measured,
                     "background_level": level, "mask_pixels": int(central.sum()),
                     "qa_flags": ";".join(f for f in FLAGS if flags.get(f))})
        masks.append(central.astype(np.uint8))
        kept.append(k)
    table = pd.DataFrame(rows)
    if len(table):
        table["mag_auto"] = zeropoint - 2.5 * np.log10(table["flux_auto"])
    size = images.shape[-1]
    return (images[kept], np.stack(masks) if masks else np.zeros((0, size, size), np.uint8), table,
            pd.DataFrame(dropped, columns=["gid", "reason"]))
