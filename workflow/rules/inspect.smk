# Stage 5 - inspect: gallery, manifest with automatic decisions, and the review page.


rule build_inspection:
    input:
        **CLEAN_OUTPUTS,
    output:
        manifest="results/inspect/manifest.csv",
        page="results/inspect/index.html",
        gallery=directory("results/inspect/gallery"),
    log:
        "results/logs/inspect.log",
    benchmark:
        "results/benchmarks/inspect.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    params:
        inspect={"reject_flags": config["inspect"]["reject_flags"]},  # not the decisions: the split reads them
    script:
        "../scripts/build_inspection.py"
