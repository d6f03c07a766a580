"""The stamps source through Snakemake: a stamp set in the exact Zenodo layout (padded bytes-like
FIELD, mag_err = mag, neighbours in the images, a segmentation map), cut from the tiny mock
survey (conftest.py's tiny_run, selected there) so that the truth is known, run from the import
to the report. Every test here starts Snakemake."""
import json

import numpy as np
import pandas as pd
import pytest

from blendphot.stampset import mock_stampset

from .workflow_helpers import TINY, copy_run, planned_rules, run_snakemake, stage_runs

pytestmark = pytest.mark.workflow

CONFIG = "tests/config/tiny-stamps.yaml"
STAMPSET = "stampset/candels-blender-data"  # the path in CONFIG, relative to the workflow


@pytest.fixture(scope="module")
def stamps_workdir(workflow_copy, tiny_run):
    """A workflow copy holding a stamp set (and its archive) where CONFIG points, made from the
    tiny mock survey (mosaics, weight maps and catalogues whose truth is known), selected."""
    root = workflow_copy("stamps")
    mock_stampset(tiny_run / "results", root / STAMPSET, archive=True)
    return root


def test_the_set_is_in_the_published_layout(stamps_workdir):
    cat = pd.read_csv(stamps_workdir / STAMPSET / "candels_cat.csv")
    assert list(cat.columns) == ["ID", "RA", "DEC", "FIELD", "mag", "mag_err", "radius", "z", "galtype", "segval"]
    assert cat["FIELD"].iat[0] == "b'tiny      '" and (cat["mag_err"] == cat["mag"]).all()
    seg = np.load(stamps_workdir / STAMPSET / "candels_seg.npy")
    assert (seg[:, 64, 64] == cat["segval"]).all()
    assert (seg.max(axis=(1, 2)) > 1).mean() > 0.5  # most stamps hold neighbours


def test_tiny_stamps_end_to_end(stamps_workdir):
    run_snakemake(["--cores", "2", "--configfile", CONFIG, "--report-after-run", "--report", "results/report.html"],
                  stamps_workdir)
    res = stamps_workdir / "results"
    truth = pd.read_csv(stamps_workdir / STAMPSET / "truth.csv")
    stampset = pd.read_csv(res / "survey/stampset/catalog.csv")
    assert len(stampset) == len(truth) and stampset["field"].eq("tiny").all()
    assert pd.read_csv(res / "select/counts.csv").set_index("class").loc["TOTAL", "selected"] == len(truth)

    # The neighbours were removed, as on the mosaic path
    qa = json.loads((res / "clean/qa.json").read_text(), parse_constant=pytest.fail)  # strict JSON
    assert qa["cleaned"] > 0.9 * len(truth) and qa["single_source_fraction"] > 0.85
    originals = np.load(res / "clean/originals.npy", mmap_mode="r")
    images = np.load(res / "clean/images.npy", mmap_mode="r")
    clean = pd.read_csv(res / "clean/catalog.csv").merge(truth, on="gid")
    changed = (np.asarray(originals) != np.asarray(images)).any(axis=(1, 2))
    assert changed.mean() > 0.5 and (changed == (clean["replaced_pixels"] > 0)).all()
    ratio = clean["flux_auto"] / clean["flux_true"]
    assert 0.8 < ratio.median() < 1.02
    assert 0.9 < clean["replaced_rms_over_weight_sigma"].median() < 1.1  # fill at the noise level

    # ... and everything after it ran to the report
    assert "| sep | both |" in (res / "summary.md").read_text()
    assert (res / "figures/figure1.png").stat().st_size > 5000 and (res / "report.html").exists()
    _, parents, children = stage_runs(f"sqlite:///{res / 'mlflow/mlflow.db'}", "blendphot-test")
    stages = {r.data.tags["blendphot.stage"] for r in children}
    assert {"import_stampset", "select_galaxies", "take_stamps", "remove_neighbours", "evaluate"} <= stages
    assert all(r.info.status == "FINISHED" for r in parents + children)

    # The stamp set is a declared input: a file changed in place is imported again
    plan = planned_rules(run_snakemake(["-n", "--cores", "1", "--configfile", CONFIG], stamps_workdir).stdout)
    assert plan == set()
    cat = stamps_workdir / STAMPSET / "candels_cat.csv"
    original = cat.read_bytes()
    pd.read_csv(cat).assign(mag=lambda c: c["mag"] + 0.01).to_csv(cat, index=False)
    plan = planned_rules(run_snakemake(["-n", "--cores", "1", "--configfile", CONFIG], stamps_workdir).stdout)
    assert {"import_stampset", "select_galaxies", "take_stamps", "remove_neighbours", "make_blends"} <= plan
    cat.write_bytes(original)

    # The set's own segmentation instead of sep's: the cleaning and what follows, nothing upstream
    archive_seg = stamps_workdir / "tests/config/tiny-stamps-archive.yaml"
    archive_seg.write_text((stamps_workdir / CONFIG).read_text().replace("segmentation: sep", "segmentation: archive"))
    plan = planned_rules(run_snakemake(["-n", "--cores", "1", "--configfile", str(archive_seg)], stamps_workdir).stdout)
    assert {"remove_neighbours", "make_blends"} <= plan and not plan & {"import_stampset", "take_stamps"}

