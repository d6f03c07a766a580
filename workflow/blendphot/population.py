"""Galaxy structure drawn from a measured catalogue, and the mock's distance from it.

The mock survey's ``empirical`` population takes each catalogued galaxy's magnitude, half-light
radius, Sérsic index and axis ratio together from one galaxy of a published structural
catalogue: by default the GALFIT single-Sérsic fits in F160W of CANDELS COSMOS by van der Wel et
al. (2012, ApJS 203, 24; 3D-HST v4.1 release, ids of Skelton et al. 2014), shipped with the
package (``blendphot/catalogs/vdw2012_cosmos_f160w.csv.gz``: id, flag, mag, re_arcsec, n, q).

Only good and suspicious fits are used (``flag`` 0 or 1; 2 is a bad fit, 3 no fit), no
point-like object (a half-light radius under one 0.06" pixel is a star or an unresolved source:
``min_re_arcsec``) and no runaway fit: at F160W 19-23.5, 3.8 % of the flag <= 1 fits have Re above
3" (median 7", median n 4.2; ``max_re_arcsec``), a size no galaxy of that brightness has.
Fainter galaxies than the catalogue reaches well (the faint neighbours) take
the structure of a catalogue galaxy near their magnitude, with the radius scaled along the
size–magnitude relation where the magnitude lies beyond the catalogue's.

GalSim draws Sérsic profiles for 0.3 <= n <= 6.2 and builds a table for every distinct index, so
rendered indices are clipped to that range and rounded to 0.02 dex; the truth table holds the
rendered values, and the comparison uses them (KS in n 0.024-0.026 against the catalogue, most of
it from the 2.8 % of catalogue galaxies with n above 6.2: bench/bench_population.py).
"""

from __future__ import annotations

import itertools
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["CATALOGUE_COLUMNS", "DEFAULT_CATALOGUE", "assign_classes", "compare_structure", "compared",
           "draw_structure", "read_mock_galaxies", "read_structure_catalog", "render_sersic_n"]

DEFAULT_CATALOGUE = "vdw2012_cosmos_f160w.csv.gz"
CATALOGUE_COLUMNS = ("flag", "mag", "re_arcsec", "n", "q")
SERSIC_N_RANGE = (0.3, 6.2)  # GalSim's Sérsic
LOG_N_STEP = 0.02  # dex
# Size–magnitude slope (dex per mag) for radii extrapolated beyond the catalogue's depth
RE_SLOPE = -0.10
COMPARED_MAG_MAX = 23.5  # the paper's selection cut
COMPARED = ("log_re", "n", "q")


def read_structure_catalog(path: str | Path | None = None, *, max_flag: int = 1, min_re_arcsec: float = 0.06,
                           max_re_arcsec: float = 3.0) -> pd.DataFrame:
    """The usable rows of a structural catalogue (the shipped one when ``path`` is None):
    columns mag, re_arcsec, n, q of fits with ``flag <= max_flag`` and ``min_re_arcsec <= Re <=
    max_re_arcsec``."""
    from blendphot import io
    from blendphot.errors import InputError

    source = files("blendphot.catalogs") / DEFAULT_CATALOGUE if path is None else Path(path)
    table = io.read_csv(source, required=list(CATALOGUE_COLUMNS))
    values = table[list(CATALOGUE_COLUMNS)]
    bad = [c for c in CATALOGUE_COLUMNS if not pd.api.types.is_numeric_dtype(values[c])]
    if bad:
        raise InputError(f"{source}: column '{bad[0]}' must be numeric")
    good = (values["flag"] <= max_flag) & values["re_arcsec"].between(min_re_arcsec, max_re_arcsec)
    good &= np.isfinite(values).all(axis=1) & (values["n"] > 0) & (values["q"] > 0) & (values["q"] <= 1)
    rows = values[good].drop(columns="flag").reset_index(drop=True)
    if len(rows) < 100:
        raise InputError(f"{source}: only {len(rows)} usable galaxies (flag <= {max_flag}, re_arcsec "
                         f"{min_re_arcsec}-{max_re_arcsec}, finite n and 0 < q <= 1); a structural "
                         "catalogue needs hundreds")
    return rows


def render_sersic_n(n: np.ndarray) -> np.ndarray:
    """The Sérsic index a galaxy is drawn with: clipped to GalSim's range, rounded to 0.02 dex."""
    clipped = np.clip(np.asarray(n, float), *SERSIC_N_RANGE)
    return np.clip(10 ** (np.round(np.log10(clipped) / LOG_N_STEP) * LOG_N_STEP), *SERSIC_N_RANGE)


