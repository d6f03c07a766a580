"""The stamps source through Snakemake: a stamp set in the exact Zenodo layout (padded bytes-like
FIELD, mag_err = mag, neighbours in the images, a segmentation map), cut from a tiny mock
survey so that the truth is known, run from the import to the report."""
import json
import os
import time

import numpy as np
import pandas as pd
import pytest

from blendphot.stampset import mock_stampset

from .workflow_helpers import copy_workflow, planned_rules, run_snakemake, stage_runs

CONFIG = "tests/config/tiny-stamps.yaml"
STAMPSET = "stampset/candels-blender-data"  # the path in CONFIG, relative to the workflow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A workflow copy holding a mock-built stamp set (and its archive) where CONFIG points."""
    mock = copy_workflow(tmp_path_factory.mktemp("mock"))
    run_snakemake(["results/select/selected.csv", "--cores", "2", "--configfile", "tests/config/tiny.yaml"], mock)
    root = copy_workflow(tmp_path_factory.mktemp("stamps"))
    mock_stampset(mock / "results", root / STAMPSET, archive=True)
    return root


def test_the_set_is_in_the_published_layout(workdir):
    cat = pd.read_csv(workdir / STAMPSET / "candels_cat.csv")
    assert list(cat.columns) == ["ID", "RA", "DEC", "FIELD", "mag", "mag_err", "radius", "z", "galtype", "segval"]
    assert cat["FIELD"].iat[0] == "b'tiny      '" and (cat["mag_err"] == cat["mag"]).all()
    seg = np.load(workdir / STAMPSET / "candels_seg.npy")
    assert (seg[:, 64, 64] == cat["segval"]).all()
    assert (seg.max(axis=(1, 2)) > 1).mean() > 0.5  # most stamps hold neighbours


@pytest.mark.workflow
def test_tiny_stamps_end_to_end(workdir):
    run_snakemake(["--cores", "2", "--configfile", CONFIG, "--report-after-run", "--report", "results/report.html"],
                  workdir)
    res = workdir / "results"
    truth = pd.read_csv(workdir / STAMPSET / "truth.csv")
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

    # The stamp set is a declared input: a file replaced in place is imported again
    plan = planned_rules(run_snakemake(["-n", "--cores", "1", "--configfile", CONFIG], workdir).stdout)
    assert plan == set()
    cat = workdir / STAMPSET / "candels_cat.csv"
    later = time.time() + 5
    os.utime(cat, (later, later))
    plan = planned_rules(run_snakemake(["-n", "--cores", "1", "--configfile", CONFIG], workdir).stdout)
    assert {"import_stampset", "select_galaxies", "take_stamps", "remove_neighbours", "make_blends"} <= plan

    # The set's own segmentation instead of sep's: the cleaning and what follows, nothing upstream
    archive_seg = workdir / "tests/config/tiny-stamps-archive.yaml"
    archive_seg.write_text((workdir / CONFIG).read_text().replace("segmentation: sep", "segmentation: archive"))
    os.utime(cat, (time.time() - 3600,) * 2)
    run_snakemake(["--cores", "2", "--configfile", CONFIG, "--", "results/stamps/stampset/catalog.csv"], workdir)
    plan = planned_rules(run_snakemake(["-n", "--cores", "1", "--configfile", str(archive_seg)], workdir).stdout)
    assert {"remove_neighbours", "make_blends"} <= plan and not plan & {"import_stampset", "take_stamps"}


def test_a_stampset_url_is_downloaded_by_a_local_rule(workdir, tmp_path):
    archive = workdir / (STAMPSET + ".tar.gz")
    config = tmp_path / "url.yaml"
    config.write_text((workdir / CONFIG).read_text().replace(f"path: {STAMPSET}", f"url: {archive.as_uri()}"))
    run_snakemake(["results/survey/stampset/catalog.csv", "--cores", "1", "--configfile", str(config)], workdir)
    downloaded = workdir / "results/survey/stampset/download/candels-blender-data.tar.gz"
    assert downloaded.read_bytes() == archive.read_bytes()
    truth = pd.read_csv(workdir / STAMPSET / "truth.csv")
    assert len(pd.read_csv(workdir / "results/survey/stampset/catalog.csv")) == len(truth)
    assert not list((workdir / "results/survey/stampset").glob(".stampset-*"))  # unpacked copy removed


def test_a_missing_stampset_path_is_named(workdir, tmp_path):
    config = tmp_path / "missing.yaml"
    config.write_text((workdir / CONFIG).read_text().replace(f"path: {STAMPSET}", "path: no/such/set"))
    proc = run_snakemake(["-n", "--cores", "1", "--configfile", str(config)], workdir, check=False)
    assert proc.returncode != 0
    assert "config key 'survey.stamps.path': no/such/set does not exist" in proc.stdout + proc.stderr