def test_a_stampset_url_is_downloaded_by_a_local_rule(stamps_workdir, tmp_path):
    archive = stamps_workdir / (STAMPSET + ".tar.gz")
    config = tmp_path / "url.yaml"
    config.write_text((stamps_workdir / CONFIG).read_text().replace(f"path: {STAMPSET}", f"url: {archive.as_uri()}"))
    run_snakemake(["results/survey/stampset/catalog.csv", "--cores", "1", "--configfile", str(config)], stamps_workdir)
    downloaded = stamps_workdir / "results/survey/stampset/download/candels-blender-data.tar.gz"
    assert downloaded.read_bytes() == archive.read_bytes()
    truth = pd.read_csv(stamps_workdir / STAMPSET / "truth.csv")
    assert len(pd.read_csv(stamps_workdir / "results/survey/stampset/catalog.csv")) == len(truth)
    assert not list((stamps_workdir / "results/survey/stampset").glob(".stampset-*"))  # unpacked copy removed


def test_a_missing_stampset_path_is_named(stamps_workdir, tmp_path):
    config = tmp_path / "missing.yaml"
    config.write_text((stamps_workdir / CONFIG).read_text().replace(f"path: {STAMPSET}", "path: no/such/set"))
    proc = run_snakemake(["-n", "--cores", "1", "--configfile", str(config)], stamps_workdir, check=False)
    assert proc.returncode != 0
    assert "config key 'survey.stamps.path': no/such/set does not exist" in proc.stdout + proc.stderr


def test_the_trained_networks_are_tested_on_another_stamp_set_in_one_run(tiny_run, workflow_copy, tmp_path):
    """Sim-to-real in one run: the networks trained on one mock survey (the tiny run's, seed 42)
    tested on a stamp set cut from another (the tiny survey of seed 7, neighbours included),
    with the usual tables and the in-domain figures beside them. Run in a copy of the tiny run:
    only the transfer stages run."""
    other = workflow_copy("other-survey")
    (tmp_path / "seed7.yaml").write_text("seed: 7\n")
    run_snakemake(["results/select/selected.csv", "--cores", "2", "--configfile", TINY, str(tmp_path / "seed7.yaml")],
                  other)
    root = copy_run(tiny_run, tmp_path / "transfer")
    configs = ["--configfile", TINY, "tests/config/tiny-transfer.yaml"]
    proc = run_snakemake(["-n", "--cores", "1", *configs], root, check=False)  # the set is not there yet
    assert proc.returncode != 0
    assert "config key 'transfer.other-survey.stamps.path': transfer-set does not exist" in proc.stdout + proc.stderr
    mock_stampset(other / "results", root / "transfer-set", archive=False)
    run_snakemake(["transfer", "--cores", "2", *configs], root)

    out = root / "results/transfer/other-survey"
    clean = pd.read_csv(out / "clean/catalog.csv")
    assert len(clean) > 0.9 * len(pd.read_csv(root / "transfer-set/truth.csv"))  # the set's galaxies, cleaned
    assert (pd.read_csv(out / "split/galaxies.csv")["split"] == "test").all()  # none trained on
    blends = pd.read_csv(out / "blend/test/catalog.csv")
    assert len(blends) == 40 and set(blends["cen_gid"]) | set(blends["comp_gid"]) <= set(clean["gid"])
    for model in ("blend2flux", "unet", "blend2mask2flux", "blend2image"):
        assert (out / "predict" / model / "model.json").exists(), model
    deblended = pd.read_csv(out / "predict/blend2image/predictions.csv")
    assert deblended["cen_flux_err"].notna().mean() > 0.9  # the image network's uncertainties too
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# blendphot transfer: the networks trained on the mock survey, tested on the "
                              "blends of stamp set 'other-survey'")
    gap = summary.split("trained for (both galaxies)", 1)[1].split("\n## ", 1)[0]
    assert all(f"| {m} |" in gap for m in ("blend2flux", "blend2mask2flux", "blend2image", "sep"))
    metrics = pd.read_csv(out / "evaluate/metrics.csv")
    assert metrics.loc[metrics["method"] == "blend2image", "coverage68"].notna().any()
    _, parents, children = stage_runs(f"sqlite:///{root / 'results/mlflow/mlflow.db'}", "blendphot-test")
    stages = {r.data.tags["blendphot.stage"] for r in children}
    assert {"transfer_import", "transfer_clean", "transfer_blend", "transfer_predict", "transfer_evaluate"} <= stages
    assert all(r.info.status == "FINISHED" for r in parents + children)

    # One setting of the set changed: its blends and what follows rerun, no training
    more = root / "more.yaml"
    more.write_text("transfer:\n  other-survey:\n    n_blends: 30\n")
    plan = planned_rules(run_snakemake(["transfer", "-n", "--cores", "1", *configs, str(more)], root).stdout)
    assert plan == {"transfer_blend", "transfer_predict", "transfer_baseline", "transfer_evaluate", "transfer"}


