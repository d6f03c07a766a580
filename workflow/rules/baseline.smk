# Stage 10 - baseline: sep cold/hot detection and photometry on the test blends (paper §3.3),
# as a prediction folder like the networks', with sep's segments of the matched objects as
# its masks.


rule run_baseline:
    input:
        images="results/blend/test/images.npy",
        catalog="results/blend/test/catalog.csv",
    output:
        directory("results/baseline/sep"),
    log:
        "results/logs/baseline.log",
    benchmark:
        "results/benchmarks/baseline.tsv"
    conda:
        "../../envs/evaluate.yaml"
    container:
        CONTAINERS["evaluate"]
    params:
        baseline=config["baseline"],
    script:
        "../scripts/run_baseline.py"
