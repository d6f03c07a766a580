# Stage 2 - select: join the catalogues, apply the magnitude cut and the morphology classes
# (a stamp set's galaxies are classified already: the magnitude cut only).


def select_inputs(wildcards):
    if SOURCE == "mock":
        return {
            "photometry": expand("results/survey/{field}/photometry.fits", field=survey_fields()),
            "morphology": expand("results/survey/{field}/morphology.fits", field=survey_fields()),
            "truth": expand("results/survey/{field}/truth.csv", field=survey_fields()),
        }
    if SOURCE == "stamps":  # classified already (galtype): the magnitude cut only
        return {"stampset": "results/survey/stampset/catalog.csv"}
    return {"photometry": [catalog_path("photometry")], "morphology": [catalog_path("morphology")]}


rule select_galaxies:
    input:
        unpack(select_inputs),
    output:
        catalog="results/select/selected.csv",
        counts="results/select/counts.csv",
    params:
        select=config["select"],
        columns=config["survey"]["candels"]["columns"],
    log:
        "results/logs/select.log",
    conda:
        "../../envs/data.yaml"
    container:
        CONTAINERS["data"]
    script:
        "../scripts/select_galaxies.py"
