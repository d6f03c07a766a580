"""Evaluation (paper §4): photometric errors of every method, per galaxy and in groups.

Definitions (the paper's; ``mag = zp - 2.5 log10(flux)``):

- Δmag = mag_blend - mag_isolated = -2.5 log10(F_blend / F_isolated). A method 2x too bright
  gives Δmag = -0.753.
- bias = mean Δmag; σ = standard deviation of Δmag (``ddof=0``, as the paper's ``np.std``);
  also the median and a robust σ (1.4826 x MAD).
- outlier fraction: galaxies with |Δmag| > ``outlier_dmag`` (0.75 mag, a factor 2 in flux),
  among the galaxies the method measured. A non-positive measured flux has no magnitude: it
  counts as an outlier and is left out of bias and σ.
- MAPE on flux: 100 mean |F_blend - F_isolated| / F_isolated; MAPE on magnitude (the number
  printed on the paper's panels): 100 mean |mag_blend - mag_isolated| / mag_isolated.
- completeness: the fraction of galaxies the method gave a flux for (sep may find nothing).
- IoU (eq. 2) of a predicted and a true mask: |A ∩ B| / |A ∪ B|.
- Deblended images (an image network), each galaxy's against its isolated stamp, over the
  pixels of its true mask M: χ²/pixel = mean over M of ((pred − true) / σ)², σ the blend's
  background noise (a perfect noise-free image scores about 1/2 there: the isolated stamp
  carries one of the blend's two noise layers); the flux-weighted residual
  Σ_M |pred − true| / Σ_M true; and SSIM (Wang et al. 2004; 7×7 uniform window, K1 = 0.01,
  K2 = 0.03, data range that of the true image) over the whole stamp.

The reference is the isolated photometry (the blend catalogue's ``cen_flux``/``comp_flux``:
sep FLUX_AUTO on the cleaned stamp, the paper's ground truth). Where the survey's true fluxes
are known (the mock survey: ``*_flux_true``) every statistic is also computed against them,
with the isolated photometry itself as one more method (``isolated``).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from blendphot import io
from blendphot.architectures import architecture
from blendphot.blend import Blends
from blendphot.errors import InputError
from blendphot.photometry import INTERVAL_K, border_noise, delta_mag, flux_to_mag, laplace_pit, log_flux_z
from blendphot.prediction import PREDICTION_COLUMNS, Prediction

__all__ = [
    "ROLES",
    "domain_gap",
    "galaxy_table",
    "headline",
    "image_metrics",
    "image_summary",
    "iou",
    "iou_by_pair",
    "latex_table",
    "mask_iou",
    "noise_note",
    "photometry_stats",
    "run_evaluate",
    "sep_outcomes",
    "ssim",
    "summarise",
    "summary_markdown",
    "table1",
    "table2",
    "table3",
]

ROLES = ("cen", "comp")
ROLE_NAMES = {"cen": "central", "comp": "companion", "both": "both"}
PAPER_TABLE1 = {"bulge": (386, 352), "disk": (473, 433), "bulge_disk": (884, 702), "irregular": (875, 432)}
# The paper's published test catalogue (4776 blends): sep's detection outcomes and the
# percentiles of the centre distance (pixels), which the candels_blender rule ties to the
# galaxies' effective radii.
PAPER_SEP_OUTCOMES = {"two": 0.743, "one": 0.166, "none": 0.062, "more": 0.029}
PAPER_DISTANCE_PX = {1: 3.6, 50: 13.3, 95: 29.8, 99: 38.2}


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boolean masks over the last two axes; NaN where both masks are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    inter = (a & b).sum(axis=(-2, -1))
    union = (a | b).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def mask_iou(pred: np.ndarray, true: np.ndarray, *, chunk: int = 512) -> np.ndarray:
    """Per-galaxy IoU of (N, 2, S, S) predicted and true masks, in chunks: (N, 2) float."""
    if pred.shape != true.shape:
        raise ValueError(f"predicted masks {pred.shape} and true masks {true.shape} differ in shape")
    out = np.empty(pred.shape[:2])
    for s in range(0, len(pred), chunk):
        out[s:s + chunk] = iou(pred[s:s + chunk], true[s:s + chunk])
    return out


SAME_BLOB_IOU = 0.9  # a central and a companion mask this alike are one blob


def _box_mean(a: np.ndarray, win: int) -> np.ndarray:
    """Mean over every ``win`` × ``win`` window lying wholly inside the last two axes."""
    c = np.cumsum(np.cumsum(a, axis=-1, dtype=np.float64), axis=-2)
    c = np.pad(c, [(0, 0)] * (a.ndim - 2) + [(1, 0), (1, 0)])
    return (c[..., win:, win:] - c[..., :-win, win:] - c[..., win:, :-win] + c[..., :-win, :-win]) / win ** 2


def ssim(pred: np.ndarray, true: np.ndarray, *, win: int = 7, k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    """Mean structural similarity of images (..., H, W) against references of the same shape,
    one value per image: scikit-image's ``structural_similarity`` with its defaults (uniform
    window, sample covariances) and ``data_range`` the reference's max − min, averaged over
    the windows that lie wholly inside the image."""
    x, y = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    data_range = y.max(axis=(-2, -1)) - y.min(axis=(-2, -1))
    c1 = ((k1 * data_range) ** 2)[..., None, None]
    c2 = ((k2 * data_range) ** 2)[..., None, None]
    norm = win * win / (win * win - 1.0)
    mx, my = _box_mean(x, win), _box_mean(y, win)
    vx = norm * (_box_mean(x * x, win) - mx * mx)
    vy = norm * (_box_mean(y * y, win) - my * my)
    vxy = norm * (_box_mean(x * y, win) - mx * my)
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(axis=(-2, -1))


def image_metrics(pred: np.ndarray, blends: Blends, noise_sigma: float, *, chunk: int = 256) -> dict[str, np.ndarray]:
    """χ²/pixel, flux-weighted residual and SSIM (see the module docstring) of (N, 2, S, S)
    deblended images against the isolated images of ``blends`` (:meth:`Blends.isolated`),
    within their masks, read ``chunk`` blends at a time: a dict of (N, 2) arrays ``chi2``,
    ``residual``, ``ssim`` (χ² and residual NaN where a true mask is empty)."""
    n = len(blends)
    if pred.shape != (n, 2, blends.size, blends.size) or blends.masks is None:
        raise ValueError(f"deblended images {pred.shape} do not match the {n} blends with masks of {blends.source}")
    out = {k: np.full((n, 2), np.nan) for k in ("chi2", "residual", "ssim")}
    for s in range(0, n, chunk):
        rows = slice(s, s + chunk)
        p, t = np.asarray(pred[rows], np.float64), blends.isolated(rows).astype(np.float64)
        m = np.asarray(blends.masks[rows], bool)
        npix = m.sum(axis=(-2, -1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out["chi2"][s:s + chunk] = np.where(m, ((p - t) / noise_sigma) ** 2, 0).sum(axis=(-2, -1)) / npix
            out["residual"][s:s + chunk] = (np.where(m, np.abs(p - t), 0).sum(axis=(-2, -1))
                                            / np.where(m, t, 0).sum(axis=(-2, -1)))
        out["ssim"][s:s + chunk] = ssim(p, t)
    for k in ("chi2", "residual"):
        out[k][~np.isfinite(out[k])] = np.nan
    return out


def image_summary(galaxies: pd.DataFrame) -> pd.DataFrame:
    """Per image method and role (cen, comp, both): n, median χ²/pixel, median flux-weighted
    residual and mean SSIM, from the galaxy table's ``img_*`` columns."""
    if "img_chi2" not in galaxies:
        return pd.DataFrame(columns=["method", "role", "n", "chi2_median", "residual_median", "ssim_mean"])
    g = galaxies[galaxies["img_ssim"].notna()]
    rows = []
    for method in g["method"].unique():
        for role in ("cen", "comp", "both"):
            part = g[(g["method"] == method) & ((g["role"] == role) | (role == "both"))]
            rows.append({"method": method, "role": role, "n": len(part),
                         "chi2_median": float(part["img_chi2"].median()),
                         "residual_median": float(part["img_residual"].median()),
                         "ssim_mean": float(part["img_ssim"].mean())})
    return pd.DataFrame(rows)


