# Stage 4 - clean: neighbour removal and the isolated-galaxy photometry (ground truth).
# The same rule for every source: a ready stamp set's stamps are cleaned like cut ones.


rule remove_neighbours:
    input:
        images=expand("results/stamps/{field}/images.npy", field=survey_fields()),
        weights=expand("results/stamps/{field}/weights.npy", field=survey_fields()),
        catalogs=expand("results/stamps/{field}/catalog.csv", field=survey_fields()),
        segmentations=given_segmentations,
    output:
        **CLEAN_OUTPUTS,
    log:
        "results/logs/clean.log",
    benchmark:
        "results/benchmarks/clean.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    params:
        clean=config["clean"],
        seed=config["seed"],
        zeropoint=config["survey"]["zeropoint"],
    script:
        "../scripts/remove_neighbours.py"
