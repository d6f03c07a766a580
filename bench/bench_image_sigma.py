"""How an image network's flux uncertainties are best made: variants of the table of its errors,
made on one set of blends and checked on the other (validation -> test, then test ->
validation: two sets of 62 distinct galaxies each on the demo).

    python bench/bench_image_sigma.py [--results results] [--model blend2image] [--out bench/results/image_sigma.csv]

Needs a finished `make run`. Variants: one width for every galaxy (`global`); five bins of the
predicted mag_self - mag_other (`dmag5`, the workflow's); three bins of mag_self - mag_other by
three bins of the centre distance (`dmag3xdist3`); five bins of |ln(Kron / sum)|, how much the
two fluxes measured on the same deblended image disagree (`disagree5`). For each: the coverage
of the 68 % and 95 % intervals overall, the largest gap to 0.68 of the 68 % coverage over the
evaluation's bins of mag_self - mag_other and of distance, and the PIT's KS distance.
"""
import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from blendphot.blend import Blends
from blendphot.clean import CleanParams
from blendphot.config import load_config
from blendphot.evaluate import uncertainty_stats
from blendphot.inference import predict_model
from blendphot.photometry import pair_mag_diff
from blendphot.prediction import Prediction
from blendphot.train import load_model


def features(cat: pd.DataFrame, blends: Blends) -> dict[str, np.ndarray]:
    """(N, 2) features of every galaxy: what a table may be binned on."""
    fluxes = cat[["cen_flux", "comp_flux"]].to_numpy(float)
    sums = cat[["cen_flux_sum", "comp_flux_sum"]].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        disagree = np.abs(np.log(fluxes / sums))
    distance = np.repeat(blends.catalog["distance_px"].to_numpy(float)[:, None], 2, axis=1)
    return {"dmag": pair_mag_diff(fluxes), "disagree": disagree, "distance": distance}


def bin_index(values: list[np.ndarray], edges: list[np.ndarray]) -> np.ndarray:
    """One bin number per galaxy over the product of each feature's bins; -1 where one is NaN."""
    index = np.zeros(values[0].shape, int)
    bad = np.zeros(values[0].shape, bool)
    for v, e in zip(values, edges, strict=True):
        index = index * (len(e) + 1) + np.digitize(np.nan_to_num(v), e)
        bad |= ~np.isfinite(v)
    return np.where(bad, -1, index)


VARIANTS = {"global": [], "dmag5": [("dmag", 5)], "dmag3xdist3": [("dmag", 3), ("distance", 3)],
            "disagree5": [("disagree", 5)]}


def fit(variant, feats, fluxes, true):
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(np.log(true / fluxes))
    ok = np.isfinite(err)
    edges = [np.quantile(feats[name][ok & np.isfinite(feats[name])], np.linspace(0, 1, n + 1)[1:-1])
             for name, n in VARIANTS[variant]]
    index = bin_index([feats[name] for name, _ in VARIANTS[variant]], edges) if edges else np.zeros(err.shape, int)
    table = {b: float(np.quantile(err[ok & (index == b)], 0.68)) for b in np.unique(index[ok]) if b >= 0}
    table[-1] = float(np.quantile(err[ok], 0.68))
    return edges, table


def apply(variant, edges, table, feats, fluxes):
    index = bin_index([feats[name] for name, _ in VARIANTS[variant]], edges) if edges else \
        np.zeros(fluxes.shape, int)
    width = np.vectorize(lambda b: table.get(b, table[-1]))(index)
    return fluxes * width


def score(fluxes, errs, true, blends: Blends, cfg) -> dict:
    """The evaluation's coverage and PIT statistics overall, and the largest gap of the 68 %
    coverage to 0.68 over the bins of true mag_self - mag_other and of distance."""
    flux, err, ref = (np.asarray(a, float).ravel() for a in (fluxes, errs, true))
    dm = blends.catalog["mag_diff"].to_numpy(float)[:, None] * np.array([1, -1])  # true mag_self - mag_other
    dist = np.repeat(blends.catalog["distance_px"].to_numpy(float)[:, None], 2, axis=1)
    gaps = []
    for values, edges in ((dm, cfg["evaluate"]["mag_diff_bins"]), (dist, cfg["evaluate"]["distance_bins_px"])):
        which = np.digitize(values.ravel(), edges)
        for b in range(1, len(edges)):
            cell = uncertainty_stats(flux[which == b], err[which == b], ref[which == b])
            if cell["n_sigma"] >= 50:
                gaps.append(abs(cell["coverage68"] - 0.68))
    s = uncertainty_stats(flux, err, ref)
    return {"coverage68": s["coverage68"], "coverage95": s["coverage95"], "worst_bin_gap68": float(max(gaps)),
            "pit_ks": s["pit_ks"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="results")
    ap.add_argument("--model", default="blend2image")
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--out", default=None, help="also write the table here (CSV)")
    args = ap.parse_args()
    res, cfg = Path(args.results), load_config(args.config)
    model, _ = load_model(res / "train" / args.model / "model.pt")
    sets = {}
    for split in ("val", "test"):
        blends = Blends.load(res / "blend" / split, in_memory=False)
        if split == "test":
            cat = Prediction.load(res / "predict" / args.model).catalog
        else:
            cat = predict_model(model, blends, device="cpu", clean_params=CleanParams(**cfg["clean"]),
                                uncertainties=False).catalog
        sets[split] = (blends, cat[["cen_flux", "comp_flux"]].to_numpy(float), features(cat, blends))
    rows = []
    for made_on, checked_on in (("val", "test"), ("test", "val")):
        (b_fit, f_fit, x_fit), (b_chk, f_chk, x_chk) = sets[made_on], sets[checked_on]
        for variant in VARIANTS:
            edges, table = fit(variant, x_fit, f_fit, b_fit.targets("isolated"))
            errs = apply(variant, edges, table, x_chk, f_chk)
            rows.append({"variant": variant, "made_on": made_on, "checked_on": checked_on,
                         **score(f_chk, errs, b_chk.targets("isolated"), b_chk, cfg)})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        table.to_csv(args.out, index=False, float_format="%.4f")


if __name__ == "__main__":
    main()
