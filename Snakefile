# blendphot: Boucaud et al. 2019, "Photometry of high-redshift blended galaxies using deep
# learning", as a reproducible workflow. See README.md; stages are in workflow/rules/.
import os
from pathlib import Path

from snakemake.utils import min_version

from blendphot.config import CPU_FLOPS, expensive_on_cpu, model_settings, model_seed, validate_config
from blendphot.workflow import DEVICE_ENV
from blendphot import tracking

min_version("9.0")


# The embedded default, unless a config file is given: `--configfile paper.yaml` then stands
# alone (with the schema's defaults) instead of being merged key by key into the demo config.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



validate_config(config)  # fills defaults; a bad key stops here with its dotted name

# Jobs import blendphot from this checkout, in every software environment: the local one, a
# conda env (--sdm conda, dependencies only) or a stage image (--sdm apptainer), so that a code
# change needs no rebuilt image and the "code" rerun trigger means what it says.
_PACKAGE_ROOT = str(Path(workflow.basedir) / "workflow")
if _PACKAGE_ROOT not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))

SOURCE = config["survey"]["source"]
CONTAINERS = config["containers"]
SPLITS = ["train", "val", "test"]


include: "workflow/rules/survey.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/stamps.smk"
include: "workflow/rules/clean.smk"
include: "workflow/rules/inspect.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/blend.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/baseline.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"


onstart:
    os.environ[tracking.PARENT_ENV] = tracking.start_parent(
        config["mlflow"]["tracking_uri"], config["mlflow"]["experiment"], config=config
    )


onsuccess:
    if tracking.PARENT_ENV in os.environ:
        tracking.end_parent(config["mlflow"]["tracking_uri"], os.environ[tracking.PARENT_ENV], "FINISHED")


onerror:
    if tracking.PARENT_ENV in os.environ:
        tracking.end_parent(config["mlflow"]["tracking_uri"], os.environ[tracking.PARENT_ENV], "FAILED")


rule all:
    input:
        "results/select/counts.csv",
        "results/inspect/index.html",
        "results/split/table1.csv",
        expand("results/blend/{split}/catalog.csv", split=SPLITS),
        expand("results/predict/{model}/predictions.csv", model=MODELS),
        "results/summary.md",
        expand("results/figures/{fig}.png", fig=FIGURE_INPUTS),
    default_target: True
    localrule: True