def draw_structure(rng: np.random.Generator, catalog: pd.DataFrame, *, n: int | None = None,
                   mag_range: tuple[float, float] | None = None, mags: np.ndarray | None = None,
                   window: float = 0.25) -> pd.DataFrame:
    """Structure (mag, re_arcsec, n, q) for mock galaxies, from catalogue rows.

    Either ``n`` galaxies whose magnitudes are the catalogue's own in ``mag_range`` (joint
    draws: the real number counts and the real structure together), or one galaxy per given
    magnitude in ``mags``, each taking the structure of a random catalogue galaxy within
    ``window`` mag of it (of the ``window`` above the catalogue's depth, its 99th magnitude
    percentile, where it is fainter, with the radius scaled along ``RE_SLOPE``).
    """
    cat_mag = catalog["mag"].to_numpy()
    if mags is None:
        lo, hi = mag_range
        pool = np.flatnonzero((cat_mag >= lo) & (cat_mag < hi))
        if pool.size == 0:
            from blendphot.errors import ConfigError

            raise ConfigError(f"config key 'survey.mock.mag_bright': the structural catalogue "
                              f"(survey.mock.structure_catalog) has no usable galaxy between magnitudes {lo} and {hi}")
        pick = rng.choice(pool, n)
        out = catalog.iloc[pick][["mag", "re_arcsec", "n", "q"]].reset_index(drop=True)
    else:
        mags = np.asarray(mags, float)
        order = np.argsort(cat_mag, kind="stable")
        sorted_mag = cat_mag[order]
        faintest = np.quantile(sorted_mag, 0.99)  # the catalogue's depth: its faintest 1 % are few
        target = np.minimum(mags, faintest - window)  # the window stays inside the catalogue
        lo = np.searchsorted(sorted_mag, target - window, side="left")
        hi = np.searchsorted(sorted_mag, target + window, side="right")
        hi = np.maximum(hi, lo + 1)
        pick = order[np.minimum(lo + np.floor(rng.random(mags.size) * (hi - lo)).astype(int), len(order) - 1)]
        rows = catalog.iloc[pick]
        beyond = np.maximum(mags - rows["mag"].to_numpy(), 0.0) * (mags > faintest - window)
        out = pd.DataFrame({"mag": mags, "re_arcsec": rows["re_arcsec"].to_numpy() * 10 ** (RE_SLOPE * beyond),
                            "n": rows["n"].to_numpy(), "q": rows["q"].to_numpy()})
    out["n"] = render_sersic_n(out["n"].to_numpy())
    return out


def assign_classes(rng: np.random.Generator, classes: np.ndarray, sersic_n: np.ndarray,
                   rank: dict[str, int], scatter: float = 0.15) -> np.ndarray:
    """Give the drawn classes to the drawn galaxies so that class follows structure: classes of
    a higher ``rank`` (bulges over discs) go to galaxies of higher Sérsic index, with a scatter
    of ``scatter`` dex in the ordering. The class mix is kept exactly."""
    score = np.log10(sersic_n) + rng.normal(0.0, scatter, sersic_n.size)
    labels = np.asarray(classes)
    label_order = np.lexsort((rng.random(labels.size), [rank[c] for c in labels]))
    out = np.empty_like(labels)
    out[np.argsort(score, kind="stable")] = labels[label_order]
    return out


def read_mock_galaxies(truth_paths) -> pd.DataFrame:
    """The galaxies of a mock survey's truth tables, with the catalogue's column names (mag,
    re_arcsec, n, q)."""
    from blendphot import io

    truth = pd.concat([io.read_csv(t, required=["kind", "mag", "re_arcsec", "sersic_n", "q"]) for t in truth_paths])
    return truth[truth["kind"] == "galaxy"].rename(columns={"sersic_n": "n"})


def compared(table: pd.DataFrame, mag_min: float = -np.inf, mag_max: float = COMPARED_MAG_MAX) -> pd.DataFrame:
    """The rows of ``table`` in the compared magnitude range, ``mag_min <= mag < mag_max``."""
    return table[(table["mag"] >= mag_min) & (table["mag"] < mag_max)]


def compare_structure(mock: pd.DataFrame, catalog: pd.DataFrame, *, mag_min: float = -np.inf,
                      mag_max: float = COMPARED_MAG_MAX, bin_width: float = 0.5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The mock's galaxies between ``mag_min`` (the brightest the mock makes) and ``mag_max``
    against the catalogue's: two-sample KS distances (and their p-values) of log Re, n, q and the
    magnitude (one row each), and per ``bin_width``-mag bin the 16th, 50th and 84th percentiles of
    Re of both and the ratio of the medians (mock / catalogue)."""
    from scipy.stats import ks_2samp

    def prepare(t):
        t = compared(t, mag_min, mag_max)
        return pd.DataFrame({"mag": t["mag"], "log_re": np.log10(t["re_arcsec"]), "n": t["n"], "q": t["q"]})

    ours, theirs = prepare(mock), prepare(catalog)
    rows = []
    for q in (*COMPARED, "mag"):
        stat, p = ks_2samp(ours[q], theirs[q]) if len(ours) else (np.nan, np.nan)
        rows.append({"quantity": q, "ks": float(stat), "p_value": float(p), "median_mock": float(ours[q].median()),
                     "median_catalogue": float(theirs[q].median()), "n_mock": len(ours), "n_catalogue": len(theirs)})
    ks = pd.DataFrame(rows)
    lo = np.floor(min(ours["mag"].min(), theirs["mag"].min()) / bin_width) * bin_width if len(ours) else 0.0
    rows = []
    for a, b in itertools.pairwise(np.arange(lo, mag_max + 1e-9, bin_width)):
        m, c = compared(ours, a, b)["log_re"], compared(theirs, a, b)["log_re"]
        if len(c) == 0:
            continue
        row = {"mag_lo": a, "mag_hi": b, "n_mock": len(m), "n_catalogue": len(c)}
        for name, values in (("mock", m), ("catalogue", c)):  # log Re percentiles, as radii
            pct = 10 ** np.percentile(values, [16, 50, 84]) if len(values) else [np.nan] * 3
            row |= {f"re16_{name}": pct[0], f"median_re_{name}": pct[1], f"re84_{name}": pct[2]}
        rows.append(row | {"ratio": row["median_re_mock"] / row["median_re_catalogue"]})
    return ks, pd.DataFrame(rows)
