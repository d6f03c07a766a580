"""Make the blends of one split, written chunk by chunk into memory-mapped .npy files."""
import time
from pathlib import Path

from blendphot.blend import run_make_blends
from blendphot.workflow import stage

with stage(snakemake) as run:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    start = time.perf_counter()
    blends = run_make_blends(Path(inp.catalog).parent, inp.galaxies, Path(out.catalog).parent,
                             split=snakemake.wildcards.split, settings=p.blend, seed=p.seed,
                             pixel_scale=p.pixel_scale)
    elapsed = time.perf_counter() - start
    run.log_metrics({"blends": len(blends), "blends_per_s": len(blends) / max(elapsed, 1e-9),
                     "median_distance_px": float(blends.catalog["distance_px"].median())})
