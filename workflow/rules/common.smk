# Shared by every stage: the configuration's derived names and the input functions. Rules live
# in the stage files; nothing here depends on their include order.

from blendphot.architectures import architecture, has_fluxes, has_masks
from blendphot.config import model_seed, model_settings
from blendphot.sources import CATALOG_HELP, DECISIONS_HELP, check_local_file, check_local_path, stampset_files
from blendphot.workflow import cpu_training_warning

SOURCE = config["survey"]["source"]
CONTAINERS = config["containers"]
SPLITS = ["train", "val", "test"]
MOCK_FIELDS = {f["name"]: f for f in config["survey"]["mock"]["fields"]}
CANDELS = config["survey"]["candels"]
STAMPSET = config["survey"]["stamps"]
TRANSFER = config["transfer"]  # other stamp sets the trained models are tested on (transfer.smk)

# The networks, and what each produces (blendphot/architectures.py).
MODELS = list(config["train"]["models"])
FLUX_MODELS = has_fluxes(config["train"]["models"])
MASK_MODELS = has_masks(config["train"]["models"])
SIGMA_MODELS = [m for m in FLUX_MODELS if config["train"]["models"][m]["flux_sigma"]]
IMAGE_MODELS = [m for m, entry in config["train"]["models"].items() if architecture(entry["arch"]).images]
ARCHS = {name: entry["arch"] for name, entry in config["train"]["models"].items()}

TABLES = ["table1", "table2", "table3", "headline"]
FIG = config["figures"]
FIGURE_METHODS = FIG["methods"] if FIG["methods"] is not None else FLUX_MODELS + ["sep"]

CLEAN_OUTPUTS = dict(
    images="results/clean/images.npy",
    originals="results/clean/originals.npy",
    masks="results/clean/masks.npy",
    catalog="results/clean/catalog.csv",
    dropped="results/clean/dropped.csv",
    qa="results/clean/qa.json",
)


# --- survey --------------------------------------------------------------------------------


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


def archive_path(url, folder):
    """Where a stamp-set archive downloaded from ``url`` lands in ``folder``: the URL's file name."""
    return f"{folder}/{Path(url.split('?')[0]).name or 'stampset.tar.gz'}"


def stampset_archive():
    """Where the stamp-set archive of survey.stamps.url lands."""
    return archive_path(STAMPSET["url"], "results/survey/stampset/download")


# --- select, clean, split ------------------------------------------------------------------


def select_inputs(wildcards):
    if SOURCE == "mock":
        return {
            kind: expand(f"results/survey/{{field}}/{kind}.{ext}", field=survey_fields())
            for kind, ext in (("photometry", "fits"), ("morphology", "fits"), ("truth", "csv"))
        }
    if SOURCE == "stamps":  # classified already (galtype): the magnitude cut only
        return {"stampset": "results/survey/stampset/catalog.csv"}
    return {"photometry": [catalog_path("photometry")], "morphology": [catalog_path("morphology")]}


def own_segmentations(stamps, folder):
    """A stamp set's own segmentation maps (under ``folder``), when its ``segmentation`` key says
    to use them instead of sep's."""
    return [f"{folder}/segmentation.npy"] if stamps["segmentation"] == "archive" else []


def given_segmentations(wildcards):
    """The survey's stamp set's own segmentation maps, when survey.stamps.segmentation says so."""
    return own_segmentations(STAMPSET, "results/stamps/stampset") if SOURCE == "stamps" else []


def decisions_file(wildcards):
    """The person's decisions, when set: an input, so editing it reruns the split."""
    path = config["inspect"]["decisions"]
    return [path] if path else []


# --- train, predict ------------------------------------------------------------------------


def blend_files(split):
    return {
        f"{split}_{kind}": f"results/blend/{split}/{kind}{ext}"
        for kind, ext in (("images", ".npy"), ("masks", ".npy"), ("central", ".npy"), ("catalog", ".csv"))
    }


def train_inputs(wildcards):
    """Val blends; the fixed train blends, or the training galaxies that fresh blends are drawn
    from (train.blends); and the checkpoint a model starts from (init_from)."""
    inputs = blend_files("val")
    if model_settings(config, wildcards.model).get("fresh"):
        inputs.update(
            galaxies="results/split/galaxies.csv",
            **{f"clean_{k}": CLEAN_OUTPUTS[k] for k in ("images", "masks", "catalog")},
        )
    else:
        inputs.update(blend_files("train"))
    init = config["train"]["models"][wildcards.model]["init_from"]
    if init is not None:
        inputs["init_from"] = f"results/train/{init}/model.pt"
    return inputs


# --- transfer (transfer.smk) --------------------------------------------------------------


def transfer_source(wildcards):
    """A transfer set's files (a declared input), or where its archive (`stamps.url`) lands."""
    stamps = TRANSFER[wildcards.tset]["stamps"]
    if stamps["path"]:
        return stampset_files(stamps["path"], key=f"transfer.{wildcards.tset}.stamps")
    return archive_path(stamps["url"], f"results/transfer/{wildcards.tset}/download")


def transfer_segmentations(wildcards):
    return own_segmentations(TRANSFER[wildcards.tset]["stamps"], f"results/transfer/{wildcards.tset}/stamps/stampset")


