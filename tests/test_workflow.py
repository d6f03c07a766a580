"""Workflow tests: dry runs of every shipped config, the resources Snakemake gives each job, and
the tiny end-to-end run (one run of tests/config/tiny.yaml, conftest.py's ``tiny_run``, which
the tests below read and plan reruns against)."""
import shutil

import numpy as np
import pandas as pd
import pytest

from blendphot.architectures import architecture

from .workflow_helpers import (
    PAPER_CATALOGUE,
    ROOT,
    TINY,
    copy_run,
    planned_jobs,
    planned_rules,
    run_snakemake,
    stage_runs,
)

# mock (demo), candels, stamps, mock at paper scale
SHIPPED = ["config/config.yaml", "config/paper.yaml", "config/paper-stamps.yaml", "config/paper-mock.yaml"]
# local rules that run nothing: they only gather the files of a stage
AGGREGATES = {"all", "train_models", "predict_models", "plot_figures", "transfer"}
# the rules that train or apply a network: one GPU each
GPU_RULES = {"train_model", "predict_model", "transfer_predict"}
# An overlay that adds a transfer set given by URL (a dry run fetches nothing): its rules are planned too
TRANSFER_BY_URL = "transfer:\n  real: {stamps: {url: 'https://example.org/stamps/real-set.tar.gz'}}\n"


@pytest.mark.workflow
@pytest.mark.parametrize("config", SHIPPED)
def test_dry_run_of_shipped_configs(config, workdir):
    proc = run_snakemake(["-n", "--cores", "1", "--configfile", config], workdir)
    plan = planned_rules(proc.stdout)
    assert {"make_blends", "remove_neighbours", "select_galaxies", "evaluate", "all"} <= plan
    from blendphot.config import load_config

    cfg = load_config(ROOT / config)
    for name in cfg["train"]["models"]:
        assert f"train_model:{name}" in plan and f"predict_model:{name}" in plan
    source_rules = {"mock": {"make_mock_field", "cut_stamps"},
                    "candels": {"download_field_file", "cut_stamps"},
                    "stamps": {"download_stampset", "import_stampset", "take_stamps"}}
    source = cfg["survey"]["source"]
    assert source_rules[source] <= plan
    assert not plan & (set().union(*source_rules.values()) - source_rules[source])


@pytest.mark.workflow
def test_paper_config_without_its_catalogue_says_where_to_get_it(workdir):
    (workdir / PAPER_CATALOGUE).rename(workdir / "hidden.fits")
    try:
        proc = run_snakemake(["-n", "--cores", "1", "--configfile", "config/paper.yaml"], workdir, check=False)
    finally:
        (workdir / "hidden.fits").rename(workdir / PAPER_CATALOGUE)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"config key 'survey.candels.catalogs.photometry.path': {PAPER_CATALOGUE} does not exist" in out
    assert "lerma.obspm.fr/huertas/form_CANDELS" in out


@pytest.mark.workflow
def test_fresh_blends_train_from_the_training_galaxies_not_the_fixed_files(workdir, tmp_path):
    fresh = tmp_path / "fresh.yaml"
    fresh.write_text("seed: 1\nsurvey: {source: mock}\ntrain:\n  blends: fresh\n  models:\n"
                     "    b2f: {arch: blend2flux, filters: 8}\n"
                     "    fixed: {arch: blend2flux, filters: 8, blends: fixed}\n")
    proc = run_snakemake(["results/train/b2f/model.pt", "-n", "--cores", "1", "--configfile", str(fresh)], workdir)
    plan = planned_rules(proc.stdout)
    assert "train_model:b2f" in plan and "remove_neighbours" in plan and "split_galaxies" in plan
    assert "results/blend/train/images.npy" not in proc.stdout and "results/blend/val/images.npy" in proc.stdout
    proc = run_snakemake(["results/train/fixed/model.pt", "-n", "--cores", "1", "--configfile", str(fresh)], workdir)
    assert "results/blend/train/images.npy" in proc.stdout


