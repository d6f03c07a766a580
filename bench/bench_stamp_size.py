"""What a smaller stamp loses: the isolated fluxes and the companions' light, at 64, 96 and 128 pixels.

Reads a finished run's 128-pixel stamps (``results/stamps/<field>/``) and test blends, then for each
size S:

- cleans the central S x S crop of every stamp with the clean stage's own code and settings (a
  stamp cut at S pixels is exactly that crop), and compares the isolated Kron flux ``flux_auto``
  with the flux the mock galaxy was drawn with (``flux_true``): galaxies kept, median and 16-84 %
  of the ratio, fraction within 10 %;
- for every test blend, the fraction of the companion's light (its cleaned stamp inside its
  segment) that the shift leaves inside the S x S blend.

    python bench/bench_stamp_size.py [results] [--config config/config.yaml]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from blendphot.clean import CleanedStamps, CleanParams, clean_stamps
from blendphot.config import validate_config


def crop(a: np.ndarray, size: int) -> np.ndarray:
    full = a.shape[-1]
    lo = full // 2 - size // 2
    return a[..., lo:lo + size, lo:lo + size]


def isolated_fluxes(results: Path, config: dict, size: int) -> pd.DataFrame:
    params = CleanParams(**config["clean"])
    tables = []
    for field_dir in sorted((results / "stamps").iterdir()):
        images = np.load(field_dir / "images.npy")
        weights = np.load(field_dir / "weights.npy")
        catalog = pd.read_csv(field_dir / "catalog.csv")
        images, weights = (np.ascontiguousarray(crop(a, size)) for a in (images, weights))  # sep needs it
        cleaned = clean_stamps(images, weights, catalog, params, seed=config["seed"],
                               zeropoint=config["survey"]["zeropoint"], progress=False)
        tables.append(cleaned.catalog[["gid", "flux_auto", "flux_true"]])
    return pd.concat(tables, ignore_index=True)


def companion_light(clean: CleanedStamps, blends: pd.DataFrame, size: int) -> np.ndarray:
    """Fraction of each test companion's segment light inside the S x S blend after its shift."""
    light = np.where(clean.masks > 0, np.clip(clean.images, 0, None), 0).astype(np.float64)
    row = dict(zip(clean.catalog["gid"], range(len(clean.catalog)), strict=True))
    full = light.shape[-1]
    lo = full // 2 - size // 2  # the crop() window [lo, lo + size) of the blend
    out = np.empty(len(blends))
    for i, (gid, dx, dy) in enumerate(blends[["comp_gid", "dx", "dy"]].itertuples(index=False)):
        img = light[row[gid]]
        # the companion's pixel (y, x) lands at (y + dy, x + dx): the window holds its pixels
        # [lo - dy, lo + size - dy) x [lo - dx, lo + size - dx), clipped to its stamp
        ys, xs = slice(max(lo - dy, 0), max(lo + size - dy, 0)), slice(max(lo - dx, 0), max(lo + size - dx, 0))
        out[i] = img[ys, xs].sum() / img.sum()
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results", type=Path)
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128])
    args = parser.parse_args(argv)
    with open(args.config) as fh:
        config = validate_config(yaml.safe_load(fh))
    clean = CleanedStamps.load(args.results / "clean")
    blends = pd.read_csv(args.results / "blend/test/catalog.csv")
    rows = []
    for size in args.sizes:
        iso = isolated_fluxes(args.results, config, size)
        ratio = iso["flux_auto"] / iso["flux_true"]
        comp = companion_light(clean, blends, size)
        rows.append({"size": size, "galaxies_kept": len(iso), "flux_auto/true_median": ratio.median(),
                     "p16": ratio.quantile(0.16), "p84": ratio.quantile(0.84),
                     "within_10pct": (abs(ratio - 1) < 0.1).mean(),
                     "comp_light_median": np.median(comp), "comp_light_p01": np.quantile(comp, 0.01),
                     "comp_ge_99pct": (comp >= 0.99).mean(), "comp_ge_90pct": (comp >= 0.90).mean()})
    print(pd.DataFrame(rows).to_string(index=False, float_format="{:.3f}".format))


if __name__ == "__main__":
    main()