def transfer_decisions(wildcards):
    path = TRANSFER[wildcards.tset]["decisions"]
    return [path] if path else []  # checked at start-up: it exists


# Every accepted galaxy of a transfer set is a test galaxy: none of them is trained on.
TRANSFER_SPLIT = {"fractions": {"train": 0.0, "val": 0.0, "test": 1.0}, "stratify": False}


# --- figures -------------------------------------------------------------------------------

# The mock's galaxy structure against the measured catalogue (population.compare_structure):
# the mock's truth tables, and the catalogue when it is a file of the user's.
STRUCTURE_INPUTS, STRUCTURE_OUTPUTS = {}, {}
STRUCTURE_MAG_MIN = config["survey"]["mock"]["mag_bright"][0]  # compared from the mock's brightest
if SOURCE == "mock":
    STRUCTURE_INPUTS = {"truth": expand("results/survey/{field}/truth.csv", field=MOCK_FIELDS)}
    if config["survey"]["mock"].get("structure_catalog"):
        STRUCTURE_INPUTS["structure_catalog"] = config["survey"]["mock"]["structure_catalog"]
    STRUCTURE_OUTPUTS = {
        "structure": "results/evaluate/structure.csv",
        "structure_bins": "results/evaluate/structure_bins.csv",
    }
EVALUATED = {"galaxies": "results/evaluate/galaxies.csv"}
TEST_BLENDS = {"images": "results/blend/test/images.npy", "catalog": "results/blend/test/catalog.csv"}
FIGURE_INPUTS = {
    "figure1": {
        "originals": "results/clean/originals.npy",
        "images": "results/clean/images.npy",
        "masks": "results/clean/masks.npy",
        "catalog": "results/clean/catalog.csv",
        "galaxies": "results/split/galaxies.csv",
    },
    "figure2": TEST_BLENDS,
    **{f"figure{n}": EVALUATED for n in (5, 6, 7, 8, 9)},
    "sample": {
        "table1": "results/evaluate/table1.csv",
        "catalog": "results/blend/test/catalog.csv",
        "sep_outcomes": "results/evaluate/sep_outcomes.csv",
        **STRUCTURE_INPUTS,
        **STRUCTURE_OUTPUTS,
    },
}
if MASK_MODELS:
    _MASK_INPUTS = {
        **EVALUATED,
        **TEST_BLENDS,
        "masks": "results/blend/test/masks.npy",
        "predictions": expand("results/predict/{model}", model=MASK_MODELS),
    }
    FIGURE_INPUTS |= {"figure10": _MASK_INPUTS, "figure11": _MASK_INPUTS, "figure12": EVALUATED}
if SIGMA_MODELS:
    FIGURE_INPUTS["calibration"] = {**EVALUATED, "metrics": "results/evaluate/metrics.csv"}
if IMAGE_MODELS:
    FIGURE_INPUTS["deblend"] = {
        **EVALUATED,
        **TEST_BLENDS,
        "central": "results/blend/test/central.npy",
        "predictions": expand("results/predict/{model}", model=IMAGE_MODELS),
    }


def figure_inputs(wildcards):
    return FIGURE_INPUTS[wildcards.fig]


def figure_params(wildcards):
    """Only the settings a figure uses, so that changing one reruns only the figures it shapes."""
    name = wildcards.fig
    params = {"dpi": FIG["dpi"], "archs": ARCHS}
    if name == "figure2":
        params |= {k: FIG[k] for k in ("figure2_distance_px", "figure2_mag_diff")}
    if name in ("figure5", "figure6", "figure7", "figure8", "figure9"):
        params |= {
            "methods": FIGURE_METHODS,
            "outlier_dmag": config["evaluate"]["outlier_dmag"],
            "mag_diff_bins": config["evaluate"]["mag_diff_bins"],
        }
    if name in ("figure10", "figure11", "figure12"):
        params |= {"mask_methods": MASK_MODELS, "examples": FIG["examples"]}
    if name == "calibration":
        params["sigma_methods"] = SIGMA_MODELS
    if name == "deblend":
        params |= {"image_methods": IMAGE_MODELS, "examples": FIG["examples"]}
    if name == "sample" and SOURCE == "mock":
        params["structure_mag_min"] = STRUCTURE_MAG_MIN
    return params


# --- checks at start-up --------------------------------------------------------------------

if SOURCE == "candels":
    for _field, _files in CANDELS["fields"].items():
        for _kind in ("image", "weight"):
            check_local_file(_files[_kind], f"survey.candels.fields.{_field}.{_kind}")
    for _kind in ("photometry", "morphology"):
        check_local_file(CANDELS["catalogs"][_kind], f"survey.candels.catalogs.{_kind}", help=CATALOG_HELP)
if SOURCE == "stamps":
    check_local_file(STAMPSET, "survey.stamps")
check_local_path(config["inspect"]["decisions"], "inspect.decisions", help=DECISIONS_HELP)
for _name, _entry in TRANSFER.items():
    check_local_file(_entry["stamps"], f"transfer.{_name}.stamps")
    check_local_path(_entry["decisions"], f"transfer.{_name}.decisions", help=DECISIONS_HELP)

_CPU_WARNING = cpu_training_warning(config) if workflow.local_exec else None
if _CPU_WARNING:
    logger.warning(_CPU_WARNING)
