"""Ready stamp sets in the candels-blender Zenodo layout (record 2604740).

Layout of a stamp set directory (or of a ``.tar.gz`` archive holding one):

``candels_img.npy``
    (N, S, S) float stamps centred on each galaxy, **neighbours still in them**.
``candels_seg.npy``
    (N, S, S) integer segmentation stamps (0 = background); the central galaxy's label is
    the value at the central pixel (``segval``).
``candels_cat.csv``
    one row per stamp: ID, RA, DEC, FIELD (a bytes-like padded string such as
    ``b'COSMOS    '``), mag, mag_err (a copy of mag in the published set), radius (Re in
    pixels), z, galtype (sph, sphd, disk, irr), segval.

The import reads such a set into the survey stage's standard form (:func:`read_stampset`);
the stamps then go through the same selection, neighbour removal and inspection as stamps cut
from mosaics. There is no weight map: :func:`estimate_noise` measures each stamp's noise
robustly from its own background, and :func:`stamp_weights` turns it into an inverse-variance
map. :func:`write_stampset` writes the layout, e.g. to build a set from the mock survey whose
truth is known (:func:`stampset_from_mosaic`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from blendphot import io
from blendphot.clean import CleanParams
from blendphot.errors import InputError
from blendphot.stamps import Stamps

__all__ = [
    "FILES",
    "GALTYPES",
    "SEGMENTATION_PARAMS",
    "StampSet",
    "estimate_noise",
    "find_stampset",
    "mock_stampset",
    "open_stampset",
    "read_stampset",
    "run_import_stampset",
    "run_take_stamps",
    "stamp_weights",
    "stampset_from_mosaic",
    "take_stamps",
    "write_stampset",
]

log = logging.getLogger(__name__)

GALTYPES = {"sph": "bulge", "disk": "disk", "sphd": "bulge_disk", "irr": "irregular"}
FILES = ("candels_img.npy", "candels_seg.npy", "candels_cat.csv")
_COLUMNS = ["ID", "FIELD", "mag", "radius", "galtype"]


@dataclass
class StampSet:
    """A stamp set in standard form.

    images : (N, S, S) float32, as published (neighbours included)
    segmentation : (N, S, S) int32, 0 = background
    catalog : gid, cls, field, id, ra, dec, mag, re_arcsec, z, segval, one row per stamp
    """

    images: np.ndarray
    segmentation: np.ndarray
    catalog: pd.DataFrame


def find_stampset(root: str | os.PathLike) -> Path:
    """The directory under ``root`` that holds the three stamp-set files."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: stamp set not found (no such file or directory)")
    for candidate in [root, *sorted(p.parent for p in root.rglob(FILES[0]))]:
        if all((candidate / f).exists() for f in FILES):
            return candidate
    raise InputError(f"{root}: no stamp set found (needs {', '.join(FILES)} in one directory)")


