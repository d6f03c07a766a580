# blendphot: Boucaud et al. 2019, "Photometry of high-redshift blended galaxies using deep
# learning", as a reproducible workflow. See README.md; stages are in workflow/rules/.
import sys
from pathlib import Path

from snakemake.utils import min_version

from blendphot import tracking
from blendphot.config import check_space, validate_config
from blendphot.errors import BlendphotError
from blendphot.workflow import use_package_from

min_version("9.0")


# The embedded default, unless a config file is given: `--configfile paper.yaml` then stands
# alone (with the schema's defaults) instead of being merged key by key into the demo config.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate_config(config)  # fills defaults; a bad key stops here with its dotted name
check_space(config)  # outputs that cannot fit on the disk of results/ stop here, before any job

# Jobs import blendphot from this checkout, in every software environment: the local one, a
# conda env (--sdm conda, dependencies only) or a stage image (--sdm apptainer), so that a code
# change needs no rebuilt image and the "code" rerun trigger means what it says.
use_package_from(Path(workflow.basedir) / "workflow")


include: "workflow/rules/common.smk"
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
include: "workflow/rules/transfer.smk"


onstart:
    try:
        tracking.start_workflow(config["mlflow"], config=config)
    except BlendphotError as exc:  # one line, not Snakemake's traceback of the onstart handler
        print(f"blendphot: error: {exc}", file=sys.stderr)
        raise SystemExit(1)


onsuccess:
    tracking.end_workflow(config["mlflow"], "FINISHED")


onerror:
    tracking.end_workflow(config["mlflow"], "FAILED")


rule all:
    default_target: True
    input:
        "results/select/counts.csv",
        "results/inspect/index.html",
        "results/split/table1.csv",
        expand("results/blend/{split}/catalog.csv", split=SPLITS),
        expand("results/predict/{model}", model=MODELS),
        "results/summary.md",
        expand("results/figures/{fig}.png", fig=FIGURE_INPUTS),
        expand("results/transfer/{tset}/summary.md", tset=TRANSFER),
    localrule: True


# One short command per stage of several jobs: `snakemake train_models` trains every model of
# train.models (and what they need); one model alone is its file, results/train/<model>/model.pt.
rule train_models:
    input:
        expand("results/train/{model}/model.pt", model=MODELS),
    localrule: True


rule predict_models:
    input:
        expand("results/predict/{model}", model=MODELS),
    localrule: True


rule transfer:
    input:
        expand("results/transfer/{tset}/summary.md", tset=TRANSFER),
    localrule: True


rule plot_figures:
    input:
        expand("results/figures/{fig}.png", fig=FIGURE_INPUTS),
    localrule: True