def test_paper_mock_config_is_the_papers_scale():
    from blendphot.config import load_config

    cfg = load_config(ROOT / "config/paper-mock.yaml")
    assert sum(cfg["blend"]["n_blends"].values()) == 30000 and cfg["survey"]["source"] == "mock"
    models = cfg["train"]["models"]
    assert models["blend2flux"]["filters"] == 256 and models["unet"]["unet_depth"] == 5
    assert cfg["train"]["learning_rate"] == 1e-4 and cfg["train"]["epochs"] == 200
    area = sum(f["nx"] * f["ny"] for f in cfg["survey"]["mock"]["fields"]) * (0.06 / 60) ** 2
    assert 200 < area < 300  # arcmin^2: ~2800 selected galaxies at the demo's density


@pytest.mark.workflow
def test_the_gpu_slot_config_is_paper_mock_scale_and_plans_its_two_models(workdir):
    """bench/gpu/paper_mock_gpu.sh's config: paper-mock's survey and blends, two models."""
    from blendphot.config import load_config

    gpu, paper = (load_config(ROOT / c) for c in ("bench/gpu/paper-mock-gpu.yaml", "config/paper-mock.yaml"))
    assert gpu["survey"]["mock"]["fields"] == paper["survey"]["mock"]["fields"]
    assert gpu["blend"] == paper["blend"] and gpu["seed"] == paper["seed"]
    proc = run_snakemake(["results/summary.md", "-n", "--cores", "16", "--resources", "gpu=2",
                          "--configfile", str(ROOT / "bench/gpu/paper-mock-gpu.yaml")], workdir)
    plan = planned_rules(proc.stdout)
    assert {"train_model:blend2flux", "train_model:unet", "run_baseline", "evaluate"} <= plan
    assert "train_model:blend2mask2flux" not in plan


@pytest.mark.workflow
def test_one_training_stage_alone(workdir):
    plan = planned_rules(run_snakemake(["-n", "--cores", "1", "results/train/blend2flux/model.pt"], workdir).stdout)
    assert "train_model:blend2flux" in plan and "make_blends" in plan
    assert "train_model:unet" not in plan and "predict_model:blend2flux" not in plan
    plan = planned_rules(run_snakemake(["-n", "--cores", "1", "train_models"], workdir).stdout)
    assert {"train_model:blend2flux", "train_model:unet", "train_model:blend2mask2flux"} <= plan


# Each source defines its own rules: with these changes (a copy of the config), each config plans
# every rule it defines (a catalogue and a transfer set given by URL add the rules that download them).
# The transfer rules are defined whatever the source.
EVERY_RULE = {
    "config/config.yaml": lambda text: text,
    "config/paper.yaml": lambda text: _replace(text, "morphology: {path: data/dimauro2018_candels.fits}",
                                               "morphology: {url: 'https://example.org/morphology.fits'}"),
    "config/paper-stamps.yaml": lambda text: text,
    "config/paper-mock.yaml": lambda text: text,
}


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"the config no longer holds {old!r}"
    return text.replace(old, new)