def mask_health(masks: np.ndarray, *, chunk: int = 512) -> dict:
    """How often a mask method's output has lost its meaning, over (N, 2, S, S) masks: the
    fraction of blends whose central / companion channel is empty, and whose two channels
    are the same blob (IoU of the central and companion masks above :data:`SAME_BLOB_IOU`)."""
    n = len(masks)
    empty, same = np.zeros(2), 0
    for s in range(0, n, chunk):
        m = np.asarray(masks[s:s + chunk], bool)
        empty += (~m.any(axis=(-2, -1))).sum(axis=0)
        overlap = iou(m[:, 0], m[:, 1])
        same += int(np.sum(overlap > SAME_BLOB_IOU))
    return {"n": n, "empty_central": empty[0] / max(n, 1), "empty_companion": empty[1] / max(n, 1),
            "same_blob": same / max(n, 1)}


def mask_warnings(health: dict[str, dict], *, limit: float = 0.5) -> list[str]:
    """One line per mask method whose channels are empty, or one blob, for most blends."""
    lines = []
    for method, h in health.items():
        for key, what in (("empty_central", "the central galaxy's mask is empty"),
                          ("empty_companion", "the companion's mask is empty"),
                          ("same_blob", f"the central and companion masks are the same blob (IoU > {SAME_BLOB_IOU})")):
            if h[key] > limit:
                lines.append(f"**Warning: {method}'s masks have collapsed**: {what} in {100 * h[key]:.0f} % of "
                             f"the {h['n']} test blends; its IoU does not measure a segmentation.")
    return lines


