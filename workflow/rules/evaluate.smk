# Stage 11 - evaluate: photometric errors of every method (the networks with fluxes and sep),
# IoU of every method with masks, image metrics of every image network, Tables 1-3 and
# results/summary.md (the headline table).


rule evaluate:
    input:
        **STRUCTURE_INPUTS,
        catalog="results/blend/test/catalog.csv",
        masks="results/blend/test/masks.npy",
        central="results/blend/test/central.npy",
        table1="results/split/table1.csv",
        predictions=expand("results/predict/{model}", model=MODELS),
        sep="results/baseline/sep",
    output:
        **{t: report(f"results/evaluate/{t}.csv", caption=f"../report/{t}.rst", category="Tables") for t in TABLES},
        **{f"{t}_tex": f"results/evaluate/{t}.tex" for t in TABLES},
        **STRUCTURE_OUTPUTS,
        galaxies="results/evaluate/galaxies.csv",
        metrics="results/evaluate/metrics.csv",
        iou="results/evaluate/iou.csv",
        images="results/evaluate/images.csv",
        sep_outcomes="results/evaluate/sep_outcomes.csv",
        summary="results/summary.md",
    log:
        "results/logs/evaluate.log",
    benchmark:
        "results/benchmarks/evaluate.tsv"
    conda:
        "../../envs/evaluate.yaml"
    container:
        CONTAINERS["evaluate"]
    params:
        models=MODELS,
        evaluate=config["evaluate"],
        baseline=config["baseline"],
        zeropoint=config["survey"]["zeropoint"],
        structure_mag_min=STRUCTURE_MAG_MIN,
    script:
        "../scripts/evaluate_methods.py"
