"""The paper's networks trained with the workflow's own loop on a stamp set's blends.

    python bench/bench_train_stampset.py --results results [--config config/paper-stamps.yaml]
        [--models blend2flux unet] [--train 6000 --val 2000] [--epochs 3]

Takes the cleaned stamps and the galaxy split of a finished run (``results/clean``,
``results/split``; e.g. a stamps-source run on a mock-built set), draws train and val blends
with the blend stage's code and the config's rule and seed, and trains each model of the
config at its own size with ``blendphot.train.run_train_model`` (the train stage itself: bf16
autocast and channels-last on CUDA, checkpoints every epoch) for a few epochs. Reports the
device, whether the CPU guard lets the job start, the seconds per epoch (training pass, and
the whole epoch with evaluation and checkpoints), the validation MAPE per epoch and the
trivial predictor's, and the time the paper's schedule (70 epochs over the config's training
blends) would take at that speed.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from blendphot import io
from blendphot.blend import make_blends
from blendphot.config import child_seed, load_config, model_seed, model_settings, runtime_settings, training_flops
from blendphot.device import check_device
from blendphot.train import run_train_model


def write_blends(results: Path, cfg: dict, counts: dict, out: Path) -> None:
    catalog = io.read_csv(results / "clean/catalog.csv")
    galaxies = io.read_csv(results / "split/galaxies.csv")
    images, masks = io.load_array(results / "clean/images.npy"), io.load_array(results / "clean/masks.npy")
    b = cfg["blend"]
    for split, n in counts.items():
        rows = np.flatnonzero(catalog["gid"].isin(galaxies.loc[galaxies["split"] == split, "gid"]).to_numpy())
        blends = make_blends(images[rows], masks[rows], catalog.iloc[rows].reset_index(drop=True), n, rule=b["rule"],
                             max_mag_diff=b["max_mag_diff"], min_shift_re=b["min_shift_re"], max_shift=b["max_shift"],
                             pixel_scale=cfg["survey"]["pixel_scale"], split=split,
                             rng=np.random.default_rng(child_seed(cfg["seed"], f"blend_{split}")))
        blends.save(out / split)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--config", default="config/paper-stamps.yaml")
    parser.add_argument("--models", nargs="+", default=["blend2flux", "unet"])
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--val", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    cfg = load_config(args.config)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or 'cpu'})"
    print(f"device: {gpu}; torch {torch.__version__}; /dev/nvidiactl present: {Path('/dev/nvidiactl').exists()}")
    report = {"device": gpu, "torch": torch.__version__, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        write_blends(args.results, cfg, {"train": args.train, "val": args.val}, tmp / "blend")
        print(f"{args.train} train + {args.val} val blends drawn in {time.perf_counter() - t0:.1f} s")
        for name in args.models:
            settings = model_settings(cfg, name)
            settings["train"]["epochs"] = args.epochs
            settings["train"]["early_stopping_patience"] = args.epochs + 1
            if settings["init_from"]:
                raise SystemExit(f"{name} starts from another model; bench the models without init_from")
            flops = training_flops(cfg, name)
            check_device(args.device, flops, what=f"train.models.{name}")  # the train job's guard
            start = time.perf_counter()
            summary = run_train_model(settings, seed=model_seed(cfg["seed"], name), train_dir=tmp / "blend" / "train",
                                      val_dir=tmp / "blend" / "val", state_dir=tmp / name / "state",
                                      model_out=tmp / name / "model.pt", history_out=tmp / name / "history.csv",
                                      device=args.device, **runtime_settings(cfg))
            wall = time.perf_counter() - start
            hist = summary["history"]
            per_epoch = float(np.median([h["epoch_time_s"] for h in hist]))
            n_paper = cfg["blend"]["n_blends"]["train"]
            row = {"parameters": summary["parameters"], "device": summary["device"],
                   "train_pass_s_per_epoch": per_epoch, "wall_s": wall, "wall_s_per_epoch": wall / len(hist),
                   "samples_per_s": float(np.median([h["samples_per_s"] for h in hist])),
                   "val": [{k: round(h[f"val_{k}"], 4) for k in ("mape_central", "mape_companion", "iou")
                            if f"val_{k}" in h} for h in hist],
                   "trivial_val_mape": summary["trivial_val_mape"],
                   "paper_schedule_h": 70 * n_paper / float(np.median([h["samples_per_s"] for h in hist])) / 3600,
                   "full_training_flop_estimate": flops}
            report["models"][name] = row
            print(f"{name}: {row['parameters'] / 1e6:.1f} M parameters on {row['device']}: training pass "
                  f"{per_epoch:.2f} s/epoch ({row['samples_per_s']:.0f} blends/s), whole epoch with evaluation "
                  f"and checkpoints {row['wall_s_per_epoch']:.2f} s; val per epoch {row['val']} "
                  f"(trivial {row['trivial_val_mape']:.1f}); 70 epochs x {n_paper} blends at this speed: "
                  f"{row['paper_schedule_h'] * 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