def galaxy_table(catalog: pd.DataFrame, predictions: dict[str, Prediction], *, zeropoint: float,
                 true_masks: np.ndarray | None = None, sep: Prediction | None = None,
                 images: dict[str, dict[str, np.ndarray]] | None = None) -> pd.DataFrame:
    """One row per (method, blend, galaxy role): the long table every statistic and figure reads.

    Parameters
    ----------
    catalog : the test blend catalogue (:func:`blendphot.blend.make_blends`)
    predictions : method name -> its :class:`~blendphot.prediction.Prediction`, rows in the
        catalogue's order (checked on ``blend_id``)
    true_masks : (N, 2, S, S) masks of the isolated galaxies, for the IoU of mask methods
    sep : the baseline's prediction, whose detection outcome labels every method's rows
    images : per image method, its :func:`image_metrics` (the columns img_chi2, img_residual,
        img_ssim; NaN for the other methods)

    Columns: method, blend_id, role (cen/comp), gid (the galaxy's id), cls, other_cls, pair (the two classes, sorted),
    mag_iso, flux_iso, flux (the method's; NaN if none), flux_err (its 1σ uncertainty, for a
    network with a σ head; else NaN), measured, dmag, mag_diff
    (mag_self - mag_other), distance_px, distance_own_re (distance / the galaxy's own Re; the
    blend catalogue's distance_re is over max(Re)), sep_outcome,
    sep_found (sep measured this galaxy), iou (mask methods), and flux_true / dmag_true where
    the catalogue has true fluxes.
    """
    io.require_columns(catalog, ["blend_id", "distance_px"] + [f"{r}_{k}" for r in ROLES
                                                                for k in ("mag", "flux", "re_px", "cls")],
                       "the test blend catalogue")
    ids = catalog["blend_id"].to_numpy()
    has_truth = all(f"{r}_flux_true" in catalog for r in ROLES) and catalog[
        [f"{r}_flux_true" for r in ROLES]].notna().all().all()
    if sep is not None:
        _check_rows(sep, ids)
    pairs = np.where(catalog["cen_cls"] <= catalog["comp_cls"],
                     catalog["cen_cls"] + " + " + catalog["comp_cls"], catalog["comp_cls"] + " + " + catalog["cen_cls"])
    gids = {r: catalog[f"{r}_gid"].astype(str).to_numpy() if f"{r}_gid" in catalog
            else np.char.add(f"{r}-", ids.astype(str)) for r in ROLES}  # a catalogue without ids: one per row
    frames = []
    for method, pred in predictions.items():
        _check_rows(pred, ids)
        ious = mask_iou(pred.masks, true_masks) if pred.masks is not None and true_masks is not None else None
        for k, role in enumerate(ROLES):
            other = ROLES[1 - k]
            flux = pred.catalog[f"{role}_flux"].to_numpy(float)
            err_col = f"{role}_flux_err"
            flux_err = pred.catalog[err_col].to_numpy(float) if err_col in pred.catalog else np.full(len(ids), np.nan)
            flux_iso = catalog[f"{role}_flux"].to_numpy(float)
            frame = pd.DataFrame({
                "method": method, "blend_id": ids, "role": role, "gid": gids[role],
                "cls": catalog[f"{role}_cls"].to_numpy(), "other_cls": catalog[f"{other}_cls"].to_numpy(),
                "pair": pairs,
                "mag_iso": flux_to_mag(flux_iso, zeropoint), "flux_iso": flux_iso, "flux": flux, "flux_err": flux_err,
                "measured": np.isfinite(flux), "dmag": delta_mag(flux, flux_iso),
                "mag_diff": catalog[f"{role}_mag"].to_numpy(float) - catalog[f"{other}_mag"].to_numpy(float),
                "distance_px": catalog["distance_px"].to_numpy(float),
                "distance_own_re": catalog["distance_px"].to_numpy(float) / catalog[f"{role}_re_px"].to_numpy(float),
                "sep_outcome": sep.catalog["outcome"].to_numpy() if sep is not None else "",
                "sep_found": sep.catalog[f"{role}_flux"].notna().to_numpy() if sep is not None else False,
                "iou": ious[:, k] if ious is not None else np.nan,
            })
            if images:
                for key in ("chi2", "residual", "ssim"):
                    frame[f"img_{key}"] = images[method][key][:, k] if method in images else np.nan
            if has_truth:
                frame["flux_true"] = catalog[f"{role}_flux_true"].to_numpy(float)
                frame["dmag_true"] = delta_mag(flux, frame["flux_true"])
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _check_rows(pred: Prediction, ids: np.ndarray) -> None:
    got = pred.catalog["blend_id"].to_numpy()
    if len(got) != len(ids) or not np.array_equal(got, ids):
        raise InputError(f"predictions of {pred.method or 'a method'}: blend_id does not match the test "
                            f"catalogue ({len(got)} rows for {len(ids)} blends)")


def photometry_stats(flux: np.ndarray, reference: np.ndarray, *, zeropoint: float,
                     outlier_dmag: float = 0.75) -> dict:
    """The paper's statistics of one set of galaxies (see the module docstring).

    ``flux`` may hold NaN (not measured) and non-positive values (measured, no magnitude);
    ``reference`` is positive. Returns n, n_measured, completeness, bias, median, sigma,
    sigma_mad, outlier_fraction, mape_flux and mape_mag (NaN where nothing was measured).
    """
    flux, reference = np.asarray(flux, float), np.asarray(reference, float)
    measured = np.isfinite(flux)
    n, n_measured = len(flux), int(measured.sum())
    stats = {"n": n, "n_measured": n_measured, "completeness": n_measured / n if n else np.nan}
    keys = ("bias", "median", "sigma", "sigma_mad", "outlier_fraction", "mape_flux", "mape_mag")
    if n_measured == 0:
        return stats | dict.fromkeys(keys, np.nan)
    f, ref = flux[measured], reference[measured]
    dmag = delta_mag(f, ref)
    d = dmag[np.isfinite(dmag)]
    mag_ref = flux_to_mag(ref[np.isfinite(dmag)], zeropoint)
    robust = {} if len(d) else dict.fromkeys(("bias", "median", "sigma", "sigma_mad", "mape_mag"), np.nan)
    if len(d):
        robust = {"bias": float(d.mean()), "median": float(np.median(d)), "sigma": float(d.std()),
                  "sigma_mad": float(1.4826 * np.median(np.abs(d - np.median(d)))),
                  "mape_mag": float(100 * np.mean(np.abs(d) / mag_ref))}
    return stats | robust | {
        "outlier_fraction": float(np.mean(~(np.abs(dmag) <= outlier_dmag))),
        "mape_flux": float(100 * np.mean(np.abs(f - ref) / ref)),
    }


