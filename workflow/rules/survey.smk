# Stage 1 - survey: the mosaics, weight maps and catalogues of every field.
# source "mock" generates them with GalSim; "candels" downloads the real ones (or reads them
# in place); "stamps" imports a ready stamp set (the paper's own, from Zenodo, or yours),
# which then goes through the same selection, neighbour removal and inspection as stamps cut
# from mosaics. A file given by a local `path` is a declared input; one given by `url` is
# downloaded by a local rule on the submit host.

from blendphot.sources import CATALOG_HELP, check_local_file, stampset_files

MOCK_FIELDS = {f["name"]: f for f in config["survey"]["mock"]["fields"]}
CANDELS = config["survey"]["candels"]
STAMPSET = config["survey"]["stamps"]


def survey_fields():
    """The fields whose stamps the clean stage gathers: one "stampset" for a ready stamp set."""
    if SOURCE == "mock":
        return list(MOCK_FIELDS)
    if SOURCE == "candels":
        return list(CANDELS["fields"])
    return ["stampset"]


def catalog_path(kind):
    """A catalogue of the survey: its local path, or where its download lands (URL's extension)."""
    entry = CANDELS["catalogs"][kind]
    if entry.get("path"):
        return entry["path"]
    suffix = "".join(Path(entry["url"].split("?")[0]).suffixes) or ".fits"
    return f"results/survey/catalogs/{kind}{suffix}"


def field_file(field, kind):
    """A field's mosaic or weight map: its local path, or where it is made or downloaded."""
    entry = CANDELS["fields"][field][kind] if SOURCE == "candels" else {}
    return entry["path"] if entry.get("path") else f"results/survey/{field}/{kind}.fits"


def field_image(wildcards):
    return field_file(wildcards.field, "image")


def field_weight(wildcards):
    return field_file(wildcards.field, "weight")


def mock_field(wildcards):
    return MOCK_FIELDS[wildcards.field]


def mock_field_index(wildcards):
    return list(MOCK_FIELDS).index(wildcards.field)


def remote_field_file(wildcards):
    return CANDELS["fields"][wildcards.field][wildcards.kind]


def remote_catalog(wildcards):
    return CANDELS["catalogs"][wildcards.kind]


def field_key(wildcards):
    return f"survey.candels.fields.{wildcards.field}.{wildcards.kind}"


def catalog_key(wildcards):
    return f"survey.candels.catalogs.{wildcards.kind}"


def stampset_archive():
    """Where the stamp-set archive of survey.stamps.url lands."""
    return f"results/survey/stampset/download/{Path(STAMPSET['url'].split('?')[0]).name or 'stampset.tar.gz'}"


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
            field=mock_field,
            field_index=mock_field_index,
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
    for _field, _files in CANDELS["fields"].items():
        for _kind in ("image", "weight"):
            check_local_file(_files[_kind], f"survey.candels.fields.{_field}.{_kind}")
    for _kind in ("photometry", "morphology"):
        check_local_file(CANDELS["catalogs"][_kind], f"survey.candels.catalogs.{_kind}", help=CATALOG_HELP)

    rule download_field_file:
        # on the submit host: compute nodes often have no internet
        localrule: True
        output:
            "results/survey/{field}/{kind}.fits",
        wildcard_constraints:
            kind="image|weight",
        params:
            remote=remote_field_file,
            key=field_key,
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
            remote=remote_catalog,
            key=catalog_key,
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
    check_local_file(STAMPSET, "survey.stamps")

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
