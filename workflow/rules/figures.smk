# Stage 12 - figures: the paper's figures 1, 2 and 5-12 (PNG + the configured formats), all
# registered in the Snakemake report (`snakemake --report results/report.html`).
# `snakemake results/figures/figure5.png` draws one.


rule plot_figure:
    input:
        unpack(figure_inputs),
    output:
        report("results/figures/{fig}.png", caption="../report/figure.rst", category="Figures"),
        expand("results/figures/{{fig}}.{ext}", ext=FIG["formats"]),
    log:
        "results/logs/figures/{fig}.log",
    benchmark:
        "results/benchmarks/figures/{fig}.tsv"
    wildcard_constraints:
        fig="|".join(FIGURE_INPUTS),
    conda:
        "../../envs/evaluate.yaml"
    container:
        CONTAINERS["evaluate"]
    params:
        figure=figure_params,
    script:
        "../scripts/plot_figure.py"