UNCERTAINTY_COLUMNS = ("n_sigma", "n_galaxies", "coverage68", "coverage68_lo", "coverage68_hi", "coverage95",
                       "coverage95_lo", "coverage95_hi", "pit_ks", "s68")


def uncertainty_stats(flux: np.ndarray, flux_err: np.ndarray, reference: np.ndarray,
                      galaxy: np.ndarray | None = None, *, n_boot: int = 1000) -> dict:
    """How well the flux uncertainties describe the errors. With z = (ln reference − ln flux)
    / s68, s68 = flux_err / flux the half-width of the central 68 % interval of ln F (a
    Laplace: :func:`blendphot.photometry.laplace_pit`): n_sigma (galaxies with an uncertainty),
    coverage68 / coverage95 (fractions inside the central 68 % / 95 % intervals), pit_ks (the
    largest gap between the PIT's cumulative distribution and the uniform one: 0 when the
    uncertainties are right) and s68 (its median).

    Test blends reuse their galaxies (the demo's 2000 test galaxies are 62 distinct ones), and a
    galaxy tends to be measured alike in every blend: ``galaxy`` (an id per row) gives
    n_galaxies and the 95 % interval of each coverage, coverage68_lo / _hi, from a bootstrap
    that resamples galaxies, not rows (``n_boot`` draws, seeded)."""
    z = log_flux_z(flux, flux_err, reference)
    ok = np.isfinite(z)
    if not ok.any():
        return {"n_sigma": 0, **dict.fromkeys(UNCERTAINTY_COLUMNS[1:], np.nan)}
    s68 = np.asarray(flux_err, float)[ok] / np.asarray(flux, float)[ok]
    z = z[ok]
    pit = np.sort(laplace_pit(z))
    n = pit.size
    ks = max(np.max(np.arange(1, n + 1) / n - pit), np.max(pit - np.arange(n) / n))
    ids = pd.factorize(np.asarray(galaxy)[ok])[0] if galaxy is not None else None
    out = {"n_sigma": int(n), "n_galaxies": int(ids.max() + 1) if ids is not None else np.nan}
    for p, k in INTERVAL_K.items():
        inside = np.abs(z) <= k
        out[f"coverage{p}"] = float(np.mean(inside))
        out[f"coverage{p}_lo"], out[f"coverage{p}_hi"] = (_galaxy_bootstrap(inside, ids, n_boot) if ids is not None
                                                          else (np.nan, np.nan))
    return out | {"pit_ks": float(ks), "s68": float(np.median(s68))}


def _galaxy_bootstrap(inside: np.ndarray, ids: np.ndarray, n_boot: int) -> tuple[float, float]:
    """2.5 and 97.5 percentiles of the fraction ``inside`` over galaxies drawn with replacement."""
    hits, rows = np.bincount(ids, weights=inside), np.bincount(ids).astype(float)
    rng = np.random.default_rng(0)
    draws = rng.integers(0, hits.size, size=(n_boot, hits.size))
    fractions = hits[draws].sum(axis=1) / rows[draws].sum(axis=1)
    lo, hi = np.percentile(fractions, [2.5, 97.5])
    return float(lo), float(hi)


def _bins(values: pd.Series, edges) -> pd.Series:
    labels = [f"[{a:g}, {b:g})" for a, b in itertools.pairwise(edges)]
    return pd.cut(values, edges, right=False, labels=labels)  # ordered categorical


GROUPINGS = ("all", "cls", "mag_diff", "distance_px", "distance_own_re", "sep_outcome", "sep_found")


def summarise(galaxies: pd.DataFrame, *, zeropoint: float, outlier_dmag: float = 0.75,
              mag_diff_bins=(-2, -1.333333, -0.666667, 0, 0.666667, 1.333333, 2),
              distance_bins_px=(0, 8, 13, 18, 30, 60, 100),
              distance_bins_own_re=(0, 1, 2, 3, 4, 6, 10, 100)) -> pd.DataFrame:
    """Statistics per method, role (cen, comp, both), reference and group.

    Methods that gave no flux at all (the U-Net alone) are left out. Groupings (column
    ``group_by``): all, cls (the galaxy's own morphology), mag_diff
    (mag_self - mag_other bins), distance_px, distance_own_re, sep_outcome, sep_found. References:
    ``isolated`` always, ``true`` when the table has true fluxes (plus the pseudo-method
    ``isolated`` measured against the truth). Methods with flux uncertainties also get the
    columns of :func:`uncertainty_stats`.
    """
    flux_methods = galaxies.groupby("method", sort=False)["measured"].any()
    g = galaxies[galaxies["method"].isin(flux_methods[flux_methods].index)].copy()  # not the U-Net alone
    g["all"] = "all"
    g["mag_diff"] = _bins(g["mag_diff"], mag_diff_bins)
    g["distance_px"] = _bins(g["distance_px"], distance_bins_px)
    g["distance_own_re"] = _bins(g["distance_own_re"], distance_bins_own_re)
    g["sep_found"] = np.where(g["sep_found"], "found", "missed")
    with_sigma = set(g.loc[g["flux_err"].notna(), "method"]) if "flux_err" in g else set()
    references = [("isolated", g, "flux", "flux_iso")]
    if "flux_true" in g:
        iso = g[g["method"] == g["method"].iloc[0]].copy()
        iso["method"], iso["flux"] = "isolated", iso["flux_iso"]
        references.append(("true", pd.concat([g, iso], ignore_index=True), "flux", "flux_true"))
    rows = []
    for reference, table, flux_col, ref_col in references:
        for role in ("cen", "comp", "both"):
            sub = table if role == "both" else table[table["role"] == role]
            for group_by in GROUPINGS:
                grouped = sub.groupby(["method", group_by], sort=False, dropna=True, observed=True)
                groups = sub[group_by].cat.categories if hasattr(sub[group_by], "cat") else \
                    sorted(sub[group_by].dropna().unique())  # bins in their order, labels sorted
                for method, group in ((m, v) for m in sub["method"].unique() for v in groups):
                    if (method, group) not in grouped.groups:
                        continue
                    part = grouped.get_group((method, group))
                    s = photometry_stats(part[flux_col].to_numpy(), part[ref_col].to_numpy(),
                                         zeropoint=zeropoint, outlier_dmag=outlier_dmag)
                    if method in with_sigma:
                        s |= uncertainty_stats(part[flux_col].to_numpy(), part["flux_err"].to_numpy(),
                                               part[ref_col].to_numpy(), part["gid"].to_numpy())
                    rows.append({"method": method, "role": role, "reference": reference, "group_by": group_by,
                                 "group": group, **s})
    return pd.DataFrame(rows)


