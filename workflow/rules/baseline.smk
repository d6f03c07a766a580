# Stage 10 - baseline: sep cold/hot detection and photometry on the test blends (paper §3.3),
# in the shared prediction format, with sep's segments of the matched objects as its masks.


rule run_baseline:
    input:
        images="results/blend/test/images.npy",
        catalog="results/blend/test/catalog.csv",
    output:
        predictions="results/baseline/sep/predictions.csv",
        masks="results/baseline/sep/masks.npy",
    params:
        baseline=config["baseline"],
    log:
        "results/logs/baseline.log",
    benchmark:
        "results/benchmarks/baseline.tsv"
    conda:
        "../../envs/evaluate.yaml"
    container:
        CONTAINERS["evaluate"]
    script:
        "../scripts/run_baseline.py"
