"""Stages in their Apptainer images, through Snakemake's own `--sdm apptainer` code path.

Apptainer cannot be installed here, so tests/containers/apptainer_standin.py stands in for it,
backed by podman: it builds containers/data.def for real (its %files, %post and %test, on a
Debian bookworm root file system made with debootstrap in place of the python:3.11-slim-bookworm
base image) and runs `apptainer exec` as `podman run`. The data stages (survey to blend) then run
in the image, and must give the same blends, bit for bit, as the same stages run on the host.

Needs root, podman (configured by tests/containers/setup-podman.sh), debootstrap and the
network to Debian and PyPI; skipped without them unless BLENDPHOT_REQUIRE_CONTAINERS=1
(set by .ci/run), which makes it fail instead.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .workflow_helpers import ROOT, copy_workflow, missing_system_needs, run_snakemake, skip_unless_possible, stage_runs

# runs whole on one pytest-xdist worker: conftest.ONE_WORKER_MODULES
pytestmark = pytest.mark.containers

STANDIN = ROOT / "tests/containers/apptainer_standin.py"
DATA_RULES = {"make_mock_field", "select_galaxies", "cut_stamps", "remove_neighbours", "build_inspection",
              "split_galaxies", "make_blends"}


@pytest.fixture(scope="module")
def apptainer(tmp_path_factory):
    """Environment with the stand-in `apptainer` first on PATH."""
    why = missing_system_needs(("podman", "debootstrap", "chroot"))
    if not why and subprocess.run(["podman", "info"], capture_output=True).returncode != 0:
        why = "podman does not work (run tests/containers/setup-podman.sh)"
    skip_unless_possible(why, "container test", "BLENDPHOT_REQUIRE_CONTAINERS")
    bindir = tmp_path_factory.mktemp("bin")
    (bindir / "apptainer").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" "$@"\n')
    (bindir / "apptainer").chmod(0o755)
    yield {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["podman", "rmi", "-f", "localhost/blendphot-data:latest", "localhost/blendphot-broken:latest"],
                   capture_output=True)


def build(env, cwd, image, definition):
    return subprocess.run(["apptainer", "build", image, definition], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1200)


def test_data_stages_run_in_the_data_image(apptainer, tmp_path, tiny_run):
    """The data stages in the image give the blends of the same config run on the host (the
    shared tiny run), bit for bit."""
    workdir = copy_workflow(tmp_path / "wf")
    proc = build(apptainer, workdir, "containers/data.sif", "containers/data.def")
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "running %test" in proc.stderr

    run_snakemake(["--sdm", "apptainer", "--cores", "2", "--configfile", "tests/config/tiny.yaml",
                   "--until", "make_blends"], workdir, env={"PATH": apptainer["PATH"]})
    _, _, runs = stage_runs(f"sqlite:///{workdir / 'results/mlflow/mlflow.db'}", "blendphot-test")
    assert {r.data.tags["blendphot.stage"] for r in runs} == DATA_RULES
    assert all(r.info.status == "FINISHED" for r in runs)
    # Every stage ran on the image's Python environment, not the host's
    assert {r.data.tags["blendphot.python"] for r in runs} == {"/opt/venv"}

    host = tiny_run  # the same config, run on the host's environment
    assert {r.data.tags["blendphot.python"] for r in stage_runs(
        f"sqlite:///{host / 'results/mlflow/mlflow.db'}", "blendphot-test")[2]} == {sys.prefix}
    for name in ("survey/tiny/image.fits", "clean/images.npy", "blend/train/images.npy", "blend/test/masks.npy",
                 "blend/test/catalog.csv"):
        assert (workdir / "results" / name).read_bytes() == (host / "results" / name).read_bytes(), name


def test_a_failing_test_section_fails_the_build(apptainer, tmp_path):
    definition = tmp_path / "broken.def"
    definition.write_text("Bootstrap: docker\nFrom: python:3.11-slim-bookworm\n\n%post\n    true\n\n"
                          "%test\n    python3 -c 'import galsim'\n")
    proc = build(apptainer, tmp_path, "broken.sif", str(definition))
    assert proc.returncode != 0 and "%test failed" in proc.stderr
    assert not (tmp_path / "broken.sif").exists()


def test_the_shipped_slurm_profile_plans_the_workflow_in_containers(apptainer, tmp_path):
    """profiles/slurm as shipped (executor slurm, --sdm apptainer, --nv): a dry run plans every
    job with its family's image."""
    workdir = copy_workflow(tmp_path / "wf")
    proc = run_snakemake(["-n", "--profile", "profiles/slurm"], workdir, env={"PATH": apptainer["PATH"]})
    assert "rule train_model:" in proc.stdout and "model=blend2mask2flux" in proc.stdout
    assert "make_blends" in proc.stdout
