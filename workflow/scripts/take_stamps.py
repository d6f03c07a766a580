"""Take the selected stamps of a ready stamp set, with weight maps from each stamp's own noise."""
from pathlib import Path

from blendphot.stampset import run_take_stamps
from blendphot.workflow import stage

with stage(snakemake) as run:
    inp = snakemake.input
    stamps = run_take_stamps(Path(inp.images).parent, inp.catalog, Path(snakemake.output.catalog).parent,
                             settings=snakemake.params.stamps)
    run.log_metrics({"kept": len(stamps.catalog), "dropped": len(stamps.dropped),
                     "noise_sigma_median": float(stamps.catalog["noise_sigma"].median())})
