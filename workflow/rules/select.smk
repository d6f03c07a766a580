# Stage 2 - select: join the catalogues, apply the magnitude cut and the morphology classes
# (a stamp set's galaxies are classified already: the magnitude cut only).


rule select_galaxies:
    input:
        unpack(select_inputs),
    output:
        catalog="results/select/selected.csv",
        counts="results/select/counts.csv",
    log:
        "results/logs/select.log",
    benchmark:
        "results/benchmarks/select.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    params:
        select=config["select"],
        columns=config["survey"]["candels"]["columns"],
    script:
        "../scripts/select_galaxies.py"
