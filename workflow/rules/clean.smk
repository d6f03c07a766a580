# Stage 4 - clean: neighbour removal and the isolated-galaxy photometry (ground truth).
# With survey.source "stamps", a ready stamp set is imported here instead.

CLEAN_OUTPUTS = dict(
    images="results/clean/images.npy",
    originals="results/clean/originals.npy",
    masks="results/clean/masks.npy",
    catalog="results/clean/catalog.csv",
    dropped="results/clean/dropped.csv",
    qa="results/clean/qa.json",
)

if SOURCE in ("mock", "candels"):

    rule remove_neighbours:
        input:
            images=expand("results/stamps/{field}/images.npy", field=survey_fields()),
            weights=expand("results/stamps/{field}/weights.npy", field=survey_fields()),
            catalogs=expand("results/stamps/{field}/catalog.csv", field=survey_fields()),
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


if SOURCE == "stamps":

    rule import_stamps:
        output:
            **CLEAN_OUTPUTS,
        params:
            stamps=config["survey"]["stamps"],
            clean=config["clean"],
            zeropoint=config["survey"]["zeropoint"],
            pixel_scale=config["survey"]["pixel_scale"],
        log:
            "results/logs/import_stamps.log",
        conda:
            "../../envs/data.yaml"
        container:
            CONTAINERS["data"]
        script:
            "../scripts/import_stamps.py"
