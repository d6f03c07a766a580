"""Visual-inspection manifest (paper §2.1): gallery, automatic decisions, review page.

The paper's inspectors rejected stamps with a possible unrecognised blend, neighbours too
close or too diffuse, a segmentation that does not cover the galaxy, or artefacts from the
neighbour removal. Here the automatic quality flags of the clean stage give a default
decision; a person reviews the gallery in ``index.html`` (keyboard driven, works from disk),
exports ``inspection_decisions.csv``, saves it (e.g. under ``config/``) and sets
``inspect.decisions`` to its path: it then overrides the automatic decisions.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

from blendphot import io
from blendphot.errors import InputError

__all__ = ["REASONS", "apply_decisions", "asinh_stretch", "auto_decisions", "gallery_strip", "render_page",
           "run_build_inspection", "write_gallery"]

# Rejection reasons offered on the page (keys 1-4), after the paper's inspection criteria.
REASONS = ("unrecognised_blend", "neighbour_too_close", "segmentation_incomplete", "removal_artefact")


def asinh_stretch(image: np.ndarray, *, scale: float | None = None) -> np.ndarray:
    """asinh stretch to [0, 1]; ``scale`` (default: 3x the robust noise) sets the linear part."""
    finite = image[np.isfinite(image)]
    if scale is None:
        mad = np.median(np.abs(finite - np.median(finite))) if finite.size else 1.0
        scale = 3 * 1.4826 * mad if mad > 0 else 1.0
    lo = np.arcsinh(np.percentile(finite, 1) / scale) if finite.size else 0.0
    hi = np.arcsinh(np.percentile(finite, 99.9) / scale) if finite.size else 1.0
    out = (np.arcsinh(image / scale) - lo) / max(hi - lo, 1e-12)
    return np.clip(np.nan_to_num(out), 0, 1)


def gallery_strip(original: np.ndarray, cleaned: np.ndarray, mask: np.ndarray, gap: int = 4) -> np.ndarray:
    """One galaxy as an (S, 3S + 2 gap) image in [0, 1]: original | cleaned | central mask.

    Both images share the original's stretch so removed neighbours are visible as such.
    """
    mad = np.median(np.abs(original - np.median(original)))
    scale = 3 * 1.4826 * mad if mad > 0 else None
    panels = [asinh_stretch(original, scale=scale), asinh_stretch(cleaned, scale=scale), mask.astype(float)]
    spacer = np.ones((original.shape[0], gap))
    return np.concatenate([panels[0], spacer, panels[1], spacer, panels[2]], axis=1)


def auto_decisions(catalog: pd.DataFrame, reject_flags) -> pd.DataFrame:
    """Default decision per galaxy: reject when any of ``reject_flags`` is raised."""
    flags = catalog["qa_flags"].fillna("").astype(str).str.split(";")
    reject = set(reject_flags)
    hits = [[f for f in fl if f in reject] for fl in flags]
    return pd.DataFrame({
        "id": catalog["gid"].to_numpy(),
        "decision": ["reject" if h else "accept" for h in hits],
        "reason": [";".join(h) for h in hits],
    })


def apply_decisions(auto: pd.DataFrame, decisions: pd.DataFrame | None, source: str = "decisions") -> pd.DataFrame:
    """Override automatic decisions by a person's; returns id, decision, reason, decided_by."""
    out = auto.copy()
    out["decided_by"] = "auto"
    if decisions is None or not len(decisions):
        return out
    from blendphot.io import require_columns

    require_columns(decisions, ["id", "decision"], source)
    decisions = decisions.copy()
    decisions["id"] = decisions["id"].astype(str)
    bad = ~decisions["decision"].isin(["accept", "reject"])
    if bad.any():
        raise InputError(f"{source}: column 'decision' must be 'accept' or 'reject', got "
                         f"{decisions.loc[bad, 'decision'].iat[0]!r} for id {decisions.loc[bad, 'id'].iat[0]}")
    unknown = ~decisions["id"].isin(out["id"])
    if unknown.any():
        raise InputError(f"{source}: id {decisions.loc[unknown, 'id'].iat[0]!r} is not in the inspection "
                         f"manifest ({int(unknown.sum())} unknown ids)")
    if decisions["id"].duplicated().any():
        raise InputError(f"{source}: id {decisions.loc[decisions['id'].duplicated(), 'id'].iat[0]!r} appears twice")
    person = decisions.set_index("id")
    hit = out["id"].isin(person.index)
    out.loc[hit, "decision"] = person.loc[out.loc[hit, "id"], "decision"].to_numpy()
    reasons = person["reason"] if "reason" in person else pd.Series("", index=person.index)
    out.loc[hit, "reason"] = reasons.loc[out.loc[hit, "id"]].fillna("").astype(str).to_numpy()
    out.loc[hit, "decided_by"] = "person"
    return out


def render_page(manifest: pd.DataFrame, image_dir: str) -> str:
    """The review page as HTML; the manifest is embedded, images are relative paths."""
    records = manifest.to_dict("records")
    template = files("blendphot").joinpath("templates/inspect.html").read_text()
    payload = {"galaxies": records, "imageDir": image_dir, "reasons": list(REASONS)}
    return template.replace("__MANIFEST_JSON__", script_json(payload))


# What a <script> element must not hold as is: "</script>" would end it, "<!--" changes how
# the browser parses it. Escaped as JSON \u escapes, the text decodes to the same values
# (json.dumps already escapes every non-ASCII character, U+2028 and U+2029 included).
_SCRIPT_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def script_json(payload) -> str:
    """``payload`` as JSON that is safe inside an HTML ``<script>`` element, whatever its text."""
    return json.dumps(payload, default=str).translate(_SCRIPT_ESCAPES)


def write_gallery(originals, cleaned, masks, gids, out_dir: str | Path, progress: bool = True) -> list[str]:
    """Write one PNG strip per galaxy into ``out_dir``; returns the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for k in tqdm(range(len(gids)), desc="gallery", mininterval=2, disable=not progress):
        name = f"{gids[k]}.png"
        plt.imsave(out_dir / name, gallery_strip(originals[k], cleaned[k], masks[k]), cmap="gray", vmin=0, vmax=1)
        names.append(name)
    return names


def run_build_inspection(clean_dir: str | Path, out: dict, *, reject_flags) -> pd.DataFrame:
    """The build_inspection stage: the gallery, the manifest with the automatic decisions
    (``reject_flags``) and the review page; ``out`` maps manifest, page and gallery to paths."""
    from blendphot.clean import CleanedStamps

    clean = CleanedStamps.load(clean_dir)
    catalog = clean.catalog
    io.require_columns(catalog, ["gid", "cls", "mag_auto", "re_arcsec", "qa_flags"],
                       Path(clean_dir) / CleanedStamps.FILES["catalog"])
    names = write_gallery(clean.originals, clean.images, clean.masks, catalog["gid"].tolist(), out["gallery"])
    decisions = auto_decisions(catalog, reject_flags)
    manifest = catalog[["gid", "cls", "mag_auto", "re_arcsec", "qa_flags"]].rename(columns={"gid": "id"})
    manifest = manifest.assign(decision=decisions["decision"], reason=decisions["reason"], image=names)
    io.write_csv(out["manifest"], manifest)
    html = render_page(manifest.fillna({"qa_flags": ""}), Path(out["gallery"]).name)
    with io.atomic_path(out["page"], ".html") as tmp:
        tmp.write_text(html)
    return manifest
