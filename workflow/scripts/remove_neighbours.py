"""Remove the neighbours on every stamp and measure the isolated galaxies."""
from pathlib import Path

from blendphot.clean import CleanParams, run_remove_neighbours
from blendphot.workflow import stage

with stage(snakemake) as run:
    inp, p = snakemake.input, snakemake.params
    result = run_remove_neighbours([Path(f).parent for f in inp.images], Path(snakemake.output.catalog).parent,
                                   CleanParams(**p.clean), seed=p.seed, zeropoint=p.zeropoint,
                                   segmentations=list(inp.segmentations))
    run.log_metrics(result.qa)
    run.log_artifact(snakemake.output.qa)