def iou_by_pair(galaxies: pd.DataFrame) -> pd.DataFrame:
    """Mean IoU per mask method and morphology pair (both galaxies of each blend), plus 'all'."""
    g = galaxies[galaxies["iou"].notna()]
    if g.empty:
        return pd.DataFrame(columns=["method", "pair", "n", "mean_iou", "median_iou"])
    by_pair = g.groupby(["method", "pair"], sort=True)["iou"].agg(n="size", mean_iou="mean", median_iou="median")
    overall = g.groupby("method")["iou"].agg(n="size", mean_iou="mean", median_iou="median").assign(pair="all")
    return pd.concat([overall.reset_index(), by_pair.reset_index()], ignore_index=True)[
        ["method", "pair", "n", "mean_iou", "median_iou"]]


def sep_outcomes(sep: Prediction) -> pd.DataFrame:
    """Fraction of blends per detection outcome (paper: two 75 %, one 22 %, more 3 %)."""
    from blendphot.baseline import OUTCOMES

    counts = sep.catalog["outcome"].value_counts().reindex(list(OUTCOMES), fill_value=0)
    return pd.DataFrame({"outcome": counts.index, "n": counts.to_numpy(),
                         "fraction": counts.to_numpy() / max(len(sep.catalog), 1)})


def headline(metrics: pd.DataFrame, *, reference: str = "isolated") -> pd.DataFrame:
    """Method x role: the overall statistics (the summary's main table)."""
    m = metrics[(metrics["group_by"] == "all") & (metrics["reference"] == reference)]
    cols = ["method", "role", "n", "completeness", "bias", "sigma", "sigma_mad", "outlier_fraction", "mape_flux",
            "mape_mag"]
    return m[cols].reset_index(drop=True)


def noise_note(noise: float, trained: dict[str, float], *, tolerance: float = 1.5) -> str:
    """The summary's lines on the background noise of these blends against each network's
    training blends (``trained``: name -> noise σ), with a warning outside ``tolerance``."""
    lines = [f"\nBackground noise of these blends: {noise:.4g} e-/s (1.4826 × MAD of the stamp borders).\n"]
    for name, sigma in trained.items():
        ratio = noise / sigma
        lines.append(f"- {name} was trained on blends of noise {sigma:.4g} e-/s (ratio {ratio:.2f})\n")
        if not 1 / tolerance <= ratio <= tolerance:
            lines.append(f"  **Warning: {name} sees blends {ratio:.2f} times as noisy as it was trained on: "
                         "another depth, or pixels in other units or at another zero point.**\n")
    return "".join(lines)


def domain_gap(here: pd.DataFrame, in_domain: pd.DataFrame) -> pd.DataFrame:
    """σ(Δmag), flux MAPE and outlier fraction of every method on both galaxies, on the
    in-domain test blends and on these (two headline tables), for the methods in both."""
    cols = ["sigma", "mape_flux", "outlier_fraction"]
    io.require_columns(in_domain, ["method", "role", *cols], "the in-domain headline table")
    a = in_domain[in_domain["role"] == "both"].set_index("method")[cols]
    b = here[here["role"] == "both"].set_index("method")[cols]
    methods = [m for m in b.index if m in a.index]
    out = pd.DataFrame({"method": methods})
    for c in cols:
        out[f"{c}_in_domain"] = a.loc[methods, c].to_numpy()
        out[f"{c}_here"] = b.loc[methods, c].to_numpy()
    return out


def table1(counts: pd.DataFrame) -> pd.DataFrame:
    """Table 1: morphology counts before/after inspection, beside the paper's."""
    io.require_columns(counts, ["class", "before_inspection", "after_inspection"], "the split's table1.csv")
    out = counts.copy()
    out["paper_before"] = [PAPER_TABLE1.get(c, (np.nan, np.nan))[0] for c in out["class"]]
    out["paper_after"] = [PAPER_TABLE1.get(c, (np.nan, np.nan))[1] for c in out["class"]]
    total = out["class"] == "TOTAL"
    out.loc[total, ["paper_before", "paper_after"]] = [2618, 1919]
    return out


