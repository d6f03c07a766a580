# Stage 2 - select: join the catalogues, apply the magnitude cut and the morphology classes.


def select_inputs(wildcards):
    if SOURCE == "mock":
        return {
            "photometry": expand("results/survey/{field}/photometry.fits", field=survey_fields()),
            "morphology": expand("results/survey/{field}/morphology.fits", field=survey_fields()),
            "truth": expand("results/survey/{field}/truth.csv", field=survey_fields()),
        }
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
