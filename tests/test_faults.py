"""The project's reliability promise, one case per fault a cluster user meets.

Every case ends one of two ways: the run goes on and gives the right result, or it stops with
one message naming the file, the config key or the column at fault, leaving nothing partial in
results/ (hidden temporaries included) and no MLflow run RUNNING after the next successful
invocation; rerun after the fix, it recovers. The download cases are in test_download.py and
the tracking ones in test_tracking.py; the workflow-level ones below run the tiny config.
"""
from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from blendphot import io
from blendphot.errors import DiskFullError


class FakeJob:
    """What a Snakemake ``script:`` job gets as ``snakemake``, for stage() alone."""

    class _List(list):
        def items(self):
            return list(self.named.items())

        def get(self, key, default=None):
            return self.named.get(key, default)

    def __init__(self, tmp_path: Path, outputs: list[str], params: dict | None = None):
        self.rule = "make_blends"
        self.output = self._List(outputs)
        self.output.named = {}
        self.log = [str(tmp_path / "job.log")]
        self.params = self._List((params or {}).values())
        self.params.named = params or {}
        self.wildcards = self._List()
        self.wildcards.named = {}
        self.config = {"mlflow": {"enabled": False}}


def test_a_jobs_rerun_removes_the_hidden_temporaries_a_killed_attempt_left(tmp_path):
    from blendphot.workflow import stage

    out = tmp_path / "blend/train"
    out.mkdir(parents=True)
    stale = [out / ".images.npy.k2j3h1.npy.part", out / ".masks.npy.a8s7d6.npy.part"]
    state = tmp_path / "train/unet/state"
    state.mkdir(parents=True)
    stale.append(state / ".last.pt.x1y2z3.pt.part")
    others = [out / ".catalog.csv.q1w2e3.csv.part", out / "keep.npy.part"]  # another job's; a download's
    for f in stale + others:
        f.write_bytes(b"x")
    job = FakeJob(tmp_path, [str(out / "images.npy"), str(out / "masks.npy")], {"state_dir": str(state)})
    with stage(job):
        pass
    assert not any(f.exists() for f in stale) and all(f.exists() for f in others)
    assert "removed 3 temporary file(s)" in Path(job.log[0]).read_text()


def test_a_full_disk_is_one_message_naming_the_output_not_a_sigbus(tmp_path, capfd):
    """A memory-mapped output is allocated up front: a full disk fails at once, with the size
    asked and the space free, and nothing is left behind."""
    from blendphot.workflow import stage

    with _small_disk(tmp_path / "disk", "1m") as disk:
        job = FakeJob(tmp_path, [str(disk / "images.npy")])
        with pytest.raises(SystemExit) as exit_, stage(job):
            with io.create_array(disk / "images.npy", (64, 128, 128), np.float32) as array:
                array[:] = 1.0
        assert exit_.value.code == 1
        err = capfd.readouterr().err
        assert f"blendphot: error in rule make_blends: {disk / 'images.npy'}: no space left on the device" in err
        assert "for its 4.2 MB; " in err and "MB free there" in err
        assert list(disk.iterdir()) == []  # no partial file, hidden or not
        # a plain write that fills the disk is reported the same way, as the output it was to be
        job = FakeJob(tmp_path, [str(disk / "catalog.csv")])
        with pytest.raises(SystemExit), stage(job), io.atomic_path(disk / "catalog.csv", ".csv") as tmp:
            tmp.write_bytes(b"0" * 2_000_000)
        assert f"{disk / 'catalog.csv'}: no space left on the device" in capfd.readouterr().err
        assert list(disk.iterdir()) == []


def _write_fits(path):
    io.write_fits_image(path, np.ones((1500, 1500), np.float32))  # 9 MB: astropy checks the space first


def _write_npy(path):
    io.save_array(path, np.ones((1500, 1500), np.float32))  # numpy's short write: an OSError without errno


def _write_checkpoint(path):
    import torch

    from blendphot.models import ModelConfig
    from blendphot.train import save_checkpoint

    model = torch.nn.Linear(1500, 1500)  # 9 MB of weights: torch's stream writer raises a RuntimeError
    save_checkpoint(path, model=model, model_cfg=ModelConfig(arch="blend2flux"))


