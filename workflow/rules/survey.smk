# Stage 1 - survey: the mosaics, weight maps and catalogues of every field.
# source "mock" generates them with GalSim; "candels" downloads the real ones (or reads them
# in place); "stamps" imports a ready stamp set (the paper's own, from Zenodo, or yours),
# which then goes through the same selection, neighbour removal and inspection as stamps cut
# from mosaics. A file given by a local `path` is a declared input; one given by `url` is
# downloaded by a local rule on the submit host.

if SOURCE == "mock":

    rule make_mock_field:
        output:
            image="results/survey/{field}/image.fits",
            weight="results/survey/{field}/weight.fits",
            psf="results/survey/{field}/psf.fits",
            photometry="results/survey/{field}/photometry.fits",
            morphology="results/survey/{field}/morphology.fits",
            truth="results/survey/{field}/truth.csv",
        params:
            field=lambda wildcards: MOCK_FIELDS[wildcards.field],
            field_index=lambda wildcards: list(MOCK_FIELDS).index(wildcards.field),
            mock=config["survey"]["mock"],
            seed=config["seed"],
            pixel_scale=config["survey"]["pixel_scale"],
            zeropoint=config["survey"]["zeropoint"],
        log:
            "results/logs/survey/{field}.log",
        benchmark:
            "results/benchmarks/survey/{field}.tsv"
        conda:
            "../../envs/data.yaml"
        container:
            CONTAINERS["data"]
        script:
            "../scripts/make_mock_field.py"


if SOURCE == "candels":
    rule download_field_file:
        # on the submit host: compute nodes often have no internet
        localrule: True
        output:
            "results/survey/{field}/{kind}.fits",
        wildcard_constraints:
            kind="image|weight",
        params:
            remote=lambda wildcards: CANDELS["fields"][wildcards.field][wildcards.kind],
            key=lambda wildcards: f"survey.candels.fields.{wildcards.field}.{wildcards.kind}",
        log:
            "results/logs/download/{field}-{kind}.log",
        conda:
            "../../envs/data.yaml"
        container:
            CONTAINERS["data"]
        script:
            "../scripts/download_file.py"

    rule download_catalog:
        # on the submit host: compute nodes often have no internet
        localrule: True
        output:
            "results/survey/catalogs/{kind}.{ext}",
        wildcard_constraints:
            kind="photometry|morphology",
        params:
            remote=lambda wildcards: CANDELS["catalogs"][wildcards.kind],
            key=lambda wildcards: f"survey.candels.catalogs.{wildcards.kind}",
            help=CATALOG_HELP,
        log:
            "results/logs/download/catalog-{kind}.{ext}.log",
        conda:
            "../../envs/data.yaml"
        container:
            CONTAINERS["data"]
        script:
            "../scripts/download_file.py"


if SOURCE == "stamps":
    if STAMPSET["url"]:

        rule download_stampset:
            # on the submit host: compute nodes often have no internet
            localrule: True
            output:
                stampset_archive(),
            params:
                remote=STAMPSET,
                key="survey.stamps",
            log:
                "results/logs/download/stampset.log",
            conda:
                "../../envs/data.yaml"
            container:
                CONTAINERS["data"]
            script:
                "../scripts/download_file.py"

    rule import_stampset:
        # A declared input: a stamp set fixed or replaced in place is imported again.
        input:
            stampset_files(STAMPSET["path"]) if STAMPSET["path"] else stampset_archive(),
        output:
            images="results/survey/stampset/images.npy",
            segmentation="results/survey/stampset/segmentation.npy",
            catalog="results/survey/stampset/catalog.csv",
        params:
            pixel_scale=config["survey"]["pixel_scale"],
        log:
            "results/logs/survey/stampset.log",
        benchmark:
            "results/benchmarks/survey/stampset.tsv"
        conda:
            "../../envs/data.yaml"
        container:
            CONTAINERS["data"]
        script:
            "../scripts/import_stampset.py"
