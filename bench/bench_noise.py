"""What the mock's noise model does to sep: its detection outcomes and flux errors.

For each noise variant and seed, runs the workflow's data stages on the demo config (mock
survey, selection, stamps, neighbour removal, inspection, split, blends) and the sep baseline
on the test blends, in a folder of its own, then prints sep's outcomes (two, one_central,
one_companion, none, more), completeness, flux MAPE against the isolated galaxies (all measured
galaxies, and where sep found both) and σ of Δmag. Variants: `drizzle` (config/config.yaml's CANDELS drizzle
model), `white` (white noise of the same per-pixel rms; the catalogue's magnitude errors follow
the noise model, so the selected galaxies differ a little too), `drizzle-x1.5` / `white-x1.5` (the
noise 1.5x the demo's). The paper's catalogue: 74.3 / 16.6 / 6.2 / 2.9 %, MAPE 37.9 % (32.9 %
where both are found), completeness 88.6 %.

    python bench/bench_noise.py --seeds 1 2 --fields 4 --test-blends 3000

Each run takes ~2-4 min on 2 cores (4 fields of 4096 px).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "drizzle": {},
    "white": {"drizzle": False},
    "drizzle-x1.5": {"noise_scale": 1.5},
    "white-x1.5": {"drizzle": False, "noise_scale": 1.5},
}


def overlay(base: dict, variant: str, seed: int, n_fields: int, test_blends: int) -> dict:
    mock = base["survey"]["mock"]
    settings = dict(VARIANTS[variant])
    scale = settings.pop("noise_scale", 1.0)
    fields = [{**mock["fields"][0], "name": f"bench-{k}", "ra": 53.12 + 0.1 * k} for k in range(n_fields)]
    survey = {"fields": fields, **settings,
              "noise_sigma": {k: v * scale for k, v in mock["noise_sigma"].items()}}
    return {"seed": seed, "mlflow": {"enabled": False}, "survey": {"mock": survey},
            "blend": {"n_blends": {"train": 10, "val": 10, "test": test_blends}}}


def run(workdir: Path, config: dict, cores: int) -> float:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "overlay.yaml").write_text(yaml.safe_dump(config))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "results/baseline/sep", "--cores", str(cores),
                    "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
                    "--configfile", str(ROOT / "config/config.yaml"), str(workdir / "overlay.yaml"), "--quiet"],
                   check=True, cwd=ROOT)
    return time.perf_counter() - t0


def measure(results: Path, zeropoint: float) -> dict:
    from blendphot.blend import Blends
    from blendphot.evaluate import galaxy_table, sep_outcomes, summarise
    from blendphot.prediction import Prediction

    sep = Prediction.load(results / "baseline/sep", method="sep")
    catalog = Blends.load(results / "blend/test", in_memory=False).catalog
    outcomes = sep_outcomes(sep).set_index("outcome")["fraction"]
    metrics = summarise(galaxy_table(catalog, {"sep": sep}, zeropoint=zeropoint, sep=sep), zeropoint=zeropoint)
    iso = metrics[(metrics["method"] == "sep") & (metrics["role"] == "both") & (metrics["reference"] == "isolated")]
    every = iso[iso["group_by"] == "all"].iloc[0]
    two = iso[(iso["group_by"] == "sep_outcome") & (iso["group"] == "two")]
    two = two.iloc[0] if len(two) else {"mape_flux": float("nan")}
    return {**{f"{k}_%": round(100 * v, 1) for k, v in outcomes.items()},
            "completeness": round(every["completeness"], 3), "mape_%": round(every["mape_flux"], 1),
            "mape_two_%": round(two["mape_flux"], 1), "sigma": round(every["sigma"], 3),
            "sigma_mad": round(every["sigma_mad"], 3), "n_blends": len(sep.catalog)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["drizzle", "white"], choices=list(VARIANTS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--fields", type=int, default=4, help="4096 px mock fields per run")
    ap.add_argument("--test-blends", type=int, default=3000)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep each run's folder")
    args = ap.parse_args()
    from blendphot.config import load_configs

    base = load_configs([str(ROOT / "config/config.yaml")])
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-noise-"))
    rows = []
    for variant in args.variants:
        for seed in args.seeds:
            folder = args.workdir / f"{variant}-{seed}"
            wall = run(folder, overlay(base, variant, seed, args.fields, args.test_blends), args.cores)
            rows.append({"variant": variant, "seed": seed, **measure(folder / "results", base["survey"]["zeropoint"]),
                         "wall_s": round(wall)})
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
            if not args.keep:
                shutil.rmtree(folder)
    print()
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
