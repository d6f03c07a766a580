# Stage 4 - clean: neighbour removal and the isolated-galaxy photometry (ground truth).
# The same rule for every source: a ready stamp set's stamps are cleaned like cut ones.

CLEAN_OUTPUTS = dict(
    images="results/clean/images.npy",
    originals="results/clean/originals.npy",
    masks="results/clean/masks.npy",
    catalog="results/clean/catalog.csv",
    dropped="results/clean/dropped.csv",
    qa="results/clean/qa.json",
)


def given_segmentations(wildcards):
    """A stamp set's own segmentation maps, when survey.stamps.segmentation says to use them."""
    if SOURCE == "stamps" and STAMPSET["segmentation"] == "archive":
        return ["results/stamps/stampset/segmentation.npy"]
    return []


rule remove_neighbours:
    input:
        images=expand("results/stamps/{field}/images.npy", field=survey_fields()),
        weights=expand("results/stamps/{field}/weights.npy", field=survey_fields()),
        catalogs=expand("results/stamps/{field}/catalog.csv", field=survey_fields()),
        segmentations=given_segmentations,
    output:
        **CLEAN_OUTPUTS,
    params:
        clean=config["clean"],
        seed=config["seed"],
        zeropoint=config["survey"]["zeropoint"],
    log:
        "results/logs/clean.log",
    benchmark:
        "results/benchmarks/clean.tsv"
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    script:
        "../scripts/remove_neighbours.py"