@contextlib.contextmanager
def open_stampset(source: str | os.PathLike, *, scratch: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield the directory of a stamp set given as a directory, one of its files, or an archive.

    A ``.tar``/``.tar.gz`` or ``.zip`` archive is unpacked into a temporary directory under
    ``scratch`` (removed afterwards); links and paths out of it are refused.
    """
    source = Path(source)
    if source.is_file() and source.name in FILES:
        yield find_stampset(source.parent)
        return
    if source.is_dir() or not source.exists():
        yield find_stampset(source)
        return
    import zipfile

    try:
        is_tar, is_zip = tarfile.is_tarfile(source), zipfile.is_zipfile(source)
    except OSError as exc:
        raise InputError(f"{source}: unreadable stamp-set archive ({exc})") from exc
    if not (is_tar or is_zip):
        raise InputError(f"{source}: not a tar or zip archive, nor a directory holding {', '.join(FILES)}")
    if scratch is not None:
        Path(scratch).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".stampset-") as tmp:
        try:
            if is_tar:
                with tarfile.open(source) as tar:
                    tar.extractall(tmp, filter="data")  # refuses links and paths out of tmp
            else:
                with zipfile.ZipFile(source) as archive:
                    for name in archive.namelist():
                        if name.startswith("/") or ".." in Path(name).parts:
                            raise InputError(f"{source}: archive refused, nothing unpacked from it: member "
                                             f"{name!r} points outside the archive")
                    archive.extractall(tmp)
        except tarfile.FilterError as exc:
            raise InputError(f"{source}: archive refused, nothing unpacked from it: member {exc.tarinfo.name!r} "
                             f"{_refusal(exc)}") from None
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InputError(f"{source}: corrupt or truncated archive ({type(exc).__name__}: {exc})") from exc
        try:
            yield find_stampset(tmp)
        except InputError as exc:
            raise InputError(f"{source}: {str(exc).split(': ', 1)[1]}") from None


def _refusal(exc: tarfile.FilterError) -> str:
    """Why tarfile's ``data`` filter refused a member, in words."""
    if isinstance(exc, (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError)):
        return "is a link that points outside the archive"
    if isinstance(exc, (tarfile.AbsolutePathError, tarfile.OutsideDestinationError)):
        return "would be written outside the archive's folder"
    if isinstance(exc, tarfile.SpecialFileError):
        return "is a device or other special file"
    return f"is not a plain file or folder ({exc})"


def _text(values: pd.Series) -> pd.Series:
    """Text as published: ``b'COSMOS    '`` (the repr of a bytes string, as pandas writes an
    astropy bytes column), ``COSMOS`` or bytes -> ``COSMOS``; whole floats (``12.0``) -> ``12``."""
    def clean(v):
        if isinstance(v, bytes):
            v = v.decode("ascii", "replace")
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        return str(v)

    text = values.map(clean)
    return text.str.replace(r"""^b(['"])(.*)\1$""", r"\2", regex=True).str.strip()


def read_stampset(root: str | os.PathLike, *, pixel_scale: float) -> StampSet:
    """Read and check a stamp set directory (see the module docstring for the layout).

    Raises
    ------
    InputError
        Naming the file (and column) on unreadable files, missing columns, sizes that differ,
        NaN/inf pixels, unknown galaxy types, or duplicate galaxies.
    """
    root = Path(root)
    img_path, seg_path, cat_path = (root / f for f in FILES)
    images = io.load_array(img_path, mmap=False)
    seg = io.load_array(seg_path, mmap=False)
    cat = io.read_csv(cat_path, required=_COLUMNS)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise InputError(f"{img_path}: expected square stamps of shape (N, S, S), got {images.shape}")
    if images.dtype.kind not in "fiu":
        raise InputError(f"{img_path}: expected a numeric array, got dtype {images.dtype}")
    if seg.dtype.kind in "fb" and seg.shape == images.shape:  # labels stored as floats or booleans
        seg = io.native(seg)
        if not (np.isfinite(seg).all() and (np.mod(seg, 1) == 0).all()):
            raise InputError(f"{seg_path}: segmentation labels must be whole numbers (found NaN or fractions)")
        seg = seg.astype(np.int32)
    if seg.shape != images.shape or seg.dtype.kind not in "iu":
        raise InputError(f"{seg_path}: expected integer labels of shape {images.shape}, got {seg.dtype} "
                         f"{seg.shape}")
    if len(cat) != len(images):
        raise InputError(f"{cat_path}: {len(cat)} rows for {len(images)} stamps in {img_path.name}")
    field, ids = _text(cat["FIELD"]), _text(cat["ID"])
    gids = io.galaxy_ids(field, ids, cat_path)
    repeated = gids.duplicated().to_numpy()
    if repeated.any():
        log.warning("%s: %d rows repeat an earlier galaxy (same FIELD and ID, e.g. %s-%s); only the first is kept",
                    cat_path, int(repeated.sum()), field[repeated].iat[0], ids[repeated].iat[0])
        keep = ~repeated
        images, seg = images[keep], seg[keep]
        cat, field, ids, gids = (x[keep].reset_index(drop=True) for x in (cat, field, ids, gids))
    images = io.native(images).astype(np.float32, copy=False)
    if not np.isfinite(images).any():
        raise InputError(f"{img_path}: every pixel is NaN or infinite")
    galtype = _text(cat["galtype"]).str.lower()
    unknown = ~galtype.isin(list(GALTYPES))
    if unknown.any():
        raise InputError(f"{cat_path}: column 'galtype' has unknown value {galtype[unknown].iat[0]!r} "
                         f"(expected {sorted(GALTYPES)})")
    for col in ("mag", "radius"):  # a galaxy without them is kept here and left out by the selection
        values = pd.to_numeric(cat[col], errors="coerce")
        if values.isna().any():
            log.warning("%s: column '%s' has %d non-numeric or NaN values; those galaxies cannot be selected",
                        cat_path, col, int(values.isna().sum()))
    optional = {c: pd.to_numeric(cat[c], errors="coerce") if c in cat else np.nan for c in ("RA", "DEC", "z")}
    c = images.shape[-1] // 2
    table = pd.DataFrame({
        "gid": gids, "cls": galtype.map(GALTYPES), "field": field, "id": ids, "ra": optional["RA"],
        "dec": optional["DEC"], "mag": pd.to_numeric(cat["mag"]),
        "re_arcsec": pd.to_numeric(cat["radius"]) * pixel_scale, "z": optional["z"],
        "segval": seg[:, c, c].astype(np.int64),
    })
    return StampSet(images, io.native(seg).astype(np.int32, copy=False), table)


def estimate_noise(image: np.ndarray, segmentation: np.ndarray | None = None, *, grow: int = 3) -> float:
    """Robust per-pixel noise of one stamp (no weight map needed).

    The pixels outside every segment (grown by ``grow`` pixels) and with data (non-zero) are
    sigma-clipped at 3 sigma and their spread measured with the MAD (scaled to a Gaussian
    sigma), so galaxy wings and the odd undetected source barely move it. Without a
    segmentation the clipping alone rejects the sources. Returns NaN when fewer than 50
    pixels are left.
    """
    from astropy.stats import sigma_clipped_stats

    use = np.isfinite(image) & (image != 0)
    if segmentation is not None:
        from scipy.ndimage import binary_dilation

        sources = segmentation > 0
        empty = ~binary_dilation(sources, iterations=grow) if grow > 0 else ~sources
        if (use & empty).sum() >= 50:
            use &= empty
    if use.sum() < 50:
        return float("nan")
    _, _, std = sigma_clipped_stats(image[use], sigma=3.0, maxiters=10, stdfunc="mad_std")
    return float(std)


def stamp_weights(images: np.ndarray, segmentation: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance weight maps from each stamp's own noise (:func:`estimate_noise`).

    NaN/inf pixels, and pixels exactly 0 in a group of 4 or more (as in a stamp cut at a
    mosaic's edge), are missing data: weight 0. Returns (weights float32 (N, S, S), sigma
    float64 (N,)).
    """
    from scipy.ndimage import label

    weights = np.zeros(images.shape, np.float32)
    sigma = np.full(len(images), np.nan)
    for k, image in enumerate(images):
        zeros = image == 0
        if zeros.sum() >= 4:
            labels, _ = label(zeros)
            sizes = np.bincount(labels.ravel())
            missing = (sizes >= 4)[labels] & zeros
        else:
            missing = np.zeros(image.shape, bool)
        missing |= ~np.isfinite(image)
        sigma[k] = estimate_noise(image, None if segmentation is None else segmentation[k])
        if np.isfinite(sigma[k]) and sigma[k] > 0:
            weights[k] = np.where(missing, 0.0, 1.0 / sigma[k] ** 2)
    return weights, sigma


def take_stamps(images: np.ndarray, segmentation: np.ndarray, stampset: pd.DataFrame, selected: pd.DataFrame, *,
                size: int, max_missing_fraction: float = 0.0) -> Stamps:
    """The stamps of the ``selected`` galaxies (by ``gid``), with weights from their own noise.

    A stamp is dropped, with a reason, when more than ``max_missing_fraction`` of it has no
    data (``missing_data``; ``nan_pixels`` when NaN/inf pixels are among them) or its noise
    cannot be measured (``no_background``).
    """
    if images.shape[-1] != size:
        raise InputError(f"the stamp set's stamps are {images.shape[-1]} x {images.shape[-2]} pixels but config "
                         f"key 'stamps.size' is {size}: set it to {images.shape[-1]}")
    row = pd.Series(np.arange(len(stampset)), index=stampset["gid"])
    unknown = ~selected["gid"].isin(row.index)
    if unknown.any():
        raise InputError(f"selected galaxy {selected['gid'][unknown].iat[0]!r} is not in the stamp set")
    rows = row[selected["gid"]].to_numpy()
    imgs = np.array(images[rows], dtype=np.float32)
    segs = np.asarray(segmentation[rows], dtype=np.int32)
    weights, sigma = stamp_weights(imgs, segs)
    nonfinite = ~np.isfinite(imgs)
    imgs[nonfinite] = 0.0  # no data there (weight 0)
    missing = (weights == 0).mean(axis=(1, 2))
    reasons = np.where(~np.isfinite(sigma), "no_background",
                       np.where(missing > max_missing_fraction,
                                np.where(nonfinite.any(axis=(1, 2)), "nan_pixels", "missing_data"), ""))
    keep = reasons == ""
    catalog = selected[keep].reset_index(drop=True).assign(noise_sigma=sigma[keep])
    dropped = pd.DataFrame({"gid": selected["gid"][~keep].to_numpy(), "reason": reasons[~keep]})
    return Stamps(imgs[keep], weights[keep], catalog, dropped, segmentation=segs[keep])


# The segmentation written into a mock-built set: a SExtractor-like run on each stamp
# (1.5 sigma, 10 pixels, 64 thresholds, contrast 0.001), deliberately not the clean stage's
# own settings, as a published catalogue's segmentation would not be.
SEGMENTATION_PARAMS = CleanParams(detect_thresh=1.5, minarea=10, deblend_cont=0.001, deblend_nthresh=64)


def write_stampset(root: str | os.PathLike, images: np.ndarray, segmentation: np.ndarray,
                   catalog: pd.DataFrame, *, pixel_scale: float) -> Path:
    """Write a stamp set in the Zenodo layout, byte for byte in its conventions.

    ``catalog`` has gid, field, id, ra, dec, mag, re_arcsec, cls (and optionally z). FIELD is
    written as the published set has it (``b'COSMOS    '``: the repr of a 10-byte padded
    string), mag_err as a copy of mag (the published set's bug), radius in pixels.
    """
    root = Path(root)
    inverse = {v: k for k, v in GALTYPES.items()}
    c = images.shape[-1] // 2
    width = max(10, int(catalog["field"].astype(str).str.len().max()))
    cat = pd.DataFrame({
        "ID": catalog["id"].to_numpy(),
        "RA": catalog["ra"].to_numpy(),
        "DEC": catalog["dec"].to_numpy(),
        "FIELD": [repr(str(f).ljust(width).encode()) for f in catalog["field"]],
        "mag": catalog["mag"].to_numpy(),
        "mag_err": catalog["mag"].to_numpy(),
        "radius": catalog["re_arcsec"].to_numpy() / pixel_scale,
        "z": catalog["z"].to_numpy() if "z" in catalog else np.full(len(catalog), np.nan),
        "galtype": catalog["cls"].map(inverse).to_numpy(),
        "segval": segmentation[:, c, c],
    })
    io.save_array(root / FILES[0], images.astype(np.float32))
    io.save_array(root / FILES[1], segmentation.astype(np.int32))
    io.write_csv(root / FILES[2], cat)
    return root


def stampset_from_mosaic(image: np.ndarray, weight: np.ndarray, wcs, catalog: pd.DataFrame, *,
                         size: int) -> StampSet:
    """Cut a stamp set in the published set's form from a mosaic: stamps with their neighbours,
    a SExtractor-like segmentation of each (``SEGMENTATION_PARAMS``), the catalogue rows kept.

    ``catalog`` needs gid, field, id, ra, dec, mag, re_arcsec, cls. Stamps that leave the
    mosaic or its footprint, or whose central pixel is in no segment, are left out.
    """
    from blendphot.clean import detect_sources
    from blendphot.stamps import cut_stamps

    stamps = cut_stamps(image, weight, wcs, catalog, size=size)
    seg = np.zeros((len(stamps.images), size, size), np.int32)
    for k, (stamp, wht) in enumerate(zip(stamps.images, stamps.weights, strict=True)):
        seg[k] = detect_sources(stamp, wht > 0, SEGMENTATION_PARAMS)[1]
    c = size // 2
    keep = seg[:, c, c] > 0
    return StampSet(stamps.images[keep], seg[keep], stamps.catalog[keep].reset_index(drop=True))


def mock_stampset(results: str | os.PathLike, dest: str | os.PathLike, *, size: int = 128,
                  pixel_scale: float = 0.06, archive: bool = False) -> tuple[Path, int]:
    """Write a stamp set in the Zenodo layout cut from a mock survey run's mosaics.

    Reads ``results/select/selected.csv`` and ``results/survey/<field>/{image,weight}.fits``;
    writes the three files to ``dest`` and ``truth.csv`` (gid, flux_true, cls_true, the
    generator's truth, which the published layout has no room for) beside them; with
    ``archive``, also ``dest.tar.gz`` holding the directory. Returns (dest, number of stamps).
    """
    from blendphot.stamps import open_mosaic

    results, dest = Path(results), Path(dest)
    selected = io.read_csv(results / "select/selected.csv", required=["gid", "field", "id", "ra", "dec", "mag",
                                                                       "re_arcsec", "cls", "flux_true"])
    parts = []
    for field, rows in selected.groupby("field", sort=True):
        image_hdul, image, wcs = open_mosaic(results / "survey" / str(field) / "image.fits")
        weight_hdul, weight, _ = open_mosaic(results / "survey" / str(field) / "weight.fits")
        with image_hdul, weight_hdul:
            parts.append(stampset_from_mosaic(image, weight, wcs, rows.reset_index(drop=True), size=size))
    images = np.concatenate([p.images for p in parts])
    seg = np.concatenate([p.segmentation for p in parts])
    catalog = pd.concat([p.catalog for p in parts], ignore_index=True)
    write_stampset(dest, images, seg, catalog, pixel_scale=pixel_scale)
    io.write_csv(dest / "truth.csv", catalog[["gid", "flux_true", "cls_true"]])
    if archive:
        with io.atomic_path(dest.with_name(dest.name + ".tar.gz")) as tmp:
            with tarfile.open(tmp, "w:gz") as tar:
                for name in FILES:
                    tar.add(dest / name, arcname=f"{dest.name}/{name}")
    return dest, len(catalog)


def run_import_stampset(source, out: dict, *, pixel_scale: float) -> StampSet:
    """The import_stampset stage: read a set (a folder or an archive) into the survey stage's
    form: ``out["images"]``, ``out["segmentation"]``, ``out["catalog"]``."""
    with open_stampset(source, scratch=Path(out["catalog"]).parent) as root:
        stampset = read_stampset(root, pixel_scale=pixel_scale)
    io.save_array(out["images"], stampset.images)
    io.save_array(out["segmentation"], stampset.segmentation)
    io.write_csv(out["catalog"], stampset.catalog)
    return stampset


def run_take_stamps(survey_dir, selected_path, out_dir, *, settings: dict) -> Stamps:
    """The take_stamps stage: the selected galaxies' stamps of an imported set, with weights
    from their own noise (``settings``: the config's ``stamps``). None usable is an error."""
    d = Path(survey_dir)
    stamps = take_stamps(io.load_array(d / "images.npy"), io.load_array(d / "segmentation.npy"),
                         io.read_csv(d / "catalog.csv"), io.read_csv(selected_path, required=["gid"]),
                         size=settings["size"], max_missing_fraction=settings["max_missing_fraction"])
    if not len(stamps.catalog):
        raise InputError(f"{d / 'images.npy'}: none of the {len(stamps.dropped)} selected stamps is usable "
                         f"(reasons: {stamps.dropped['reason'].value_counts().to_dict()})")
    stamps.save(out_dir)
    return stamps