@pytest.mark.workflow
@pytest.mark.parametrize("config", list(EVERY_RULE))
def test_every_job_gets_memory_runtime_and_the_global_profiles_defaults(config, workdir, tmp_path):
    """As Snakemake resolves them with a global profile (here one whose default-resources name a
    SLURM account) and the workflow profile on top: every job of every rule has its memory and
    runtime, and keeps the global profile's account (the workflow profile sets no
    default-resources that would replace it); the training and prediction jobs, of any model,
    get one GPU and more than one thread, the others no GPU."""
    glob = tmp_path / "global"
    glob.mkdir()
    (glob / "config.yaml").write_text("default-resources:\n  - slurm_account=astro\n")
    changed = tmp_path / "config.yaml"
    changed.write_text(EVERY_RULE[config]((ROOT / config).read_text()) + "\n" + TRANSFER_BY_URL)
    configs = ["--configfile", str(changed)]
    rules = set(run_snakemake(["--list-rules", *configs], workdir).stdout.split())
    assert "make_blends" in rules and "train_model" in rules and "plot_figure" in rules
    jobs = planned_jobs(run_snakemake(["-n", "--cores", "16", "--profile", str(glob), *configs], workdir).stdout)
    assert {job["rule"] for job in jobs} - AGGREGATES == rules - AGGREGATES  # every rule is checked
    for job in jobs:
        if job["rule"] in AGGREGATES:
            continue
        resources = job["resources"]
        assert {"mem_mb", "runtime"} <= set(resources), job
        assert resources.get("slurm_account") == "astro", job
        if job["rule"] in GPU_RULES:
            assert resources.get("gpu") == "1" and job["threads"] > 1, job
        else:
            assert "gpu" not in resources, job


@pytest.mark.workflow
def test_the_slurm_profiles_groups_are_cpu_rules_of_the_workflow(workdir):
    """profiles/slurm's groups name rules that exist (a renamed rule would silently leave its
    group and go back to a job of its own), and never a GPU rule or the baseline, which keep a
    job to themselves."""
    import yaml

    groups = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())["groups"]
    rules = set()
    for config in ("config/config.yaml", "config/paper-stamps.yaml"):  # the mosaic and the stamp-set rules
        rules |= set(run_snakemake(["--list-rules", "--configfile", config], workdir).stdout.split())
    assert set(groups) <= rules - AGGREGATES, set(groups) - rules
    assert not set(groups) & (GPU_RULES | {"run_baseline", "transfer_baseline"})


