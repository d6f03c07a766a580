# Stage 1 - survey: the mosaics, weight maps and catalogues of every field.
# source "mock" generates them with GalSim; "candels" downloads the real ones;
# "stamps" (a ready stamp set) bypasses this stage and joins after neighbour removal.

MOCK_FIELDS = {f["name"]: f for f in config["survey"]["mock"]["fields"]}
CANDELS = config["survey"]["candels"]


def survey_fields():
    if SOURCE == "mock":
        return list(MOCK_FIELDS)
    if SOURCE == "candels":
        return list(CANDELS["fields"])
    return []


def catalog_path(kind):
    """Where a catalogue of the survey lands, keeping the URL's extension (.fits, .csv...)."""
    url = CANDELS["catalogs"][kind]["url"]
    suffix = "".join(Path(url.split("?")[0]).suffixes) or ".fits"
    return f"results/survey/catalogs/{kind}{suffix}"


def mock_field(wildcards):
    return MOCK_FIELDS[wildcards.field]


def mock_field_index(wildcards):
    return list(MOCK_FIELDS).index(wildcards.field)


def remote_field_file(wildcards):
    return CANDELS["fields"][wildcards.field][wildcards.kind]


def remote_catalog(wildcards):
    return CANDELS["catalogs"][wildcards.kind]


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

    rule download_field_file:
        # on the submit host: compute nodes often have no internet
        localrule: True
        output:
            "results/survey/{field}/{kind}.fits",
        wildcard_constraints:
            kind="image|weight",
        params:
            remote=remote_field_file,
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
        log:
            "results/logs/download/catalog-{kind}.{ext}.log",
        conda:
            "../../envs/data.yaml"
        container:
            CONTAINERS["data"]
        script:
            "../scripts/download_file.py"
