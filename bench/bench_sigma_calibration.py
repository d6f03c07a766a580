"""Whether a σ head's calibration should depend on the galaxy: one factor for all (the
workflow's), against one factor per bin of the raw predicted width or of the centre distance,
made on one set of blends and checked on the other (validation -> test, then test ->
validation).

    python bench/bench_sigma_calibration.py [--results results] [--out bench/results/sigma_calibration.csv]

Needs a finished `make run`. For every network with a σ head: the coverage of the 68 % and
95 % intervals on the checked set, and the largest gap of the 68 % coverage to 0.68 over the
evaluation's distance bins (at least 50 galaxies each).
"""
import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from blendphot.blend import Blends
from blendphot.config import load_config
from blendphot.evaluate import uncertainty_stats
from blendphot.inference import predict_model
from blendphot.prediction import Prediction
from blendphot.train import load_model


def coverage(fluxes, widths, blends: Blends, distance_edges) -> dict:
    """The evaluation's 68 % and 95 % coverage, and the largest gap of the 68 % one to 0.68
    over the distance bins."""
    flux, ref = fluxes.ravel(), blends.targets("isolated").ravel()
    err = (fluxes * widths).ravel()
    dist = np.repeat(blends.catalog["distance_px"].to_numpy(float)[:, None], 2, axis=1).ravel()
    which = np.digitize(dist, distance_edges)
    cells = [uncertainty_stats(flux[which == b], err[which == b], ref[which == b])
             for b in range(1, len(distance_edges))]
    s = uncertainty_stats(flux, err, ref)
    return {"coverage68": s["coverage68"], "coverage95": s["coverage95"],
            "worst_distance_gap68": float(max(abs(c["coverage68"] - 0.68) for c in cells if c["n_sigma"] >= 50))}


def factors(ratio, feature, n_bins=5):
    """The 68th percentile of |error| / width overall (feature None) or per equal-count bin."""
    ok = np.isfinite(ratio) & (np.isfinite(feature) if feature is not None else True)
    if feature is None:
        return None, np.array([np.quantile(ratio[ok], 0.68)])
    edges = np.quantile(feature[ok], np.linspace(0, 1, n_bins + 1)[1:-1])
    which = np.digitize(feature, edges)
    return edges, np.array([np.quantile(ratio[ok & (which == b)], 0.68) for b in range(n_bins)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="results")
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--out", default=None, help="also write the table here (CSV)")
    args = ap.parse_args()
    res, cfg = Path(args.results), load_config(args.config)
    edges_px = cfg["evaluate"]["distance_bins_px"]
    rows = []
    for name, entry in cfg["train"]["models"].items():
        if not entry.get("flux_sigma") or entry["arch"] == "blend2image":  # the image table: bench_image_sigma.py
            continue
        model, mc = load_model(res / "train" / name / "model.pt")
        sets = {}
        for split in ("val", "test"):
            blends = Blends.load(res / "blend" / split, in_memory=False)
            cat = (Prediction.load(res / "predict" / name).catalog if split == "test" else
                   predict_model(model, blends, device="cpu", amp=False, channels_last=False).catalog)
            fluxes = cat[["cen_flux", "comp_flux"]].to_numpy(float)
            raw = cat[["cen_flux_err", "comp_flux_err"]].to_numpy(float) / fluxes / mc.sigma_scale
            distance = np.repeat(blends.catalog["distance_px"].to_numpy(float)[:, None], 2, axis=1)
            sets[split] = (blends, fluxes, raw, {"raw_width": raw, "distance": distance})
        for made_on, checked_on in (("val", "test"), ("test", "val")):
            b_fit, f_fit, w_fit, x_fit = sets[made_on]
            b_chk, f_chk, w_chk, x_chk = sets[checked_on]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.abs(np.log(b_fit.targets("isolated") / f_fit)) / w_fit
            for variant, feature in (("one factor", None), ("5 bins of raw width", "raw_width"),
                                     ("5 bins of distance", "distance")):
                edges, k = factors(ratio, x_fit[feature] if feature else None)
                scale = k[np.digitize(x_chk[feature], edges)] if feature else k[0]
                rows.append({"network": name, "variant": variant, "made_on": made_on, "checked_on": checked_on,
                             **coverage(f_chk, w_chk * scale, b_chk, edges_px)})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        table.to_csv(args.out, index=False, float_format="%.4f")


if __name__ == "__main__":
    main()
