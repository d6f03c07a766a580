"""Workflow tests: lint, dry runs of every shipped config, and a tiny end-to-end run."""
import shutil

import numpy as np
import pandas as pd
import pytest

from blendphot.architectures import architecture

from .workflow_helpers import ROOT, copy_workflow, planned_rules, run_snakemake, stage_runs

# mock (demo), candels, stamps, mock at paper scale
SHIPPED = ["config/config.yaml", "config/paper.yaml", "config/paper-stamps.yaml", "config/paper-mock.yaml"]
PAPER_CATALOGUE = "data/dimauro2018_candels.fits"  # config/paper.yaml's local catalogue


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of the workflow (without results) to run in, with a stand-in for the catalogue
    that config/paper.yaml reads from disk (a person downloads it from a web form)."""
    root = copy_workflow(tmp_path_factory.mktemp("wf"))
    (root / PAPER_CATALOGUE).parent.mkdir()
    (root / PAPER_CATALOGUE).write_bytes(b"")
    return root


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


def test_one_training_stage_alone(workdir):
    plan = planned_rules(run_snakemake(["-n", "--cores", "1", "results/train/blend2flux/model.pt"], workdir).stdout)
    assert "train_model:blend2flux" in plan and "make_blends" in plan
    assert "train_model:unet" not in plan and "predict_model:blend2flux" not in plan
    plan = planned_rules(run_snakemake(["-n", "--cores", "1", "train_models"], workdir).stdout)
    assert {"train_model:blend2flux", "train_model:unet", "train_model:blend2mask2flux"} <= plan


def test_the_model_rules_get_a_gpu_and_threads_from_one_profile_entry_each():
    import yaml

    profile = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    for rule in ("train_model", "predict_model"):
        assert profile["set-resources"][rule]["gpu"] == 1, rule
        assert profile["set-threads"][rule] >= 1, rule


def test_a_model_added_to_config_needs_no_profile_edit(workdir, tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("seed: 1\nsurvey: {source: mock}\ntrain:\n  models:\n    small: {arch: blend2flux, filters: 8}\n")
    proc = run_snakemake(["-n", "--cores", "1", "--configfile", str(extra)], workdir)
    plan = planned_rules(proc.stdout)
    assert {"train_model:small", "predict_model:small"} <= plan
    assert "gpu=1" in proc.stdout  # the one train_model entry of the profile applies


def test_bad_config_value_stops_with_the_key(workdir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nsurvey: {source: mock}\nblend: {max_shift: big}\n")
    proc = run_snakemake(["-n", "--cores", "1", "--configfile", str(bad)], workdir, check=False)
    assert proc.returncode != 0
    assert "config key 'blend.max_shift'" in proc.stdout + proc.stderr


@pytest.mark.workflow
def test_tiny_end_to_end(workdir):
    run_snakemake(["--cores", "2", "--configfile", "tests/config/tiny.yaml"], workdir)
    res = workdir / "results"
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
    first = (res / "blend/test/images.npy").read_bytes()

    # MLflow: one parent run, one finished child run per job, all under it
    client, parents, children = stage_runs(f"sqlite:///{res / 'mlflow/mlflow.db'}", "blendphot-test")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    # mock, select, stamps, clean, inspect, split, 3 x blend, 3 x train, 3 x predict, baseline,
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

    # Trained models and their test predictions in the shared format
    from blendphot.prediction import Prediction
    from blendphot.train import load_model

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

    # Baseline, evaluation, tables, summary, figures and the report
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
    # blend2flux has a σ head (tests/config/tiny.yaml): flux errors in its predictions, coverage in the metrics
    assert {"cen_flux_err", "comp_flux_err"} <= set(Prediction.load(res / "predict/blend2flux").catalog.columns)
    assert metrics.loc[metrics["method"] == "blend2flux", "coverage68"].notna().all()
    # ... and the image network, from its table of validation errors (flux_sigma there too)
    assert metrics.loc[metrics["method"] == "blend2image", "coverage68"].notna().any()
    with_sigma = metrics["method"].isin(["blend2flux", "blend2image"])
    assert metrics.loc[~with_sigma, "coverage68"].isna().all()  # sep, the sums, blend2mask2flux here
    assert "## Flux uncertainties" in summary
    import matplotlib.image

    for n in (*(f"figure{k}" for k in (1, 2, 5, 6, 7, 8, 9, 10, 11, 12)), "sample", "calibration", "deblend"):
        pixels = matplotlib.image.imread(res / f"figures/{n}.png")
        assert pixels.shape[0] > 200 and pixels.shape[1] > 200 and pixels[..., :3].std() > 0.05, n  # drawn, not blank
        assert (res / f"figures/{n}.pdf").read_bytes()[:5] == b"%PDF-"
    evaluate_run = next(r for r in children if r.data.tags["blendphot.stage"] == "evaluate")
    assert 0 < evaluate_run.data.metrics["blend2flux.both.mape_flux"] < 1000
    run_snakemake(["--cores", "1", "--configfile", "tests/config/tiny.yaml", "--report", "results/report.html"],
                  workdir)
    report = (res / "report.html").read_text(errors="replace")
    assert "figure12.png" in report and "table2.csv" in report

    # A figure setting reruns only the figures it shapes; a baseline setting reruns the
    # baseline and what reads it, never training or prediction
    tiny = (workdir / "tests/config/tiny.yaml").read_text()
    changed = workdir / "tests/config/tiny_changed.yaml"
    changed.write_text(tiny + "figures: {examples: 3}\n")
    plan = run_snakemake(["-n", "--cores", "1", "--configfile", str(changed)], workdir).stdout
    shaped = {"plot_figure:figure10", "plot_figure:figure11", "plot_figure:figure12", "plot_figure:deblend"}
    assert planned_rules(plan) == shaped | {"all"}
    changed.write_text(tiny + "baseline: {flux: iso}\n")
    plan = planned_rules(run_snakemake(["-n", "--cores", "1", "--configfile", str(changed)], workdir).stdout)
    assert {"run_baseline", "evaluate", "plot_figure:figure5", "plot_figure:figure12"} <= plan
    assert not {r for r in plan if r.startswith(("train_", "predict_", "make_"))} and "plot_figure:figure1" not in plan

    # Runtime switches change the speed, not the science: they rerun nothing
    runtime = "train:\n  epochs: 2\n  amp: false\n  channels_last: false\n"
    changed.write_text(tiny.replace("train:\n  epochs: 2\n", runtime))
    assert "amp: false" in changed.read_text()
    plan = run_snakemake(["-n", "--cores", "1", "--configfile", str(changed)], workdir).stdout
    assert planned_rules(plan) == set() and "Nothing to be done" in plan

    # Changing one model's setting reruns that model and what depends on it, nothing else
    unet = "unet: {arch: unet, unet_depth: 3, unet_filters: 4, blends: fixed}"
    assert unet in tiny
    changed.write_text(tiny.replace(unet, unet.replace("}", ", epochs: 3}")))
    plan = planned_rules(run_snakemake(["-n", "--cores", "1", "--configfile", str(changed)], workdir).stdout)
    for job in ("train_model:unet", "predict_model:unet", "train_model:blend2mask2flux",
                "predict_model:blend2mask2flux"):
        assert job in plan
    for job in ("train_model:blend2flux", "predict_model:blend2flux", "make_blends"):
        assert job not in plan

    # A blending key reruns blend -> train -> predict -> baseline -> evaluate -> figures, nothing upstream
    changed.write_text(tiny + "blend: {max_mag_diff: 1.5}\n")
    plan = planned_rules(run_snakemake(["-n", "--cores", "1", "--configfile", str(changed)], workdir).stdout)
    downstream = {"make_blends", "run_baseline", "evaluate", "all"} | {
        f"{v}_model:{m}" for v in ("train", "predict")
        for m in ("blend2flux", "unet", "blend2mask2flux", "blend2image")}
    # every figure but figure 1, which shows the cleaned isolated galaxies, not blends
    figures = {f"plot_figure:figure{n}" for n in (2, 5, 6, 7, 8, 9, 10, 11, 12)} | {
        "plot_figure:sample", "plot_figure:calibration", "plot_figure:deblend"}
    assert downstream | figures == plan

    # The README's "rerun one stage" commands
    # (targets go first: --configfile and --forcerun take every value that follows them)
    args = ["-n", "--cores", "1", "--configfile", "tests/config/tiny.yaml"]
    one = "results/train/blend2flux/model.pt"
    plan = run_snakemake([one, *args], workdir).stdout
    assert planned_rules(plan) == set() and "Nothing to be done" in plan  # up to date
    plan = planned_rules(run_snakemake([*args, "--forcerun", one, "--", one], workdir).stdout)
    assert plan == {"train_model:blend2flux"}  # a target alone: what follows it is not a target
    plan = planned_rules(run_snakemake([*args, "--forcerun", one], workdir).stdout)
    assert {"train_model:blend2flux", "predict_model:blend2flux", "evaluate", "plot_figure:figure5"} <= plan
    assert not plan & {"train_model:unet", "train_model:blend2mask2flux", "make_blends", "run_baseline",
                       "plot_figure:figure1"}
    plan = planned_rules(run_snakemake([*args, "--forcerun", "make_blends"], workdir).stdout)
    assert {"make_blends", "train_model:unet", "run_baseline", "plot_figure:figure2"} <= plan
    assert not plan & {"split_galaxies", "remove_neighbours", "make_mock_field", "plot_figure:figure1"}

    # A person's decisions file reruns the split and what follows, nothing upstream
    manifest = pd.read_csv(res / "inspect/manifest.csv")
    decisions = manifest[["id"]].head(3).assign(decision="reject", reason="unrecognised_blend")
    decisions.to_csv(workdir / "config/inspection_decisions.csv", index=False)
    decided = workdir / "decided.yaml"
    decided.write_text("inspect: {decisions: config/inspection_decisions.csv}\n")
    with_decisions = ["-n", "--cores", "1", "--configfile", "tests/config/tiny.yaml", str(decided)]
    plan = planned_rules(run_snakemake(with_decisions, workdir).stdout)
    assert {"split_galaxies", "make_blends"} <= plan
    assert not plan & {"build_inspection", "remove_neighbours", "make_mock_field"}  # they do not read it
    (workdir / "config/inspection_decisions.csv").unlink()
    # ... and a decisions file that is not where the key says is never silently dropped
    proc = run_snakemake(with_decisions, workdir, check=False)
    assert proc.returncode != 0
    assert "config key 'inspect.decisions': config/inspection_decisions.csv does not exist" in proc.stdout + proc.stderr

    # Same config, fresh results: the blends are identical bit for bit
    shutil.rmtree(res / "blend")
    run_snakemake(["--cores", "2", "--configfile", "tests/config/tiny.yaml"], workdir)
    assert (res / "blend/test/images.npy").read_bytes() == first


@pytest.mark.parametrize("config", SHIPPED)
def test_every_rule_has_memory_and_runtime_in_the_workflow_profile(config, workdir):
    """The workflow profile sets no default-resources (a global profile's account/partition must
    survive), so every rule needs its own entry."""
    import yaml

    rules = run_snakemake(["--list-rules", "--configfile", config], workdir).stdout.split()
    assert "make_blends" in rules and "train_model" in rules and "plot_figure" in rules
    profile = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    assert "default-resources" not in profile
    aggregates = {"all", "train_models", "predict_models", "plot_figures", "transfer"}  # local rules that run nothing
    for rule in set(rules) - aggregates:
        assert {"mem_mb", "runtime"} <= set(profile["set-resources"].get(rule, {})), rule


def test_the_profiles_gpu_partition_and_model_reach_the_slurm_executor(workdir, tmp_path):
    """The commented defaults an astronomer uncomments once: a dry run with the SLURM executor
    gives the GPU rules their partition, card type and runtime."""
    import yaml

    copy = copy_workflow(tmp_path / "wf")
    profile = copy / "profiles/default/config.yaml"
    text = profile.read_text()
    assert text.count("# slurm_partition: gpu") == 3 and text.count("# gpu_model: a100") == 3  # the GPU rules
    profile.write_text(text.replace("# slurm_partition: gpu", "slurm_partition: gpu")
                       .replace("# gpu_model: a100", "gpu_model: a100"))
    assert yaml.safe_load(profile.read_text())["set-resources"]["train_model"]["slurm_partition"] == "gpu"
    out = run_snakemake(["-n", "--executor", "slurm", "--jobs", "10", "results/train/blend2flux/model.pt"],
                        copy).stdout
    def resources(rule):
        return next(line for line in out.split(f"rule {rule}:", 1)[1].splitlines() if "resources:" in line)

    train = resources("train_model")
    assert "gpu=1" in train and "slurm_partition=gpu" in train and "gpu_model=a100" in train
    assert "runtime=240" in train
    blend = resources("make_blends")
    assert "slurm_partition" not in blend and "gpu=" not in blend  # CPU stages keep the default partition
