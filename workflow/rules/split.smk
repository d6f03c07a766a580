# Stage 6 - split: galaxy-level train/val/test assignment, after the inspection decisions.


rule split_galaxies:
    input:
        manifest="results/inspect/manifest.csv",
        catalog="results/clean/catalog.csv",
        decisions=decisions_file,
    output:
        galaxies="results/split/galaxies.csv",
        table1="results/split/table1.csv",
    log:
        "results/logs/split.log",
    benchmark:
        "results/benchmarks/split.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    params:
        split=config["split"],
        seed=config["seed"],
    script:
        "../scripts/split_galaxies.py"