def table2(metrics: pd.DataFrame, models: dict[str, dict]) -> pd.DataFrame:
    """Table 2: per flux model, its size and flux MAPE (central, companion, both) on the test set.

    ``models`` maps a model name to its ``model.json`` (arch, filters, n_parameters).
    """
    m = metrics[(metrics["group_by"] == "all") & (metrics["reference"] == "isolated")]
    rows = []
    for name, info in models.items():
        if not architecture(info["arch"]).fluxes:
            continue
        mape = {role: m.loc[(m["method"] == name) & (m["role"] == role), "mape_flux"]
                for role in ("cen", "comp", "both")}
        rows.append({"model": name, "arch": info["arch"], "initial_filters": info["filters"],
                     "parameters_M": info["n_parameters"] / 1e6,
                     **{f"flux_error_{ROLE_NAMES[r]}_pct": (float(v.iloc[0]) if len(v) else np.nan)
                        for r, v in mape.items()}})
    return pd.DataFrame(rows)


def table3(baseline: dict) -> pd.DataFrame:
    """Table 3: the sep parameters of the hot and cold modes (from config ``baseline``)."""
    names = {"thresh": "Detection threshold (x rms)", "minarea": "Minimum pixel area per object",
             "deblend_cont": "Minimum contrast ratio", "deblend_nthresh": "Number of thresholds for deblending"}
    return pd.DataFrame({"parameter": list(names.values()),
                         "hot": [baseline["hot"][k] for k in names], "cold": [baseline["cold"][k] for k in names]})


