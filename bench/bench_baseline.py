"""sep baseline throughput (blends/s) per number of worker processes:
`python bench/bench_baseline.py [--workers 1 2 4] [--n 2000] [--flux kron]`.

Synthetic blends: two noisy Sérsic-like (exponential) profiles at the candels_blender
distances, so both the cold pass and, where it finds one object, the hot pass run.
"""
import argparse
import os
import time

import numpy as np
import pandas as pd

from blendphot.baseline import BaselineConfig, measure_blends


def synthetic_blends(n, size=128, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    c = size // 2
    images = np.empty((n, size, size), np.float32)
    re = rng.uniform(2, 8, (n, 2))
    r = rng.uniform(re.max(1), np.minimum(4 * re.min(1), 64))
    angle = rng.uniform(0, 2 * np.pi, n)
    dx, dy = np.rint(r * np.cos(angle)), np.rint(r * np.sin(angle))
    for k in range(n):
        cen = np.exp(-1.68 * np.hypot(x - c, y - c) / re[k, 0])
        comp = np.exp(-1.68 * np.hypot(x - c - dx[k], y - c - dy[k]) / re[k, 1])
        images[k] = 0.5 * cen + 0.3 * comp + rng.normal(0, 0.01, (size, size))
    return images, pd.DataFrame({"blend_id": np.arange(n), "dx": dx, "dy": dy, "cen_re_px": re[:, 0]})


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--workers", type=int, nargs="+", default=sorted({1, 2, os.cpu_count() or 1}))
    ap.add_argument("--flux", choices=["kron", "iso"], default="kron")
    args = ap.parse_args()
    images, catalog = synthetic_blends(args.n)
    cfg = BaselineConfig(flux=args.flux)
    print(f"{args.n} blends of 128x128, flux {args.flux}, {os.cpu_count()} CPUs")
    for workers in args.workers:
        start = time.perf_counter()
        pred = measure_blends(images, catalog, cfg, workers=workers)
        elapsed = time.perf_counter() - start
        outcomes = pred.catalog["outcome"].value_counts(normalize=True).round(3).to_dict()
        print(f"workers {workers:2d}: {args.n / elapsed:7.0f} blends/s   outcomes {outcomes}")


if __name__ == "__main__":
    main()