@pytest.mark.workflow
def test_a_model_added_to_config_needs_no_profile_edit(workdir, tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("seed: 1\nsurvey: {source: mock}\ntrain:\n  models:\n    small: {arch: blend2flux, filters: 8}\n")
    proc = run_snakemake(["-n", "--cores", "1", "--configfile", str(extra)], workdir)
    plan = planned_rules(proc.stdout)
    assert {"train_model:small", "predict_model:small"} <= plan
    assert "gpu=1" in proc.stdout  # the one train_model entry of the profile applies
    small = [job for job in planned_jobs(proc.stdout) if job["wildcards"].get("model") == "small"]
    assert {job["rule"] for job in small} == {"train_model", "predict_model"}
    assert all(job["resources"].get("gpu") == "1" for job in small)


@pytest.mark.workflow
def test_bad_config_value_stops_with_the_key(workdir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nsurvey: {source: mock}\nblend: {max_shift: big}\n")
    proc = run_snakemake(["-n", "--cores", "1", "--configfile", str(bad)], workdir, check=False)
    assert proc.returncode != 0
    assert "config key 'blend.max_shift'" in proc.stdout + proc.stderr


@pytest.mark.workflow
def test_the_profiles_gpu_partition_and_model_reach_the_slurm_executor(workflow_copy, tmp_path):
    """The commented defaults an astronomer uncomments once: in a dry run with the SLURM executor
    every GPU job, and only those, gets the partition and the card type, with its runtime."""
    copy = workflow_copy("slurm-profile")
    profile = copy / "profiles/default/config.yaml"
    text = profile.read_text()
    uncommented = text.replace("# slurm_partition: gpu", "slurm_partition: gpu").replace("# gpu_model: a100",
                                                                                       "gpu_model: a100")
    assert uncommented != text
    profile.write_text(uncommented)
    (tmp_path / "transfer.yaml").write_text(TRANSFER_BY_URL)  # transfer_predict, a GPU rule, too
    out = run_snakemake(["-n", "--executor", "slurm", "--jobs", "10", "--configfile", "config/config.yaml",
                         str(tmp_path / "transfer.yaml")], copy).stdout
    jobs = [job for job in planned_jobs(out) if job["rule"] not in AGGREGATES]
    gpu = [job for job in jobs if job["rule"] in GPU_RULES]
    assert {job["rule"] for job in gpu} == GPU_RULES
    for job in gpu:
        resources = job["resources"]
        assert resources.get("gpu") == "1" and resources.get("slurm_partition") == "gpu", job
        assert resources.get("gpu_model") == "a100", job
    train = next(job for job in gpu if job["rule"] == "train_model" and job["wildcards"]["model"] == "blend2flux")
    assert train["resources"]["runtime"] == "240"
    blend = next(job for job in jobs if job["rule"] == "make_blends")["resources"]
    assert "slurm_partition" not in blend and "gpu" not in blend  # CPU stages keep the default partition
    for job in jobs:
        if job["rule"] not in GPU_RULES:
            assert not {"slurm_partition", "gpu_model", "gpu"} & set(job["resources"]), job


# ---------------------------------------------------------------------------------------------
# The tiny end-to-end run: what it made


@pytest.mark.workflow
def test_tiny_run_selects_inspects_splits_and_blends(tiny_run):
    res = tiny_run / "results"
    counts = pd.read_csv(res / "select/counts.csv")
    assert counts.set_index("class").loc["TOTAL", "selected"] > 30
    assert (res / "inspect/index.html").exists() and any((res / "inspect/gallery").iterdir())
    galaxies = pd.read_csv(res / "split/galaxies.csv")
    assert galaxies.gid.is_unique
    cats = {s: pd.read_csv(res / f"blend/{s}/catalog.csv") for s in ("train", "val", "test")}
    used = {s: set(c.cen_gid) | set(c.comp_gid) for s, c in cats.items()}
    assert not used["test"] & (used["train"] | used["val"])
    images = np.load(res / "blend/test/images.npy", mmap_mode="r")
    assert images.shape == (40, 128, 128) and np.isfinite(images).all()


@pytest.mark.workflow
def test_tiny_run_tracks_one_parent_run_and_a_finished_run_per_job(tiny_run):
    res = tiny_run / "results"
    client, parents, children = stage_runs(f"sqlite:///{res / 'mlflow/mlflow.db'}", "blendphot-test")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    # mock, select, stamps, clean, inspect, split, 3 x blend, 4 x train, 4 x predict, baseline,
    # evaluate, 13 figures (the paper's 10, the sample, the flux-uncertainty calibration, the deblending)
    assert len(children) == 32
    assert all(r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id for r in children)
    assert all(r.info.status == "FINISHED" for r in children)
    clean = next(r for r in children if r.data.tags["blendphot.stage"] == "remove_neighbours")
    assert clean.data.metrics["single_source_fraction"] > 0.8

    train = next(r for r in children if r.data.tags["blendphot.stage"] == "train_model"
                 and "blend2flux'" in r.data.tags["blendphot.wildcards"])
    assert len(client.get_metric_history(train.info.run_id, "val_loss")) == 2  # one point per epoch
    assert any(a.path == "model" for a in client.list_artifacts(train.info.run_id))
    evaluate_run = next(r for r in children if r.data.tags["blendphot.stage"] == "evaluate")
    assert 0 < evaluate_run.data.metrics["blend2flux.both.mape_flux"] < 1000


@pytest.mark.workflow
def test_tiny_run_trains_every_model_and_predicts_in_the_shared_format(tiny_run):
    from blendphot.prediction import Prediction
    from blendphot.train import load_model

    res = tiny_run / "results"
    test = pd.read_csv(res / "blend/test/catalog.csv")
    for name, arch in (("blend2flux", "blend2flux"), ("unet", "unet"), ("blend2mask2flux", "blend2mask2flux"),
                       ("blend2image", "blend2image")):
        _, cfg = load_model(res / f"train/{name}/model.pt")
        assert cfg.arch == arch
        assert len(pd.read_csv(res / f"train/{name}/history.csv")) == 2
        assert not (res / f"train/{name}/state/last.pt").exists()
        pred = Prediction.load(res / f"predict/{name}", images=True)
        assert (pred.masks is not None) == architecture(arch).predicts_masks
        assert (pred.images is not None) == architecture(arch).images
        assert (pred.catalog["blend_id"] == test["blend_id"]).all()
        fluxes = pred.catalog[["cen_flux", "comp_flux"]].to_numpy()
        if architecture(arch).images:  # measured on its images: NaN where no source was found there
            assert np.isfinite(fluxes).mean() > 0.5 and (fluxes[np.isfinite(fluxes)] > 0).mean() > 0.9
            assert pred.images.shape == (40, 2, 128, 128)
        else:
            assert (fluxes > 0).all() if architecture(arch).fluxes else np.isnan(fluxes).all()
        if architecture(arch).predicts_masks:
            assert pred.masks.shape == (40, 2, 128, 128) and pred.masks.max() <= 1
    # blend2flux has a σ head (tests/config/tiny.yaml): flux errors in its predictions
    assert {"cen_flux_err", "comp_flux_err"} <= set(Prediction.load(res / "predict/blend2flux").catalog.columns)


@pytest.mark.workflow
def test_tiny_run_baseline_evaluation_tables_and_summary(tiny_run):
    from blendphot.prediction import Prediction

    res = tiny_run / "results"
    test = pd.read_csv(res / "blend/test/catalog.csv")
    sep = Prediction.load(res / "baseline/sep")
    assert (sep.catalog["blend_id"] == test["blend_id"]).all() and sep.catalog["outcome"].notna().all()
    metrics = pd.read_csv(res / "evaluate/metrics.csv")
    assert {"blend2flux", "blend2mask2flux", "blend2image", "blend2image_sum", "sep"} <= set(metrics["method"])
    assert "unet" not in set(metrics["method"])
    assert {"isolated", "true"} == set(metrics["reference"])
    ious = pd.read_csv(res / "evaluate/iou.csv")
    assert {"unet", "blend2mask2flux", "blend2image", "sep"} == set(ious["method"])
    images = pd.read_csv(res / "evaluate/images.csv")
    assert set(images["method"]) == {"blend2image"} and images["ssim_mean"].between(0, 1).all()
    assert (images["chi2_median"] > 0).all()
    table2 = pd.read_csv(res / "evaluate/table2.csv")
    assert list(table2["model"]) == ["blend2flux", "blend2mask2flux"] and (table2["parameters_M"] > 0).all()
    for t in ("table1", "table2", "table3", "headline"):
        assert (res / f"evaluate/{t}.tex").read_text().startswith(r"\begin{table}")
    summary = (res / "summary.md").read_text()
    assert "| blend2flux | both |" in summary and "| sep | both |" in summary
    # the σ head of blend2flux: coverage in the metrics
    assert metrics.loc[metrics["method"] == "blend2flux", "coverage68"].notna().all()
    # ... and the image network, from its table of validation errors (flux_sigma there too)
    assert metrics.loc[metrics["method"] == "blend2image", "coverage68"].notna().any()
    with_sigma = metrics["method"].isin(["blend2flux", "blend2image"])
    assert metrics.loc[~with_sigma, "coverage68"].isna().all()  # sep, the sums, blend2mask2flux here
    assert "## Flux uncertainties" in summary


@pytest.mark.workflow
def test_tiny_run_draws_every_figure(tiny_run):
    import matplotlib.image

    res = tiny_run / "results"
    for n in (*(f"figure{k}" for k in (1, 2, 5, 6, 7, 8, 9, 10, 11, 12)), "sample", "calibration", "deblend"):
        pixels = matplotlib.image.imread(res / f"figures/{n}.png")
        assert pixels.shape[0] > 200 and pixels.shape[1] > 200 and pixels[..., :3].std() > 0.05, n  # drawn, not blank
        assert (res / f"figures/{n}.pdf").read_bytes()[:5] == b"%PDF-"


@pytest.mark.workflow
def test_tiny_run_report(tiny_run):
    run_snakemake(["--cores", "1", "--configfile", TINY, "--report", "results/report.html"], tiny_run)
    report = (tiny_run / "results/report.html").read_text(errors="replace")
    assert "figure12.png" in report and "table2.csv" in report


# ---------------------------------------------------------------------------------------------
# The tiny run's rerun plans, as dry runs against its results

TINY_MODELS = ("blend2flux", "unet", "blend2mask2flux", "blend2image")
UNET = "unet: {arch: unet, unet_depth: 3, unet_filters: 4, blends: fixed}"
RUNTIME = "train:\n  epochs: 2\n  amp: false\n  channels_last: false\n"
# every figure but figure 1, which shows the cleaned isolated galaxies, not blends
BLEND_FIGURES = {f"plot_figure:figure{n}" for n in (2, 5, 6, 7, 8, 9, 10, 11, 12)} | {
    "plot_figure:sample", "plot_figure:calibration", "plot_figure:deblend"}
NO_TRAINING = ("train_", "predict_", "make_")  # the prefixes of the jobs a change must not rerun
DRY = ["-n", "--cores", "1", "--configfile", TINY]


def _edit(tiny: str, old: str, new: str) -> str:
    assert old in tiny, f"tests/config/tiny.yaml no longer holds {old!r}"
    return tiny.replace(old, new)


def unwanted(plan: set, never: set) -> set:
    """The jobs of ``plan`` that ``never`` rules out: named there, or starting with one of its
    prefixes (the entries that end with "_")."""
    prefixes = tuple(p for p in never if p.endswith("_"))
    return {job for job in plan if job in never or job.startswith(prefixes)}


def assert_plan(dry_run_stdout: str, exactly: set | None, including: set, excluding: set) -> None:
    """The plan is ``exactly`` (when given; an empty one says "Nothing to be done"), holds
    ``including`` and nothing that ``excluding`` rules out (:func:`unwanted`)."""
    plan = planned_rules(dry_run_stdout)
    if exactly is not None:
        assert plan == exactly
    if exactly == set():
        assert "Nothing to be done" in dry_run_stdout  # up to date
    assert including <= plan and not unwanted(plan, excluding)


# (change of tests/config/tiny.yaml, the plan exactly or None, jobs it must hold, jobs and job
# prefixes it must not hold)
RERUNS = {
    # a figure setting reruns only the figures it shapes
    "figure setting": (lambda t: t + "figures: {examples: 3}\n",
                       {"plot_figure:figure10", "plot_figure:figure11", "plot_figure:figure12",
                        "plot_figure:deblend", "all"}, set(), set()),
    # a baseline setting reruns the baseline and what reads it, never training or prediction
    "baseline setting": (lambda t: t + "baseline: {flux: iso}\n", None,
                         {"run_baseline", "evaluate", "plot_figure:figure5", "plot_figure:figure12"},
                         {"plot_figure:figure1", *NO_TRAINING}),
    # runtime switches change the speed, not the science: they rerun nothing
    "runtime switches": (lambda t: _edit(t, "train:\n  epochs: 2\n", RUNTIME), set(), set(), set()),
    # one model's setting reruns that model and what depends on it, nothing else
    "one model's setting": (lambda t: _edit(t, UNET, UNET.replace("}", ", epochs: 3}")), None,
                            {"train_model:unet", "predict_model:unet", "train_model:blend2mask2flux",
                             "predict_model:blend2mask2flux"},
                            {"train_model:blend2flux", "predict_model:blend2flux", "make_blends"}),
    # a blending key reruns blend -> train -> predict -> baseline -> evaluate -> figures, nothing upstream
    "blending key": (lambda t: t + "blend: {max_mag_diff: 1.5}\n",
                     {"make_blends", "run_baseline", "evaluate", "all", *BLEND_FIGURES,
                      *(f"{v}_model:{m}" for v in ("train", "predict") for m in TINY_MODELS)}, set(), set()),
}


@pytest.mark.workflow
@pytest.mark.parametrize("change", list(RERUNS))
def test_a_changed_setting_reruns_what_it_shapes(change, tiny_run, tmp_path):
    edit, exactly, including, excluding = RERUNS[change]
    changed = tmp_path / "tiny_changed.yaml"
    changed.write_text(edit((tiny_run / TINY).read_text()))
    assert_plan(run_snakemake([*DRY[:-1], str(changed)], tiny_run).stdout, exactly, including, excluding)


ONE = "results/train/blend2flux/model.pt"
# The README's "rerun one stage" commands (targets go first: --configfile and --forcerun take
# every value that follows them): (arguments, the plan exactly or None, jobs it must hold, jobs it
# must not hold)
README_RERUNS = {
    "a target up to date": ([ONE, *DRY], set(), set(), set()),
    "a target alone": ([*DRY, "--forcerun", ONE, "--", ONE], {"train_model:blend2flux"}, set(), set()),
    "a target and what follows it": ([*DRY, "--forcerun", ONE], None,
                                     {"train_model:blend2flux", "predict_model:blend2flux", "evaluate",
                                      "plot_figure:figure5"},
                                     {"train_model:unet", "train_model:blend2mask2flux", "make_blends",
                                      "run_baseline", "plot_figure:figure1"}),
    "a rule and what follows it": ([*DRY, "--forcerun", "make_blends"], None,
                                   {"make_blends", "train_model:unet", "run_baseline", "plot_figure:figure2"},
                                   {"split_galaxies", "remove_neighbours", "make_mock_field", "plot_figure:figure1"}),
}


@pytest.mark.workflow
@pytest.mark.parametrize("command", list(README_RERUNS))
def test_the_readme_rerun_one_stage_commands(command, tiny_run):
    args, exactly, including, excluding = README_RERUNS[command]
    assert_plan(run_snakemake(args, tiny_run).stdout, exactly, including, excluding)


@pytest.mark.workflow
def test_a_decisions_file_reruns_the_split_and_what_follows(tiny_run, tmp_path):
    """A person's decisions file reruns the split and what follows, nothing upstream."""
    manifest = pd.read_csv(tiny_run / "results/inspect/manifest.csv")
    decisions = manifest[["id"]].head(3).assign(decision="reject", reason="unrecognised_blend")
    exported = tmp_path / "inspection_decisions.csv"  # outside the shared run, which stays as it is
    decisions.to_csv(exported, index=False)
    decided = tmp_path / "decided.yaml"
    decided.write_text(f"inspect: {{decisions: {exported}}}\n")
    with_decisions = [*DRY, str(decided)]
    plan = planned_rules(run_snakemake(with_decisions, tiny_run).stdout)
    assert {"split_galaxies", "make_blends"} <= plan
    assert not plan & {"build_inspection", "remove_neighbours", "make_mock_field"}  # they do not read it
    # ... and a decisions file that is not where the key says is never silently dropped
    exported.unlink()
    proc = run_snakemake(with_decisions, tiny_run, check=False)
    assert proc.returncode != 0
    assert f"config key 'inspect.decisions': {exported} does not exist" in proc.stdout + proc.stderr


@pytest.mark.workflow
def test_the_same_config_makes_the_same_blends_bit_for_bit(tiny_run, tmp_path):
    """Same config, fresh blends: removed and made again, they are identical bit for bit."""
    again = copy_run(tiny_run, tmp_path / "again")
    shutil.rmtree(again / "results/blend")
    targets = [f"results/blend/{split}/images.npy" for split in ("train", "val", "test")]
    plan = planned_rules(run_snakemake([*targets, "-n", "--cores", "2", "--configfile", TINY], again).stdout)
    assert plan == {"make_blends"}  # only the blends: all else is up to date in the copy
    run_snakemake([*targets, "--cores", "2", "--configfile", TINY], again)
    for target in targets:
        assert (again / target).read_bytes() == (tiny_run / target).read_bytes(), target