@pytest.mark.parametrize(("rule", "output", "write"), [
    ("make_mock_field", "mosaic.fits", _write_fits),
    ("cut_stamps", "images.npy", _write_npy),
    ("remove_neighbours", "images.npy", _write_npy),
    ("train_model", "model.pt", _write_checkpoint),
])
def test_a_disk_that_fills_in_any_writer_is_one_line(tmp_path, capfd, rule, output, write):
    """Whatever a writer raises when the disk fills (ENOSPC, astropy's own check, numpy's short
    write, torch's RuntimeError), the job ends with the one line naming the output, even with its
    log and the MLflow store on the same full disk; nothing partial is left."""
    from blendphot.workflow import stage

    with _small_disk(tmp_path / "disk", "4m") as disk:
        job = FakeJob(disk, [str(disk / output)])
        job.rule = rule
        job.config = {"mlflow": {"tracking_uri": f"sqlite:///{disk}/mlflow.db", "experiment": "full"}}
        with pytest.raises(SystemExit) as exit_, stage(job):
            write(disk / output)
        assert exit_.value.code == 1
        err = [line for line in capfd.readouterr().err.splitlines() if line.startswith("blendphot:")]
        assert err[-1].startswith(f"blendphot: error in rule {rule}: {disk / output}: no space left on the device")
        assert not any(line.startswith("blendphot: error") for line in err[:-1])
        assert not list(disk.glob(".*.part")) and not (disk / output).exists()


