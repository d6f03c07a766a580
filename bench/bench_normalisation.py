"""Which input normalisation trains better: linear (F/sigma) or arcsinh(F/sigma)?

    python bench/bench_normalisation.py [--blends results/blend] [--filters 16] [--epochs 12]

Trains the same blend2flux (same seed, same batches) on the blends of a finished run with
each normalisation and prints the validation MAPE after every epoch, next to the trivial
predictor's (every flux = the training median). The config's default is the winner.
"""
from __future__ import annotations

import argparse
import tempfile

from blendphot.blend import Blends
from blendphot.data import noise_sigma
from blendphot.models import ModelConfig
from blendphot.train import TrainConfig, fit, median_flux, trivial_mape


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blends", default="results/blend")
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    train, val = (Blends.load(f"{args.blends}/{split}", masks=False) for split in ("train", "val"))
    sigma, scale = noise_sigma(train.images), median_flux(train.fluxes)
    print(f"{len(train)} train / {len(val)} val blends; sigma {sigma:.4g} e-/s; "
          f"trivial predictor val MAPE {trivial_mape(train.fluxes, val.fluxes):.1f} %")
    curves = {}
    for norm in ("linear", "arcsinh"):
        cfg = ModelConfig("blend2flux", image_size=train.images.shape[-1], filters=args.filters, normalisation=norm,
                          noise_sigma=sigma, flux_scale=scale)
        tcfg = TrainConfig(epochs=args.epochs, learning_rate=args.learning_rate, seed=args.seed,
                           early_stopping_patience=args.epochs)
        with tempfile.TemporaryDirectory() as state:
            summary = fit(cfg, tcfg, train, val, state, device="auto")
        curves[norm] = [h["val_loss"] for h in summary["history"]]
    print("epoch  linear  arcsinh   (validation MAPE, %)")
    for epoch, (a, b) in enumerate(zip(curves["linear"], curves["arcsinh"], strict=True)):
        print(f"{epoch:5d}  {a:6.2f}  {b:7.2f}")
    print(f"best   {min(curves['linear']):6.2f}  {min(curves['arcsinh']):7.2f}")


if __name__ == "__main__":
    main()
