"""Science choices of the flux networks, measured on the same fixed test blends.

    python bench/bench_science.py [--variants a,b] [--seeds 1,2] [--epochs N] [--threads 2] [--results results]

Needs a finished `make run` (or its blend stage): the cleaned stamps and split (the training
galaxies), the fixed validation and test blends, sep's predictions on them, and, for the
variants that start from it, the trained U-Net (whose keys they take). Each variant trains one model from scratch
per seed with the demo's settings unless it says otherwise (``--epochs`` sets the demo's epochs;
a variant's own epochs still win), at the size of the run's stamps, then measures on the 1000 fixed
test blends, both galaxies: flux MAPE and sigma(dmag) against the isolated flux (the paper's
reference) and against the mock's true flux, and sep's ratios to them (sep / network, > 1:
the network is better). Prints one line per run and appends it to
bench/results/science.csv, with the machine and the wall time.
"""
import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from blendphot.blend import Blends, FreshBlends, load_pool
from blendphot.clean import CleanParams
from blendphot.config import child_seed, load_config
from blendphot.data import noise_sigma
from blendphot.evaluate import image_metrics, mask_health, mask_iou, photometry_stats, uncertainty_stats
from blendphot.inference import predict_model
from blendphot.models import ModelConfig
from blendphot.prediction import Prediction
from blendphot.train import TrainConfig, calibrate_model, fit, load_model, median_flux

ZP = 25.9463
DEMO = dict(epochs=15, batch_size=32, learning_rate=1e-3, lr_factor=0.5, lr_patience=3, early_stopping_patience=5)
B2F = dict(arch="blend2flux", filters=16, conv_layers=5, dense_layers=2)
UNET = dict(unet_depth=4, unet_filters=8)
B2I = dict(arch="blend2image", **UNET, unet_centre_channel=True)
# name: (model keys, training keys, fresh blends?, start from the U-Net?)
VARIANTS = {
    "b2f_fixed_mape": (B2F, {}, False, False),
    "b2f_fresh_mape": (B2F, {}, True, False),
    "b2f_fresh_log": (B2F, {"flux_loss": "log"}, True, False),
    "b2f_fresh_log_d128": ({**B2F, "dense_units": 128}, {"flux_loss": "log"}, True, False),
    "b2f_fresh_log_equi": ({**B2F, "flux_output": "equivariant"}, {"flux_loss": "log"}, True, False),
    "b2f_fresh_log_avg": ({**B2F, "pooling": "avg"}, {"flux_loss": "log"}, True, False),
    "b2f_fresh_log_equi_avg": ({**B2F, "pooling": "avg", "flux_output": "equivariant"}, {"flux_loss": "log"},
                               True, False),
    "b2f_fresh_log_avg_d128": ({**B2F, "pooling": "avg", "dense_units": 128}, {"flux_loss": "log"}, True, False),
    "b2f_fresh_log_cosine": (B2F, {"flux_loss": "log", "lr_schedule": "cosine"}, True, False),
    "b2f_fresh_log_truth": (B2F, {"flux_loss": "log", "target": "truth"}, True, False),
    "b2f_fresh_log_sigma": ({**B2F, "flux_sigma": True}, {"flux_loss": "log"}, True, False),
    # the demo's blend2flux (train.models.blend2flux; run with --epochs 30), and a cosine schedule; fit's early
    # stopping applies under cosine too, so _nostop lets the rate anneal to lr_min at the last epoch
    "b2f_demo_plateau": ({**B2F, "flux_sigma": True}, {"flux_loss": "log"}, True, False),
    "b2f_demo_cosine": ({**B2F, "flux_sigma": True}, {"flux_loss": "log", "lr_schedule": "cosine"}, True, False),
    "b2f_demo_cosine_nostop": ({**B2F, "flux_sigma": True},
                               {"flux_loss": "log", "lr_schedule": "cosine", "early_stopping_patience": 1000},
                               True, False),
    "b2m2f_paper_weights": ({"arch": "blend2mask2flux", **UNET, "filters": 8}, {"epochs": 10}, False, True),
    "b2m2f_mask_weight_30": ({"arch": "blend2mask2flux", **UNET, "filters": 8},
                             {"epochs": 10, "mask_weight": 30.0}, False, True),
    "b2m2f_frozen_unet": ({"arch": "blend2mask2flux", **UNET, "filters": 8},
                          {"epochs": 10, "freeze_unet_epochs": 10}, False, True),
    "unet_fixed_bce": ({"arch": "unet", **UNET}, {"epochs": 6, "learning_rate": 2e-3}, False, False),
    "unet_fixed_dice": ({"arch": "unet", **UNET}, {"epochs": 6, "learning_rate": 2e-3, "mask_loss": "bce_dice"},
                        False, False),
    "unet_fixed_centre": ({"arch": "unet", **UNET, "unet_centre_channel": True}, {"epochs": 6, "learning_rate": 2e-3},
                          False, False),
    "b2m2f_frozen_fresh_log": ({"arch": "blend2mask2flux", **UNET, "filters": 8},
                               {"epochs": 10, "freeze_unet_epochs": 10, "flux_loss": "log"}, True, True),
    # the image network: its fluxes measured on its images (Kron), and their plain sums
    "b2i_pixels": (B2I, {"epochs": 8, "learning_rate": 2e-3}, True, False),
    "b2i_footprints": (B2I, {"epochs": 8, "learning_rate": 2e-3, "image_loss": "footprints"}, True, False),
    "b2i_pixels_unet": (B2I, {"epochs": 8, "learning_rate": 2e-3}, True, True),
    "b2i_footprints_unet": (B2I, {"epochs": 8, "learning_rate": 2e-3, "image_loss": "footprints"}, True, True),
    "b2i_pixels_unet_lr5": (B2I, {"epochs": 8, "learning_rate": 5e-3}, True, True),
    "b2i_pixels_unet_20ep": (B2I, {"epochs": 20, "learning_rate": 2e-3}, True, True),
    "b2i_pixels_unet_12ep": (B2I, {"epochs": 12, "learning_rate": 2e-3}, True, True),
}


