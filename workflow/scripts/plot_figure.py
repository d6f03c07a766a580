"""Draw one of the paper's figures and save it in every configured format."""
from blendphot.figures import run_plot_figure
from blendphot.workflow import stage

with stage(snakemake) as run:
    run_plot_figure(snakemake.wildcards.fig, snakemake.input, list(snakemake.output), snakemake.params.figure)
    run.log_artifact(snakemake.output[0], "figures")