def test_create_array_reserves_its_space_up_front(tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(DiskFullError, match=r"images\.npy: no space left on the device for its 6\.6 MB"):
        with io.create_array(tmp_path / "images.npy", (100, 128, 128), np.float32):
            pass
    assert list(tmp_path.iterdir()) == []


@contextlib.contextmanager
def _small_disk(where: Path, size: str):
    """A tmpfs of ``size`` at ``where`` (root only; skipped elsewhere)."""
    where.mkdir(parents=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip() or proc.returncode})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _manifest_and_catalog(tmp_path: Path, n: int, decision: str = "accept"):
    import pandas as pd

    gids = [f"f-{i}" for i in range(n)]
    cls = ["disk", "bulge"] * (n // 2) + ["disk"] * (n % 2)
    pd.DataFrame({"id": gids, "cls": cls, "decision": decision,
                  "reason": "" if decision == "accept" else "residual_neighbour_flux"}).to_csv(
        tmp_path / "manifest.csv", index=False)
    pd.DataFrame({"gid": gids, "cls": cls}).to_csv(tmp_path / "catalog.csv", index=False)
    return {"galaxies": tmp_path / "galaxies.csv", "table1": tmp_path / "table1.csv"}


def test_no_accepted_galaxy_stops_at_the_split_naming_the_decisions(tmp_path):
    from blendphot.errors import InputError
    from blendphot.split import run_split_galaxies

    out = _manifest_and_catalog(tmp_path, 20, decision="reject")
    settings = {"fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "stratify": True}
    with pytest.raises(InputError, match=r"manifest\.csv: none of the 20 galaxies is accepted "
                                         r"\(reasons: \{'residual_neighbour_flux': 20\}\)"):
        run_split_galaxies(tmp_path / "manifest.csv", tmp_path / "catalog.csv", out, settings=settings, seed=1)
    assert not out["galaxies"].exists() and not out["table1"].exists()


def test_a_split_too_small_for_a_blend_stops_at_the_split(tmp_path):
    from blendphot.errors import InputError
    from blendphot.split import run_split_galaxies

    out = _manifest_and_catalog(tmp_path, 6)
    settings = {"fractions": {"train": 0.8, "val": 0.1, "test": 0.1}, "stratify": False}
    with pytest.raises(InputError, match=r"the val split gets 1 of the 6 accepted galaxies.*split\.fractions"):
        run_split_galaxies(tmp_path / "manifest.csv", tmp_path / "catalog.csv", out, settings=settings, seed=1)
    assert not out["galaxies"].exists()


# Where a whole invocation is killed (SIGKILL to Snakemake and its jobs at once, as an OOM
# killer, a lost node or `kill -9 -<pgid>` does): in each stage up to training, once that stage's
# job is at an event of its own, seen in its log or its MLflow run:
#   "log"    its log was opened: a quick stage, killed at once (before its MLflow run opens)
#   "run"    its MLflow run is open: the job is in its work
#   "epoch"  its log says epoch 0 is over (and its checkpoint written): the next run resumes
# (its log, its rule, its event)
KILLED_IN = [("survey/tiny", "make_mock_field", "run"), ("select", "select_galaxies", "log"),
             ("stamps/tiny", "cut_stamps", "run"), ("clean", "remove_neighbours", "run"),
             ("inspect", "build_inspection", "log"), ("split", "split_galaxies", "log"),
             ("blend/val", "make_blends", "run"), ("train/blend2flux", "train_model", "epoch")]
TARGET = "results/train/blend2flux/model.pt"
COMPARED = ["survey/tiny/image.fits", "survey/tiny/truth.csv", "select/selected.csv", "stamps/tiny/images.npy",
            "clean/images.npy", "clean/masks.npy", "clean/catalog.csv", "split/galaxies.csv", "blend/val/images.npy",
            "blend/val/central.npy", "blend/val/catalog.csv"]


class _Runs:
    """The stage runs of the killed invocations' MLflow store, by rule and status (read only
    once the store exists: the workflow creates it before its first job opens its log)."""

    def __init__(self, uri: str, experiment: str):
        self.uri, self.experiment, self.client = uri, experiment, None

    def of(self, rule: str, status: str) -> list:
        from mlflow.tracking import MlflowClient

        self.client = self.client or MlflowClient(tracking_uri=self.uri)
        exp = self.client.get_experiment_by_name(self.experiment)
        return self.client.search_runs([exp.experiment_id], filter_string=(
            f"tags.`blendphot.stage` = '{rule}' and attributes.status = '{status}'"))


def _wait_for(event, proc, what: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while not event():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s"
        time.sleep(0.02)


@pytest.mark.workflow
def test_killed_at_every_stage_the_next_run_recovers_identical_outputs_and_closes_the_runs(tiny_run, workflow_copy):
    """Killed in each stage in turn, then run to the end: the outputs are those of the tiny run,
    byte for byte, no temporary is left, and every run the kills left open is closed."""
    import signal

    from .workflow_helpers import SNAKEMAKE, TINY, require_workflow_marker, run_snakemake, stage_runs

    args = [TARGET, "--cores", "2", "--configfile", TINY]
    work = workflow_copy("killed")
    res, ref = work / "results", tiny_run / "results"  # the reference: the same config, never killed
    runs = _Runs(f"sqlite:///{res / 'mlflow/mlflow.db'}", "blendphot-test")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLENDPHOT_MLFLOW")}
    for stage, rule, event in KILLED_IN:
        log = res / "logs" / f"{stage}.log"
        log.unlink(missing_ok=True)
        require_workflow_marker()
        proc = subprocess.Popen(SNAKEMAKE + args, cwd=work, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for(log.exists, proc, f"{stage} started")
            if event == "run":
                _wait_for(lambda rule=rule: runs.of(rule, "RUNNING"), proc, f"the MLflow run of {rule}")
            elif event == "epoch":
                _wait_for(lambda log=log: "epoch 0: train" in log.read_text(), proc, f"epoch 0 of {stage}")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert not runs.of(rule, "FINISHED"), f"killed too late: {stage} had finished"
        run_snakemake(["--unlock", *args], work)  # what Snakemake asks for after a kill
    run_snakemake(args, work)

    for name in COMPARED:
        assert (res / name).read_bytes() == (ref / name).read_bytes(), name
    assert (res / "train/blend2flux/model.pt").exists()
    assert "resumed from" in (res / "logs/train/blend2flux.log").read_text()  # killed after its first epoch
    assert sorted(p.relative_to(res) for p in res.rglob(".*.part")) == []  # no hidden temporary left
    _, parents, children = stage_runs(f"sqlite:///{res / 'mlflow/mlflow.db'}", "blendphot-test")
    assert len(parents) == len(KILLED_IN) + 1
    running = [(r.info.run_name, r.data.tags.get("blendphot.stage")) for r in parents + children
               if r.info.status == "RUNNING"]
    assert running == []
    killed = {r.data.tags.get("blendphot.stage") for r in children if r.info.status == "KILLED"}
    # every job killed with its run open; a job killed at once may have opened none
    assert {rule for _, rule, event in KILLED_IN if event != "log"} <= killed <= {rule for _, rule, _ in KILLED_IN}


def test_a_selection_that_keeps_no_galaxy_stops_there_naming_the_keys(tmp_path):
    import pandas as pd

    from blendphot.errors import InputError
    from blendphot.select import run_select_galaxies

    stampset = tmp_path / "stampset.csv"
    pd.DataFrame({"gid": ["a-1", "a-2"], "cls": ["disk", "bulge"], "mag": [21.0, 22.5], "re_arcsec": [0.3, 0.4],
                  "field": "a", "id": [1, 2], "ra": 0.0, "dec": 0.0}).to_csv(stampset, index=False)
    out = {"catalog": tmp_path / "selected.csv", "counts": tmp_path / "counts.csv"}
    with pytest.raises(InputError, match=r"no galaxy passes the selection \(select\.mag_max = 12"):
        run_select_galaxies(out, settings={"mag_max": 12, "p_min": 0.8}, columns={}, stampset=stampset)
    assert not any(p.exists() for p in out.values())


@pytest.mark.parametrize(("text", "message"), [
    ("", "config file .*c.yaml is empty"),
    ("seed: 1\nsurvey:\n  source: mock\n   bad: [\n", r"cannot read config file .*c.yaml: .*line 4, column 7"),
    ("- seed\n- 1\n", "c.yaml does not hold a mapping of keys"),
])
def test_a_broken_config_file_is_named_with_its_line(tmp_path, capsys, text, message):
    """What `blendphot check-config` (run first by `make run`) says where Snakemake's own
    reading of the file names no file and no line."""
    import re

    from blendphot.cli import main

    (tmp_path / "c.yaml").write_text(text)
    assert main(["check-config", str(tmp_path / "c.yaml")]) == 1
    err = capsys.readouterr().err
    assert re.search(message, err, re.S) and len(err.strip().splitlines()) <= 2, err


def test_a_weight_map_of_the_wrong_shape_is_named(tmp_path):
    from astropy.wcs import WCS

    from blendphot.errors import InputError
    from blendphot.stamps import cut_stamps

    with pytest.raises(InputError, match=r"^w\.fits: weight map of shape \(90, 100\), but i\.fits is \(100, 100\)"):
        cut_stamps(np.zeros((100, 100), np.float32), np.ones((90, 100), np.float32), WCS(naxis=2),
                   None, size=32, image_name="i.fits", weight_name="w.fits")


def test_a_gpu_asked_for_where_there_is_none_is_one_message():
    import torch

    from blendphot.device import resolve_device
    from blendphot.errors import ConfigError

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match=r"train\.models\.x asked for BLENDPHOT_DEVICE=cuda, but .* set "
                                          r"BLENDPHOT_DEVICE=cpu"):
        resolve_device("cuda", what="train.models.x")


@pytest.mark.parametrize(("argv", "env", "asked"), [
    ([], {"BLENDPHOT_DEVICE": "cuda"}, "BLENDPHOT_DEVICE=cuda"),
    (["--device", "cuda"], {}, "--device cuda"),
    (["--device", "cuda:1"], {"BLENDPHOT_DEVICE": "cpu"}, "--device cuda:1"),
])
def test_predict_takes_its_device_from_the_option_or_the_environment(tmp_path, monkeypatch, capsys, argv, env,
                                                                     asked):
    """One rule: an explicit device that is not there is an error naming where it was asked for
    (BLENDPHOT_DEVICE was ignored by `blendphot predict`, which ran on the CPU without a word)."""
    import torch

    from blendphot.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.delenv("BLENDPHOT_DEVICE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["predict", str(tmp_path / "model.pt"), str(tmp_path / "blends.npy"), str(tmp_path / "out"),
                 *argv]) == 1
    err = capsys.readouterr().err
    assert f"prediction asked for {asked}, but " in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


_BUILD_WHEEL = textwrap.dedent("""
    import json, sys, warnings
    from setuptools import build_meta
    from setuptools.warnings import SetuptoolsWarning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wheel = build_meta.build_wheel(sys.argv[1])
    print(json.dumps({"wheel": wheel, "warnings": [f"{w.category.__name__}: {w.message}" for w in caught
                                                   if issubclass(w.category, SetuptoolsWarning)]}))
""")


def test_the_package_builds_without_a_setuptools_warning(tmp_path):
    """The wheel pip builds from the project: a license table (the old form) makes setuptools
    warn twice on every install, and a data folder that is not a listed package once more
    ("Package would be ignored"). Built here with setuptools' own backend, it gives no warning,
    carries the SPDX license expression and the inspection page's templates."""
    import json
    import shutil
    import sys
    import zipfile

    import tomllib
    from packaging.requirements import Requirement

    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    shutil.copytree(root / "workflow/blendphot", src / "workflow/blendphot",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    proc = subprocess.run([sys.executable, "-c", _BUILD_WHEEL, str(tmp_path / "dist")], cwd=src,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = json.loads(proc.stdout.strip().splitlines()[-1])
    assert built["warnings"] == []
    with zipfile.ZipFile(tmp_path / "dist" / built["wheel"]) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: BSD-3-Clause" in metadata.splitlines()  # an SPDX expression
    assert "Classifier: License ::" not in metadata
    assert any(n.startswith("blendphot/templates/") for n in names)  # the page's files, as a listed package
    # an isolated build (pip's default) must not pick a setuptools that cannot read the expression
    requires = tomllib.loads((root / "pyproject.toml").read_text())["build-system"]["requires"]
    setuptools = next(r for r in map(Requirement, requires) if r.name == "setuptools")
    assert not setuptools.specifier.contains("76.9") and setuptools.specifier.contains("77.0")