def latex_table(frame: pd.DataFrame, *, caption: str, label: str, float_format: str = "{:.3g}") -> str:
    """A booktabs LaTeX table of ``frame`` (no pandas Styler, so no jinja2 needed)."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "--" if np.isnan(v) else float_format.format(v)
        return str(v).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")

    spec = "l" + "r" * (frame.shape[1] - 1)
    lines = [r"\begin{table}", r"\centering", f"\\caption{{{caption}}}", f"\\label{{{label}}}",
             f"\\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(cell(c) for c in frame.columns) + r" \\",
             r"\midrule"]
    lines += [" & ".join(cell(v) for v in row) + r" \\" for row in frame.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _md(frame: pd.DataFrame) -> str:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "–" if np.isnan(v) else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    head = "| " + " | ".join(frame.columns) + " |\n|" + "|".join(" --- " for _ in frame.columns) + "|\n"
    return head + "".join("| " + " | ".join(cell(v) for v in row) + " |\n" for row in frame.itertuples(index=False))


def _with_interval(row, column: str) -> str:
    lo, hi = getattr(row, f"{column}_lo", np.nan), getattr(row, f"{column}_hi", np.nan)
    value = getattr(row, column)
    return f"{value:.3f} [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else f"{value:.3f}"


def summary_markdown(metrics: pd.DataFrame, outcomes: pd.DataFrame | None, ious: pd.DataFrame,
                     *, deep_methods: list[str], mask_notes: list[str] | None = None,
                     image_table: pd.DataFrame | None = None, title: str | None = None,
                     in_domain: pd.DataFrame | None = None, noise: str | None = None) -> str:
    """``results/summary.md``: the headline table, sep's outcomes, IoU (with ``mask_notes``,
    the warnings of :func:`mask_warnings`), and the DL/sep ratios. ``in_domain``: the headline
    table of the blends the networks were trained for, shown beside this one with ``noise``
    (:func:`noise_note`; a transfer set)."""
    parts = [f"# {title or 'blendphot results on the test blends'}\n",
             "Δmag = mag_blend − mag_isolated. bias = mean Δmag, σ = its standard deviation, σ_MAD = "
             "1.4826 × MAD, outliers = |Δmag| > 0.75, MAPE on flux and on magnitude (%). "
             "Completeness = fraction of galaxies given a flux.\n"]
    head = headline(metrics)
    parts += ["## All test blends (reference: isolated photometry)\n", _md(head)]
    if in_domain is not None:
        parts += ["\n## Against the blends the networks were trained for (both galaxies)\n",
                  "in_domain: the workflow's own test blends (results/evaluate/headline.csv); here: these blends. "
                  "A network that loses more than sep from one set to the other has learnt the training "
                  "survey's particulars.\n",
                  _md(domain_gap(head, in_domain))]
        if noise:
            parts.append(noise)
    sep_found = metrics[(metrics["group_by"] == "sep_found") & (metrics["group"] == "found")
                        & (metrics["reference"] == "isolated")]
    if not sep_found.empty:
        parts += ["\n## Galaxies that sep detected (the paper's Figure 5 selection)\n",
                  _md(sep_found[["method", "role", "n", "bias", "sigma", "outlier_fraction", "mape_flux",
                                 "mape_mag"]])]
    if "true" in set(metrics["reference"]):
        parts += ["\n## Against the mock survey's true fluxes\n", _md(headline(metrics, reference="true"))]
    if "coverage68" in metrics:
        cov = metrics[(metrics["group_by"] == "all") & metrics["coverage68"].notna()].copy()
        cov["n_sigma"] = cov["n_sigma"].astype(int)
        cov["n_galaxies"] = cov["n_galaxies"].astype("Int64")
        if not cov.empty:
            parts += ["\n## Flux uncertainties (calibrated on the validation blends)\n",
                      "Fraction of galaxies whose reference flux lies inside the network's central 68 % and 95 % "
                      "intervals (nominal 0.68 and 0.95; ln F has a Laplace distribution whose 68 % half-width is "
                      "s68 = flux_err / flux). pit_ks: the largest gap between the PIT's distribution and the "
                      "uniform one (0: the uncertainties are right). s68: its median. The networks learn the "
                      "isolated fluxes: against the mock's true fluxes their intervals also miss the isolated "
                      "photometry's own scatter about the truth, so only the isolated rows are checked. "
                      "In brackets: the 95 % interval of each coverage from a bootstrap over the n_galaxies "
                      "distinct test galaxies (every galaxy appears in many blends, so they, not the blends, "
                      "set how well a coverage is known).\n",
                      _md(cov.assign(**{c: [_with_interval(r, c) for r in cov.itertuples()]
                                        for c in ("coverage68", "coverage95")})[
                          ["method", "role", "reference", "n_sigma", "n_galaxies", "coverage68", "coverage95",
                           "pit_ks", "s68"]])]
            off = cov[((cov["coverage68"] - 0.68).abs() > 0.05) | ((cov["coverage95"] - 0.95).abs() > 0.05)]
            parts += [f"\n**Warning: {r.method} ({r.role}, against {r.reference}): coverage {r.coverage68:.2f} / "
                      f"{r.coverage95:.2f} of nominal 0.68 / 0.95: its uncertainties are miscalibrated.**\n"
                      for r in off.itertuples() if r.role == "both" and r.reference == "isolated"]
    if image_table is not None and not image_table.empty:
        parts += ["\n## Deblended images (against the isolated stamps, within each galaxy's true mask)\n",
                  "chi2: mean ((pred − true) / σ)² per pixel, σ the blend's noise (a perfect noise-free image scores "
                  "about 0.5: the isolated stamp holds one of the blend's two noise layers); "
                  "residual: Σ|pred − true| / Σ true; SSIM over the stamp (1: identical). Their fluxes are in the "
                  "tables above: <name> measured with the isolated galaxies' Kron photometry, <name>_sum the "
                  "plain sum of the image.\n",
                  _md(image_table)]
    if outcomes is not None:
        parts += ["\n## sep detection outcomes (paper: two 75 %, one 22 %, more 3 %)\n", _md(outcomes)]
    if not ious.empty:
        parts += ["\n## Segmentation (IoU with the isolated galaxies' masks; paper: U-Net 0.82, "
                  "blend2mask2flux 0.70)\n", _md(ious[ious["pair"] == "all"])]
        parts += [f"\n{line}\n" for line in mask_notes or []]
    both = head[head["role"] == "both"].set_index("method")
    if "sep" in both.index and any(m in both.index for m in deep_methods):
        lines = ["\n## Deep learning against sep (paper: at least 4x in σ and flux MAPE)\n"]
        for m in (m for m in deep_methods if m in both.index):
            rs = both.loc["sep", "sigma"] / both.loc[m, "sigma"]
            rm = both.loc["sep", "mape_flux"] / both.loc[m, "mape_flux"]
            lines.append(f"- {m}: sep's σ / {m}'s = {rs:.2f}, flux MAPE ratio {rm:.2f}, outlier-fraction "
                         f"{outlier_ratio(both.loc['sep', 'outlier_fraction'], both.loc[m, 'outlier_fraction'])}\n")
            if rs < 1 or rm < 1:
                lines.append(f"  **Warning: {m} is less accurate than sep on these blends** (in "
                             f"{' and '.join(w for w, r in (('σ', rs), ('flux MAPE', rm)) if r < 1)}).\n")
        parts.append("".join(lines))
    return "\n".join(parts)


def outlier_ratio(sep: float, method: float) -> str:
    """sep's outlier fraction over a method's, as words where a fraction is zero: a method
    without outliers is unboundedly better, not better by 1e10."""
    if not (np.isfinite(sep) and np.isfinite(method)):
        return "ratio undefined (nothing measured)"
    if method == 0:
        return "ratio undefined (no outliers in either)" if sep == 0 else \
            f"ratio unbounded (no outliers; sep {100 * sep:.1f} %)"
    return f"ratio {sep / method:.2f}"


def structure_markdown(ks: pd.DataFrame, bins: pd.DataFrame) -> str:
    """The summary's section on the mock's galaxy structure against the measured one."""
    from blendphot.population import COMPARED_MAG_MAX

    k = ks.set_index("quantity")
    worst = bins.loc[(bins["ratio"] - 1).abs().idxmax()] if bins["ratio"].notna().any() else None
    lines = [f"\n## The mock's galaxies against measured CANDELS structure (F160W < {COMPARED_MAG_MAX:g})\n\n",
             f"{int(k['n_mock'].iloc[0])} mock galaxies against {int(k['n_catalogue'].iloc[0])} of van der Wel et "
             "al. (2012)'s GALFIT fits (or survey.mock.structure_catalog). Two-sample KS distances: "
             + ", ".join(f"{q.replace('log_re', 'log Re')} {k.loc[q, 'ks']:.3f}" for q in k.index)
             + "; medians (mock / catalogue): "
             + ", ".join(f"{q.replace('log_re', 'log Re')} {k.loc[q, 'median_mock']:.2f} / "
                         f"{k.loc[q, 'median_catalogue']:.2f}" for q in k.index if q != "mag") + ".\n"]
    if worst is not None:
        lines.append(f"Median Re per 0.5-mag bin, mock / catalogue: {bins['ratio'].min():.2f}-"
                     f"{bins['ratio'].max():.2f} (furthest: {worst['mag_lo']:g}-{worst['mag_hi']:g} mag, "
                     f"{int(worst['n_mock'])} mock galaxies).\n")
    differ = [q for q in k.index if k.loc[q, "p_value"] < 1e-3]  # beyond what sampling makes
    if differ:
        lines.append("**Warning: the mock's galaxies differ from the measured ones** (KS p < 0.001 in "
                     + ", ".join(differ) + "): see survey.mock.population.\n")
    return "".join(lines)


def run_evaluate(blends_dir: str | Path, prediction_dirs: dict[str, str | Path], sep_dir: str | Path,
                 table1_path: str | Path, out: dict[str, str | Path], *, zeropoint: float, settings: dict,
                 baseline: dict, title: str | None = None, in_domain: str | Path | None = None,
                 structure: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The evaluate stage: score every method on the test blends, write the tables and summary.

    ``prediction_dirs`` maps each network to its prediction folder; ``out`` maps the stage's
    output names (galaxies, metrics, iou, images, sep_outcomes, table1..3, headline and their
    ``_tex``, summary) to paths; ``settings`` is the config's ``evaluate`` section. Returns the headline
    table and the IoU table. ``title``: the summary's heading; ``in_domain``: the headline.csv of
    the networks' own test blends, compared with these in the summary (a transfer set);
    ``structure``: for a mock survey, its truth tables (``truth``), the structural catalogue
    (``catalog``, None for the shipped one) and the mock's brightest magnitude (``mag_min``):
    the mock's galaxies are compared with the catalogue's (``out`` structure, structure_bins).
    """
    reference = io.read_csv(in_domain, required=["method", "role"]) if in_domain else None
    sep = Prediction.load(sep_dir, method="sep")
    predictions = {name: Prediction.load(path, method=name, images=True) for name, path in prediction_dirs.items()}
    infos = {name: json.loads((Path(path) / "model.json").read_text()) for name, path in prediction_dirs.items()}
    with_images = [name for name, pred in predictions.items() if pred.images is not None]
    blends = Blends.load(blends_dir, in_memory=False, central=bool(with_images))
    images = {name: image_metrics(predictions[name].images, blends, infos[name]["noise_sigma"]) for name in with_images}
    for name in with_images:  # the plain sums of the deblended images, scored as one more method
        cat = predictions[name].catalog
        sums = cat.assign(cen_flux=cat["cen_flux_sum"], comp_flux=cat["comp_flux_sum"])[list(PREDICTION_COLUMNS)]
        predictions[f"{name}_sum"] = Prediction(sums, method=f"{name}_sum")
    galaxies = galaxy_table(blends.catalog, {**predictions, "sep": sep}, zeropoint=zeropoint,
                            true_masks=blends.masks, sep=sep, images=images)
    metrics = summarise(galaxies, zeropoint=zeropoint, outlier_dmag=settings["outlier_dmag"],
                        mag_diff_bins=settings["mag_diff_bins"], distance_bins_px=settings["distance_bins_px"],
                        distance_bins_own_re=settings["distance_bins_own_re"])
    ious = iou_by_pair(galaxies)
    outcomes = sep_outcomes(sep)
    tables = {
        "table1": (table1(io.read_csv(table1_path)), "Morphological mix before and after inspection "
                   "(paper columns: Boucaud et al. 2019, Table 1)."),
        "table2": (table2(metrics, infos), "Flux networks: size and flux MAPE (%) on the test blends."),
        "table3": (table3(baseline), "sep parameters of the hot and cold modes."),
        "headline": (headline(metrics), "Photometric errors per method and galaxy role, all test blends."),
    }
    io.write_csv(out["galaxies"], galaxies)
    io.write_csv(out["metrics"], metrics)
    io.write_csv(out["iou"], ious)
    image_table = image_summary(galaxies)
    io.write_csv(out["images"], image_table)
    io.write_csv(out["sep_outcomes"], outcomes)
    for name, (table, caption) in tables.items():
        io.write_csv(out[name], table)
        with io.atomic_path(out[f"{name}_tex"], ".tex") as tmp:
            tmp.write_text(latex_table(table, caption=caption, label=f"tab:{name}"))
    flux_networks = [m for m in prediction_dirs if architecture(infos[m]["arch"]).predicts_fluxes]
    health = {name: mask_health(pred.masks) for name, pred in predictions.items() if pred.masks is not None}
    noise = None
    if reference is not None:  # another set: is it at the depth and in the units trained on?
        noise = noise_note(border_noise(blends.images), {m: infos[m]["noise_sigma"] for m in prediction_dirs})
    structure_text = None
    if structure is not None:
        from blendphot.population import compare_structure, read_mock_galaxies, read_structure_catalog

        ks, bins = compare_structure(read_mock_galaxies(structure["truth"]),
                                     read_structure_catalog(structure["catalog"]), mag_min=structure["mag_min"])
        io.write_csv(out["structure"], ks)
        io.write_csv(out["structure_bins"], bins)
        structure_text = structure_markdown(ks, bins)
    with io.atomic_path(out["summary"], ".md") as tmp:
        tmp.write_text(summary_markdown(metrics, outcomes, ious, deep_methods=flux_networks, image_table=image_table,
                                        mask_notes=mask_warnings(health), title=title, in_domain=reference,
                                        noise=noise) + (structure_text or ""))
    return tables["headline"][0], ious