def _candels_config(survey: dict) -> str:
    import yaml

    return yaml.safe_dump({"seed": 42, "mlflow": {"tracking_uri": "sqlite:///results/mlflow/mlflow.db",
                                                  "experiment": "blendphot-test"},
                           "survey": {"source": "candels", "candels": survey},
                           "blend": {"n_blends": {"train": 120, "val": 40, "test": 40}},
                           "train": {"models": {"blend2flux": {"arch": "blend2flux", "filters": 4}}}})


def test_the_candels_path_reads_local_files_and_downloads(tiny_run, workflow_copy, tmp_path):
    """source: candels with the tiny mock's files in the CANDELS formats: the mosaic by URL
    (downloaded by the local rule), its weight map and the catalogues read in place."""
    survey = tiny_run / "results/survey/tiny"
    root = workflow_copy("candels")
    config = root / "candels.yaml"
    config.write_text(_candels_config({
        "fields": {"tiny": {"image": {"url": (survey / "image.fits").as_uri()},
                            "weight": {"path": str(survey / "weight.fits")}}},
        "catalogs": {"photometry": {"path": str(survey / "photometry.fits")},
                     "morphology": {"path": str(survey / "morphology.fits")}}}))
    run_snakemake(["results/split/galaxies.csv", "--cores", "2", "--configfile", str(config)], root)
    assert (root / "results/survey/tiny/image.fits").read_bytes() == (survey / "image.fits").read_bytes()
    assert not (root / "results/survey/tiny/weight.fits").exists()  # read in place
    selected = pd.read_csv(root / "results/select/selected.csv")
    assert len(selected) == len(pd.read_csv(tiny_run / "results/select/selected.csv"))
    assert json.loads((root / "results/clean/qa.json").read_text())["single_source_fraction"] > 0.85

    # A catalogue URL that serves a web page, and a column that is not in the file, are named
    page = tmp_path / "form_CANDELS.html"
    page.write_text("<!DOCTYPE html><html><body><form>CANDELS catalogues</form></body></html>")
    config.write_text(_candels_config({
        "fields": {"tiny": {"image": {"path": str(survey / "image.fits")},
                            "weight": {"path": str(survey / "weight.fits")}}},
        "catalogs": {"photometry": {"url": page.as_uri()}, "morphology": {"path": str(survey / "morphology.fits")}}}))
    proc = run_snakemake(["--cores", "1", "--configfile", str(config)], root, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key 'survey.candels.catalogs.photometry.url'" in out and "serves a web page" in out
    assert "lerma.obspm.fr/huertas/form_CANDELS" in out
    assert not list((root / "results/survey/catalogs").glob("photometry*"))
    config.write_text(_candels_config({
        "fields": {"tiny": {"image": {"path": str(survey / "image.fits")},
                            "weight": {"path": str(survey / "weight.fits")}}},
        "catalogs": {"photometry": {"path": str(survey / "photometry.fits")},
                     "morphology": {"path": str(survey / "morphology.fits")}},
        "columns": {"photometry": {"mag": "H_mag"}}}))
    proc = run_snakemake(["--cores", "1", "--configfile", str(config)], root, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "missing column 'H_mag' (config key survey.candels.columns.photometry.mag)" in out
    assert "available: [" in out and "'MAG_F160W'" in out
