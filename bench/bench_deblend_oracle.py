"""How well blendphot.deblend measures perfect deblended images: the test blends' own isolated
images (central.npy and the rest of the blend), measured as an image network's output is,
against the catalogue's isolated fluxes. The floor under any image network's flux error.

    python bench/bench_deblend_oracle.py [--results results]

Needs a finished `make run` (its test blends). Prints flux MAPE, sigma(dmag), bias and
completeness of the Kron fluxes and of the plain sums, both galaxies.
"""
import argparse
from pathlib import Path

import numpy as np

from blendphot.blend import Blends
from blendphot.clean import CleanParams
from blendphot.config import load_config
from blendphot.deblend import measure_deblended
from blendphot.evaluate import photometry_stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default="results")
    ap.add_argument("--config", default="config/config.yaml", help="the run's config (its clean settings)")
    args = ap.parse_args()
    cfg = load_config(args.config)
    test = Blends.load(Path(args.results) / "blend/test", central=True, in_memory=False)
    dx, dy = (test.catalog[k].to_numpy(float) for k in ("dx", "dy"))
    measured = measure_deblended(test.isolated(), dx, dy, CleanParams(**cfg["clean"]))
    reference = test.catalog[["cen_flux", "comp_flux"]].to_numpy().ravel()
    for name, columns in (("kron", ("cen_flux", "comp_flux")), ("sum", ("cen_flux_sum", "comp_flux_sum"))):
        flux = np.stack([measured[c] for c in columns], axis=1).ravel()
        s = photometry_stats(flux, reference, zeropoint=cfg["survey"]["zeropoint"])
        print(f"{name}: flux MAPE {s['mape_flux']:.2f} %, sigma {s['sigma']:.4f}, bias {s['bias']:+.4f}, "
              f"completeness {s['completeness']:.3f} ({len(flux)} galaxies)")


if __name__ == "__main__":
    main()
