"""Neighbour removal on a ready stamp set: segment each stamp again with sep, or use the
set's own segmentation map? Measured on stamp sets cut from mock surveys, whose truth is known.

    python bench/bench_stampset_cleaning.py [--seeds 666 1] [--config config/config.yaml]

For each seed, the mock survey of the config (with that seed) is generated and selected by
the workflow itself (in a scratch copy), a stamp set in the Zenodo layout is cut from its
mosaics (neighbours kept, a SExtractor-like segmentation: `blendphot mock-stampset`), and
its stamps are cleaned three ways with the clean stage's code and parameters:

- mosaic: the mock path itself (stamps cut from the mosaics, the mosaic's weight map);
- stamps/sep: the stamp-set path, noise estimated from each stamp, sep segments again;
- stamps/archive: the same, with the set's own segmentation map.

Per way: stamps kept, the fraction of cleaned stamps where sep finds exactly one source, the
rms of the replaced pixels over the true noise (the weight map's; 1 is ideal), and the
cleaned Kron flux over the generator's true flux (median and 16-84 % range; the Kron
aperture misses a few per cent of a Sersic profile's light even in isolation).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from blendphot import io
from blendphot.clean import CleanParams, clean_stamps
from blendphot.config import load_config
from blendphot.stamps import cut_stamps, open_mosaic
from blendphot.stampset import mock_stampset, read_stampset, stamp_weights

ROOT = Path(__file__).resolve().parents[1]


def survey(config: Path, seed: int, work: Path) -> Path:
    """Run the workflow up to the selection for ``config`` with ``seed``; returns results/."""
    for name in ("Snakefile", "workflow", "config", "profiles", "envs", "containers"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    cfg = yaml.safe_load(config.read_text())
    cfg["seed"] = seed
    cfg["mlflow"] = {"tracking_uri": f"sqlite:///{work}/mlflow.db", "experiment": "bench"}
    (work / "bench.yaml").write_text(yaml.safe_dump(cfg))
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--quiet", "all", "--configfile",
                    "bench.yaml", "--until", "select_galaxies", "--", "results/select/selected.csv"],
                   cwd=work, check=True)
    return work / "results"


def true_weights(results: Path, catalog: pd.DataFrame, size: int) -> np.ndarray:
    """The mosaic weight-map stamps of the galaxies of ``catalog`` (in its order)."""
    out = {}
    for field, rows in catalog.groupby("field"):
        hi, image, wcs = open_mosaic(results / "survey" / str(field) / "image.fits")
        hw, weight, _ = open_mosaic(results / "survey" / str(field) / "weight.fits")
        with hi, hw:
            stamps = cut_stamps(image, weight, wcs, rows.reset_index(drop=True), size=size)
        out.update(zip(stamps.catalog["gid"], stamps.weights, strict=True))
    return np.stack([out[g] for g in catalog["gid"]])


def figures(table: pd.DataFrame, truth: pd.DataFrame, replaced_noise: list[float]) -> dict:
    both = table.merge(truth, on="gid")
    ratio = (both["flux_auto"] / both["flux_true"]).to_numpy()
    return {"kept": len(table), "single_source": float((table["n_sources_after"] == 1).mean()),
            "replaced_rms/noise": float(np.median(replaced_noise)),
            "flux/true median": float(np.median(ratio)),
            "flux/true p16": float(np.percentile(ratio, 16)), "flux/true p84": float(np.percentile(ratio, 84)),
            "within 10 %": float(np.mean(np.abs(ratio - 1) < 0.1))}


def replaced_noise(originals, cleaned, weights) -> list[float]:
    """rms of the replaced pixels of each stamp over the true noise sigma there."""
    out = []
    for o, c, w in zip(originals, cleaned, weights, strict=True):
        changed = o != c
        if changed.sum() > 10:
            out.append(float(np.std(c[changed]) * np.sqrt(np.median(w[changed]))))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[666, 1])
    parser.add_argument("--config", type=Path, default=ROOT / "config/config.yaml")
    args = parser.parse_args()
    cfg = load_config(args.config)
    params, size, scale = CleanParams(**cfg["clean"]), cfg["stamps"]["size"], cfg["survey"]["pixel_scale"]
    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            results = survey(args.config, seed, Path(tmp))
            root, _ = mock_stampset(results, Path(tmp) / "stampset", size=size, pixel_scale=scale)
            truth = io.read_csv(root / "truth.csv")
            sset = read_stampset(root, pixel_scale=scale)
            weights = true_weights(results, sset.catalog, size)
            est_weights, _ = stamp_weights(sset.images, sset.segmentation)
            est_sigma = 1 / np.sqrt(np.median(est_weights, axis=(1, 2)))
            true_sigma = 1 / np.sqrt(np.median(weights, axis=(1, 2)))
            print(f"seed {seed}: {len(sset.catalog)} stamps; estimated / true noise sigma: median "
                  f"{np.median(est_sigma / true_sigma):.3f}, 16-84 % {np.percentile(est_sigma / true_sigma, 16):.3f}-"
                  f"{np.percentile(est_sigma / true_sigma, 84):.3f}")
            ways = {"mosaic": (weights, None), "stamps/sep": (est_weights, None),
                    "stamps/archive": (est_weights, sset.segmentation)}
            for way, (w, seg) in ways.items():
                c = clean_stamps(
                    sset.images, w, sset.catalog, params, seed=cfg["seed"], zeropoint=cfg["survey"]["zeropoint"],
                    segmentations=seg, progress=False)
                cleaned, originals, table, dropped = c.images, c.originals, c.catalog, c.dropped
                kept = sset.catalog["gid"].isin(table["gid"]).to_numpy()
                rows.append({"seed": seed, "way": way, **figures(table, truth, replaced_noise(originals, cleaned,
                                                                                               weights[kept])),
                             "dropped": len(dropped)})
    frame = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
