"""Draw one of the paper's figures and save it in every configured format."""
from blendphot.figures import render, save
from blendphot.workflow import stage

with stage(snakemake) as run:
    p = snakemake.params
    save(render(p.name, snakemake.input, p.figure), list(snakemake.output), dpi=p.figure["dpi"])
    run.log_artifact(snakemake.output[0], "figures")
