"""Train and predict every architecture of the registry on the GPU (bf16 autocast, channels
last) through the stage entries themselves, on toy blends written in the blend stage's layout.

    python bench/gpu_smoke.py [--epochs 3] [--blends 2048]

Prints, per architecture, the epochs run, the training throughput, the validation metrics and
the prediction throughput; fails when any stage entry fails on the device.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blendphot.architectures import ARCHITECTURES
from blendphot.inference import run_predict_model
from blendphot.prediction import Prediction
from blendphot.train import run_train_model
from tests.toy import toy_blends


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--blends", type=int, default=2048)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(f"device: {name}; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for split, n, seed in (("train", args.blends, 1), ("val", args.blends // 4, 2), ("test", args.blends // 4, 3)):
            toy_blends(n, size=64, seed=seed).save(tmp / split)
        trained = {}
        for arch, spec in ARCHITECTURES.items():
            settings = {"model": {"arch": arch, "filters": 32, "unet_depth": 4, "unet_filters": 16},
                        "train": {"normalisation": "linear", "epochs": args.epochs, "batch_size": 64,
                                  "learning_rate": 1e-3, "lr_factor": 0.5, "lr_patience": 5, "lr_min": 1e-7,
                                  "early_stopping_patience": 10, "min_delta": 1e-3,
                                  "loss_weights": {"flux": 1.0, "mask": 0.1}},
                        "init_from": None}
            init = trained.get(spec.init_from) if spec.init_from else None
            start = time.perf_counter()
            summary = run_train_model(settings, seed=1, train_dir=tmp / "train", val_dir=tmp / "val",
                                      state_dir=tmp / arch / "state", model_out=tmp / arch / "model.pt",
                                      history_out=tmp / arch / "history.csv", init_from=init, device=args.device)
            wall = time.perf_counter() - start
            trained[arch] = tmp / arch / "model.pt"
            best = summary["best"]
            figures = run_predict_model(tmp / arch / "model.pt", tmp / "test", tmp / arch / "predict", name=arch,
                                        device=args.device)
            pred = Prediction.load(tmp / arch / "predict")
            assert (pred.masks is not None) == spec.masks
            assert pred.catalog[["cen_flux", "comp_flux"]].notna().all().all() == spec.fluxes
            metrics = {k: round(v, 3) for k, v in best.items() if k.startswith("val_")}
            print(f"{arch:16s} {summary['device']}: {summary['epochs_run']} epochs in {wall:.1f} s, "
                  f"{best['samples_per_s']:.0f} train blends/s; best {metrics}; "
                  f"predict {figures['blends_per_s']:.0f} blends/s", flush=True)


if __name__ == "__main__":
    main()