def score(catalog, blends, columns):
    """photometry_stats of a prediction catalogue's two fluxes against ``columns`` of the blends."""
    flux = catalog[["cen_flux", "comp_flux"]].to_numpy(float).ravel()
    ref = blends.catalog[list(columns)].to_numpy(float).ravel()
    return photometry_stats(flux, ref, zeropoint=ZP)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--epochs", type=int, help=f"the demo's epochs (default {DEMO['epochs']})")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", default="results")
    ap.add_argument("--state", default="bench/state", help="where each run keeps its checkpoints")
    ap.add_argument("--out", default="bench/results/science.csv")
    ap.add_argument("--score-only", action="store_true", help="score the runs' kept best.pt, do not train")
    args = ap.parse_args()
    demo_train = {**DEMO, **({"epochs": args.epochs} if args.epochs else {})}
    torch.set_num_threads(args.threads)
    r = Path(args.results)
    pool = load_pool(r / "clean", r / "split/galaxies.csv", "train")
    train_fixed = Blends.load(r / "blend/train")
    val, test = Blends.load(r / "blend/val", central=True), Blends.load(r / "blend/test", central=True)
    sep = Prediction.load(r / "baseline/sep", method="sep").catalog
    sep_iso = score(sep, test, ("cen_flux", "comp_flux"))
    sep_true = score(sep, test, ("cen_flux_true", "comp_flux_true"))
    demo = load_config("config/config.yaml")  # the demo's blend rule and pixel scale
    print(f"sep on the test blends: MAPE {sep_iso['mape_flux']:.2f} %, sigma {sep_iso['sigma']:.3f} "
          f"(true flux: {sep_true['mape_flux']:.2f} %, {sep_true['sigma']:.3f})")
    n_train = len(train_fixed)
    for name in args.variants.split(","):
        model_keys, train_keys, fresh, from_unet = VARIANTS[name]
        for seed in map(int, args.seeds.split(",")):
            if fresh:
                data = FreshBlends(*pool, n_train, settings=demo["blend"], pixel_scale=demo["survey"]["pixel_scale"],
                                   seed=child_seed(seed, "fresh_blends"), central=model_keys["arch"] == "blend2image")
                first = data.epoch(0)
            else:
                data = first = train_fixed
            if from_unet:  # the run's U-Net decides the U-Net keys
                unet_cfg = torch.load(r / "train/unet/model.pt", weights_only=True)["model_config"]
                model_keys = {**model_keys, **{k: unet_cfg[k] for k in ("unet_depth", "unet_filters",
                                                                        "overlap_channel", "unet_centre_channel")}}
            if first.size != test.size:
                raise SystemExit(f"training blends of {first.size} px, test blends of {test.size} px")
            target = train_keys.get("target", "isolated")
            cfg = ModelConfig(**model_keys, image_size=first.size, normalisation="linear",
                              noise_sigma=noise_sigma(first.images), flux_scale=median_flux(first.targets(target)))
            tcfg = TrainConfig(**{**demo_train, **train_keys, "seed": seed})
            t0 = time.perf_counter()
            state = Path(args.state) / f"{name}-{seed}"
            if args.score_only:
                saved = torch.load(state / "last.pt", weights_only=True)
                summary = {"best_path": state / "best.pt", "epochs_run": len(saved["history"]),
                           "best_epoch": saved["best_epoch"]}
            else:
                for f in state.glob("*.pt"):
                    f.unlink()
                summary = fit(cfg, tcfg, data, val, state, init_from=r / "train/unet/model.pt" if from_unet else None)
            wall = time.perf_counter() - t0

            model, _ = load_model(summary["best_path"])
            pred = predict_model(model, test, device="cpu", amp=False, method=name,
                                 clean_params=CleanParams(**demo["clean"]))
            iso = score(pred.catalog, test, ("cen_flux", "comp_flux"))
            images = {}
            if pred.images is not None:  # the plain sums, and the images against the isolated stamps
                cat = pred.catalog
                sums = cat.assign(cen_flux=cat["cen_flux_sum"], comp_flux=cat["comp_flux_sum"])
                m = image_metrics(pred.images, test, cfg.noise_sigma)
                images = {"mape_sum": score(sums, test, ("cen_flux", "comp_flux"))["mape_flux"],
                          "completeness": iso["completeness"],
                          "chi2_median": float(np.nanmedian(m["chi2"])), "ssim_mean": float(np.nanmean(m["ssim"])),
                          "residual_median": float(np.nanmedian(m["residual"]))}
            sigma = {}
            if cfg.flux_sigma:  # calibrated on the validation blends, as run_train_model does
                scale, _ = calibrate_model(model, val, target=target)
                flux = pred.catalog[["cen_flux", "comp_flux"]].to_numpy().ravel()
                err = scale * pred.catalog[["cen_flux_err", "comp_flux_err"]].to_numpy().ravel()
                u = uncertainty_stats(flux, err, test.catalog[["cen_flux", "comp_flux"]].to_numpy().ravel())
                sigma = {"sigma_scale": scale, **{k: u[k] for k in ("coverage68", "coverage95", "pit_ks")}}
            true = score(pred.catalog, test, ("cen_flux_true", "comp_flux_true"))
            masks = dict.fromkeys(["iou", "masks_empty_central", "masks_empty_companion", "masks_same_blob"], np.nan)
            if pred.masks is not None:
                masks = {"iou": float(np.nanmean(mask_iou(pred.masks, test.masks))),
                         **{f"masks_{k}": v for k, v in mask_health(pred.masks).items() if k != "n"}}
            row = {"variant": name, "seed": seed, "epochs": tcfg.epochs, "epochs_run": summary["epochs_run"],
                   "best_epoch": summary["best_epoch"], "wall_s": round(wall, 1) if not args.score_only else np.nan,
                   **masks,
                   "mape": iso["mape_flux"], "sigma": iso["sigma"], "outliers": iso["outlier_fraction"],
                   "ratio_sigma": sep_iso["sigma"] / iso["sigma"],
                   "ratio_mape": sep_iso["mape_flux"] / iso["mape_flux"],
                   "mape_true": true["mape_flux"], "sigma_true": true["sigma"], **sigma, **images,
                   "machine": f"{platform.processor() or platform.machine()}, {args.threads} threads",
                   "settings": json.dumps({**model_keys, **train_keys, "fresh": fresh, "init_from_unet": from_unet})}
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                           if k != "settings"), flush=True)
            append_row(Path(args.out), row)


def append_row(out: Path, row: dict) -> None:
    """Append ``row`` to the CSV ``out``; columns it has that the file lacks (e.g. coverage68)
    are added at the end of the header, the earlier rows left as they are, empty there."""
    if not out.exists():
        pd.DataFrame([row]).to_csv(out, index=False)
        return
    lines = out.read_text().splitlines()
    header = lines[0].split(",")
    new = [k for k in row if k not in header]
    if new:
        lines = [",".join(header + new)] + [line + "," * len(new) for line in lines[1:]]
        header += new
    body = pd.DataFrame([row]).reindex(columns=header).to_csv(index=False, header=False).rstrip("\n")
    out.write_text("\n".join([*lines, body]) + "\n")


if __name__ == "__main__":
    main()
