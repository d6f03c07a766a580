"""Sample selection (paper §2.1): magnitude cut and four morphological classes.

Classes are mutually exclusive by construction, with probability threshold ``p``:

=============  =========================================
bulge          F_SPH > p, F_DISK <= p, F_IRR <= p
disk           F_DISK > p, F_SPH <= p, F_IRR <= p
bulge_disk     F_SPH > p, F_DISK > p, F_IRR <= p
irregular      F_IRR > p, F_SPH <= p
=============  =========================================
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from blendphot.errors import InputError

__all__ = [
    "CLASS_ORDER",
    "attach_truth",
    "classify",
    "count_table",
    "join_catalogs",
    "run_select_galaxies",
    "select_classified",
    "select_galaxies",
]

CLASS_ORDER = ("bulge", "disk", "bulge_disk", "irregular")


def classify(p_sph: np.ndarray, p_disk: np.ndarray, p_irr: np.ndarray, *, p_min: float) -> np.ndarray:
    """Morphological class per galaxy (object array; ``None`` where no class applies)."""
    sph, disk, irr = (np.asarray(p) > p_min for p in (p_sph, p_disk, p_irr))
    out = np.full(sph.shape, None, dtype=object)
    out[sph & ~disk & ~irr] = "bulge"
    out[disk & ~sph & ~irr] = "disk"
    out[sph & disk & ~irr] = "bulge_disk"
    out[irr & ~sph] = "irregular"
    return out


def join_catalogs(photometry: pd.DataFrame, morphology: pd.DataFrame, columns: dict, *,
                  sources: tuple[str, str] = ("photometry", "morphology")) -> pd.DataFrame:
    """Join the photometric and morphology catalogues on (field, id) into standard columns.

    Returns a frame with columns gid, field, id, ra, dec, mag, re_arcsec, p_sph, p_disk, p_irr.
    """
    from blendphot.io import galaxy_ids, require_columns

    pc, mc = columns["photometry"], columns["morphology"]
    for kind, frame, mapping, source in (("photometry", photometry, pc, sources[0]),
                                         ("morphology", morphology, mc, sources[1])):
        require_columns(frame, mapping.values(), source,
                        keys={name: f"survey.candels.columns.{kind}.{k}" for k, name in mapping.items()})
    phot = photometry[list(pc.values())].rename(columns={v: k for k, v in pc.items()})
    morph = morphology[list(mc.values())].rename(columns={v: k for k, v in mc.items()})
    for frame in (phot, morph):
        frame["field"] = frame["field"].astype(str).str.strip()
    # every joined galaxy is a photometry row: its id is made (and checked) there, with the file's row numbers
    phot.insert(0, "gid", galaxy_ids(phot["field"], phot["id"], sources[0], columns=(pc["field"], pc["id"])))
    joined = phot.merge(morph, on=["field", "id"], how="inner", validate="one_to_one")
    joined = joined.rename(columns={"re": "re_arcsec"})
    origin = {k: (sources[0], v) for k, v in pc.items()} | {k: (sources[1], v) for k, v in mc.items()}
    origin["re_arcsec"] = origin.pop("re")
    for col in ("ra", "dec", "p_sph", "p_disk", "p_irr", "mag", "re_arcsec"):
        values = pd.to_numeric(joined[col], errors="coerce")
        n_bad = int((~np.isfinite(values)).sum())
        if n_bad and col not in ("mag", "re_arcsec"):  # no magnitude or size: simply not selected
            src, name = origin[col]
            raise InputError(f"{src}: column '{name}' has {n_bad} non-numeric or NaN values")
        joined[col] = values
    return joined


def attach_truth(catalog: pd.DataFrame, photometry: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Add the mock generator's true flux and class (``flux_true``, ``cls_true``) to a joined catalogue.

    The mock photometric catalogue links each (FIELD, ID) to the generator's ``truth_id``.
    Every catalogue row must have its truth: a missing one is an error, never a silent drop.
    """
    link = photometry[["FIELD", "ID", "TRUTH_ID"]].rename(columns={"FIELD": "field", "ID": "id",
                                                                   "TRUTH_ID": "truth_id"})
    link["field"] = link["field"].astype(str).str.strip()
    known = truth[["field", "truth_id", "flux", "cls"]].rename(columns={"flux": "flux_true", "cls": "cls_true"})
    out = catalog.merge(link, on=["field", "id"], how="left").merge(known, on=["field", "truth_id"], how="left")
    missing = out["flux_true"].isna()
    if missing.any():
        raise InputError(f"truth table: no true flux for {int(missing.sum())} catalogue galaxies "
                         f"(first: {out.loc[missing, 'gid'].iat[0]})")
    return out.drop(columns="truth_id")


