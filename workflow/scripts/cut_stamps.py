"""Cut the stamps of one field."""
from pathlib import Path

from blendphot.stamps import run_cut_stamps
from blendphot.workflow import stage

with stage(snakemake) as run:
    inp = snakemake.input
    stamps = run_cut_stamps(inp.image, inp.weight, inp.catalog, Path(snakemake.output.catalog).parent,
                            field=snakemake.wildcards.field, settings=snakemake.params.stamps)
    run.log_metrics({"kept": len(stamps.catalog), "dropped": len(stamps.dropped),
                     **{f"dropped_{k}": v for k, v in stamps.dropped["reason"].value_counts().items()}})
