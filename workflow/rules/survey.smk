# Stage 1 - survey: the mosaics, weight maps and catalogues of every field.
# source "mock" generates them with GalSim; "candels" downloads the real ones (or reads them
# in place); "stamps" imports a ready stamp set (the paper's own, from Zenodo, or yours),
# which then goes through the same selection, neighbour removal and inspection as stamps cut
# from mosaics. A file given by a local `path` is a declared input; one given by `url` is
# downloaded by a local rule on the submit host.

if SOURCE == "mock":

    rule make_mock_field:
        input:
            **{k: v for k, v in STRUCTURE_INPUTS.items() if k == "structure_catalog"},
        output:
            image="results/survey/{field}/image.fits",
            weight="results/survey/{field}/weight.fits",
            psf="results/survey/{field}/psf.fits",
            photometry="results/survey/{field}/photometry.fits",
            morphology="results/survey/{field}/morphology.fits",
            truth="results/survey/{field}/truth.csv",
        log:
            "results/logs/survey/{field}.log",
        benchmark:
            "results/benchmarks/survey/{field}.tsv"
        conda:
            "../../envs/data.yaml"
        container:
            CONTAINERS["data"]
        params:
            field=lambda wildcards: MOCK_FIELDS[wildcards.field],
            field_index=lambda wildcards: list(MOCK_FIELDS).index(wildcards.field),
            mock=config["survey"]["mock"],
            seed=config["seed"],
            pixel_scale=config["survey"]["pixel_scale"],
            zeropoint=config["survey"]["zeropoint"],
        script:
            "../scripts/make_mock_field.py"


if SOURCE == "candels":

    rule download_field_file:
        output:
            "results/survey/{field}/{kind}.fits",
        log:
            "results/logs/download/{field}-{kind}.log",
        wildcard_constraints:
            kind="image|weight",
        # on the submit host: compute nodes often have no internet
        localrule: True
        conda:
            "../../envs/data.yaml"
        container:
            CONTAINERS["data"]
        params:
            remote=lambda wildcards: CANDELS["fields"][wildcards.field][wildcards.kind],
            key=lambda wildcards: f"survey.candels.fields.{wildcards.field}.{wildcards.kind}",
        script:
            "../scripts/download_file.py"

    rule download_catalog:
        output:
            "results/survey/catalogs/{kind}.{ext}",
        log:
            "results/logs/download/catalog-{kind}.{ext}.log",
        wildcard_constraints:
            kind="photometry|morphology",
        # on the submit host: compute nodes often have no internet
        localrule: True
        conda:
            "../../envs/data.yaml"
        container:
            CONTAINERS["data"]
        params:
            remote=lambda wildcards: CANDELS["catalogs"][wildcards.kind],
            key=lambda wildcards: f"survey.candels.catalogs.{wildcards.kind}",
            help=CATALOG_HELP,
        script:
            "../scripts/download_file.py"


if SOURCE == "stamps":
    if STAMPSET["url"]:

        rule download_stampset:
            output:
                stampset_archive(),
            log:
                "results/logs/download/stampset.log",
            # on the submit host: compute nodes often have no internet
            localrule: True
            conda:
                "../../envs/data.yaml"
            container:
                CONTAINERS["data"]
            params:
                remote=STAMPSET,
                key="survey.stamps",
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
        log:
            "results/logs/survey/stampset.log",
        benchmark:
            "results/benchmarks/survey/stampset.tsv"
        conda:
            "../../envs/data.yaml"
        container:
            CONTAINERS["data"]
        params:
            pixel_scale=config["survey"]["pixel_scale"],
        script:
            "../scripts/import_stampset.py"