def select_galaxies(catalog: pd.DataFrame, *, mag_max: float, p_min: float) -> pd.DataFrame:
    """Galaxies brighter than ``mag_max`` with a class, and a finite positive Re."""
    cls = classify(catalog.p_sph, catalog.p_disk, catalog.p_irr, p_min=p_min)
    ok = (catalog.mag < mag_max) & pd.notna(cls) & (catalog.re_arcsec > 0)
    out = catalog[ok].copy()
    out.insert(1, "cls", cls[ok.to_numpy()])
    return out.reset_index(drop=True)


def select_classified(catalog: pd.DataFrame, *, mag_max: float) -> pd.DataFrame:
    """Galaxies already classified (a stamp set's ``cls``), brighter than ``mag_max``, with Re > 0."""
    ok = (catalog["mag"] < mag_max) & catalog["cls"].isin(CLASS_ORDER) & (catalog["re_arcsec"] > 0)
    return catalog[ok].reset_index(drop=True)


def count_table(selected: pd.DataFrame, column: str = "selected") -> pd.DataFrame:
    """Counts per class in the paper's order, with a TOTAL row (Table 1's first column)."""
    counts = selected["cls"].value_counts().reindex(CLASS_ORDER, fill_value=0)
    table = counts.rename(column).rename_axis("class").reset_index()
    total = pd.DataFrame({"class": ["TOTAL"], column: [int(counts.sum())]})
    return pd.concat([table, total], ignore_index=True)


def _read_catalog(path) -> pd.DataFrame:
    from pathlib import Path

    from blendphot import io

    return io.read_csv(path) if Path(path).suffix == ".csv" else io.read_fits_table(path)


def run_select_galaxies(out: dict, *, settings: dict, columns: dict, photometry=(), morphology=(), truth=(),
                        stampset=None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The select_galaxies stage: join the survey's catalogues (or read a stamp set's, classified
    already), cut in magnitude, classify; write ``out["catalog"]`` and ``out["counts"]``.

    ``settings`` is the config's ``select`` section, ``columns`` ``survey.candels.columns``;
    ``truth`` the mock survey's truth tables. No galaxy selected is an error. Returns
    (the joined catalogue, the selection, the class counts).
    """
    from blendphot import io

    if stampset is not None:
        catalog = io.read_csv(stampset)
        selected = select_classified(catalog, mag_max=settings["mag_max"])
    else:
        frames = [_read_catalog(f) for f in photometry]
        phot = pd.concat(frames, ignore_index=True)
        morph = pd.concat([_read_catalog(f) for f in morphology], ignore_index=True)
        catalog = join_catalogs(phot, morph, columns, sources=(", ".join(map(str, photometry)),
                                                               ", ".join(map(str, morphology))))
        if truth:  # the mock survey: carry the generator's true flux along
            for f, frame in zip(photometry, frames, strict=True):  # the link to the generator's truth
                io.require_columns(frame, ["FIELD", "ID", "TRUTH_ID"], f)
            tables = [io.read_csv(f, required=["field", "truth_id", "flux", "cls"]) for f in truth]
            catalog = attach_truth(catalog, phot, pd.concat(tables, ignore_index=True))
        selected = select_galaxies(catalog, mag_max=settings["mag_max"], p_min=settings["p_min"])
    if not len(selected):
        raise InputError(f"no galaxy passes the selection (select.mag_max = {settings['mag_max']}, "
                         f"select.p_min = {settings['p_min']}) among the {len(catalog)} catalogue galaxies")
    counts = count_table(selected)
    io.write_csv(out["catalog"], selected)
    io.write_csv(out["counts"], counts)
    return catalog, selected, counts
