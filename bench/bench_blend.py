"""Blend throughput (blends/s, one core): `python bench/bench_blend.py`.

Reports the whole make_blends call into fresh memory (what the stage pays, page faults
included) and into output arrays already resident (the composition itself).
"""
import time

import numpy as np
import pandas as pd

from blendphot.blend import FreshBlends, make_blends


def synthetic_pool(n_pool: int, size: int = 128, seed: int = 0):
    """(images, masks, pool catalogue) of ``n_pool`` noise stamps with the columns the blender
    reads: a stand-in for the clean stage's galaxies when only the speed matters."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0, 0.01, (n_pool, size, size)).astype(np.float32)
    masks = (rng.random((n_pool, size, size)) > 0.9).astype(np.uint8)
    pool = pd.DataFrame({"gid": [f"g{i}" for i in range(n_pool)], "cls": "disk",
                         "mag_auto": rng.uniform(19, 23.5, n_pool), "flux_auto": 1.0,
                         "re_arcsec": rng.lognormal(np.log(0.35), 0.4, n_pool)})
    return images, masks, pool


def main(n_pool=1150, n_blends=20000, repeats=3):
    images, masks, pool = synthetic_pool(n_pool)
    kw = dict(max_mag_diff=2.0, min_shift_re=0.5, max_shift=64)
    out_i = np.zeros((n_blends, 128, 128), np.float32)
    out_m = np.zeros((n_blends, 2, 128, 128), np.uint8)
    print(f"pool {n_pool} galaxies, {n_blends} blends of 128x128, best of {repeats}")
    for rule in ("paper", "candels_blender"):
        fresh, resident = [], []
        for r in range(repeats):
            t = time.perf_counter()
            make_blends(images, masks, pool, n_blends, rule=rule, rng=np.random.default_rng(r), pixel_scale=0.06,
                        **kw)
            fresh.append(time.perf_counter() - t)
            t = time.perf_counter()
            make_blends(images, masks, pool, n_blends, rule=rule, rng=np.random.default_rng(r), pixel_scale=0.06,
                        out_images=out_i, out_masks=out_m, **kw)
            resident.append(time.perf_counter() - t)
        sampler = FreshBlends(images, masks, pool, n_blends, settings={"rule": rule, **kw}, pixel_scale=0.06,
                              seed=0)
        augmented = []
        for r in range(repeats):
            t = time.perf_counter()
            sampler.epoch(r)
            augmented.append(time.perf_counter() - t)
        print(f"{rule:16s} fresh memory {n_blends / min(fresh):9.0f} blends/s   "
              f"resident outputs {n_blends / min(resident):9.0f} blends/s   "
              f"fresh epoch, turned stamps (train.blends: fresh) {n_blends / min(augmented):9.0f} blends/s")


if __name__ == "__main__":
    main()
