"""The mock's galaxy structure against the measured CANDELS catalogue (van der Wel et al. 2012).

Draws the catalogued and faint galaxies of mock fields (no rendering) with the demo config's
mock settings, for each population model and several seeds, and prints the two-sample KS
distances of log Re, n, q and magnitude at F160W < 23.5 against the catalogue's flag <= 1,
resolved galaxies, and the median Re per 0.5-mag bin (mock / catalogue).

    python bench/bench_population.py --seeds 1 2 --fields 20
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from blendphot.config import load_configs
from blendphot.mock import MockField, draw_population
from blendphot.population import compare_structure, read_structure_catalog


def draw(config: dict, population: str, seed: int, n_fields: int) -> pd.DataFrame:
    params = {**config["survey"]["mock"], "population": population}
    field = MockField("bench", 150.1, 2.2, 4096, 4096)
    rng = np.random.default_rng(seed)
    truth = pd.concat([draw_population(rng, field, params, pixel_scale=config["survey"]["pixel_scale"],
                                       zeropoint=config["survey"]["zeropoint"]) for _ in range(n_fields)])
    return truth[truth["kind"] == "galaxy"].rename(columns={"sersic_n": "n"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--fields", type=int, default=20, help="4096 px fields per seed (20: ~5500 galaxies < 23.5)")
    args = ap.parse_args()
    config = load_configs([args.config])
    catalog = read_structure_catalog()
    rows, bins = [], []
    for population in ("generator", "empirical"):
        for seed in args.seeds:
            ks, by_bin = compare_structure(draw(config, population, seed, args.fields), catalog,
                                           mag_min=config["survey"]["mock"]["mag_bright"][0])
            rows.append({"population": population, "seed": seed, "n_mock": int(ks["n_mock"].iloc[0]),
                         **{f"ks_{q}": round(v, 3) for q, v in zip(ks["quantity"], ks["ks"], strict=True)},
                         **{f"median_{q}": round(v, 3) for q, v in zip(ks["quantity"], ks["median_mock"],
                                                                       strict=True)}})
            bins.append(by_bin.assign(population=population, seed=seed))
    print(pd.DataFrame(rows).to_string(index=False))
    print("\ncatalogue medians:", {q: round(v, 3) for q, v in zip(ks["quantity"], ks["median_catalogue"], strict=True)},
          f"({int(ks['n_catalogue'].iloc[0])} galaxies < 23.5)")
    table = pd.concat(bins)
    print("\nmedian Re, mock / catalogue, per 0.5-mag bin:")
    print(table.pivot_table(index=["mag_lo", "n_catalogue"], columns=["population", "seed"], values="ratio")
          .round(3).to_string())


if __name__ == "__main__":
    main()
