"""MLflow tracking: stage runs from many processes at once, against sqlite and a tracking server,
and a run closed as KILLED when its job is cancelled."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest
from mlflow.tracking import MlflowClient

from blendphot import tracking

from .workflow_helpers import stage_runs

STAGE = textwrap.dedent("""
    import os, sys, time
    from blendphot.tracking import StageRun
    uri, name, artifact = sys.argv[1], sys.argv[2], sys.argv[3]
    with StageRun(uri, "parallel", name, params={"job": {"name": name}}) as run:
        for step in range(5):
            run.log_metrics({"loss": 1.0 / (step + 1), "nested": {"value": step}}, step=step)
        run.set_tags({"index": name})
        run.log_artifact(artifact)
        if len(sys.argv) > 4:
            print("ready", flush=True)
            time.sleep(60)
""")


def run_parallel_stages(uri: str, tmp_path, n: int) -> str:
    """One parent run, then n stage processes at once under it; return the parent's id."""
    parent = tracking.start_parent(uri, "parallel", config={"seed": 1, "blend": {"n": n}})
    artifact = tmp_path / "artifact.txt"
    artifact.write_text("blend catalogue\n")
    env = {**os.environ, tracking.PARENT_ENV: parent}

    def one(i):
        return subprocess.run([sys.executable, "-c", STAGE, uri, f"stage{i}", str(artifact)], env=env,
                              capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(n) as pool:
        procs = list(pool.map(one, range(n)))
    for proc in procs:
        assert proc.returncode == 0, proc.stderr[-2000:]
    tracking.end_parent(uri, parent)
    return parent


def check_runs(uri: str, parent: str, n: int):
    client, parents, children = stage_runs(uri, "parallel")
    mine = [r for r in children if r.data.tags.get("mlflow.parentRunId") == parent]
    assert any(p.info.run_id == parent and p.info.status == "FINISHED" for p in parents)
    assert sorted(r.data.tags["blendphot.stage"] for r in mine) == sorted(f"stage{i}" for i in range(n))
    for run in mine:
        assert run.info.status == "FINISHED"
        assert run.data.params["job.name"] == run.data.tags["blendphot.stage"]
        assert len(client.get_metric_history(run.info.run_id, "loss")) == 5
        assert run.data.metrics["nested.value"] == 4
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["artifact.txt"]


@pytest.mark.slow
def test_parallel_jobs_against_a_tracking_server(mlflow_server, tmp_path):
    parent = run_parallel_stages(mlflow_server, tmp_path, n=12)
    check_runs(mlflow_server, parent, n=12)


@pytest.mark.slow
def test_parallel_jobs_against_sqlite(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = run_parallel_stages(uri, tmp_path, n=6)
    check_runs(uri, parent, n=6)


def test_a_cancelled_job_leaves_a_killed_run_tagged_with_its_slurm_job(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = tracking.start_parent(uri, "parallel", config={})
    artifact = tmp_path / "artifact.txt"
    artifact.write_text("x\n")
    env = {**os.environ, tracking.PARENT_ENV: parent, "SLURM_JOB_ID": "4242", "SLURM_CLUSTER_NAME": "site"}
    proc = subprocess.Popen([sys.executable, "-c", STAGE, uri, "victim", str(artifact), "wait"], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)  # what scancel and a preemption send first
    proc.wait(timeout=60)
    assert proc.returncode != 0
    _, _, children = stage_runs(uri, "parallel")
    (run,) = children
    assert run.info.status == "KILLED"
    assert run.data.tags["slurm.job_id"] == "4242" and run.data.tags["slurm.cluster"] == "site"
    assert run.data.tags["blendphot.host"] == socket.gethostname()


def test_runs_of_jobs_killed_outright_are_closed(tmp_path):
    """SIGKILL leaves a run RUNNING; the job's next attempt (a requeue) or the end of the
    workflow closes it as KILLED. Runs of other jobs are left alone."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = tracking.start_parent(uri, "parallel", config={})
    os.environ[tracking.PARENT_ENV] = parent
    try:
        wildcards = {"blendphot.wildcards": "{'split': 'train'}"}
        first = tracking.StageRun(uri, "parallel", "make_blends", tags=wildcards)  # never closed
        other = tracking.StageRun(uri, "parallel", "make_blends", tags={"blendphot.wildcards": "{'split': 'val'}"})
        with tracking.StageRun(uri, "parallel", "make_blends", tags=wildcards) as second:
            pass
        client = MlflowClient(uri)
        assert client.get_run(first.run_id).info.status == "KILLED"
        assert client.get_run(first.run_id).data.tags["blendphot.superseded_by"] == second.run_id
        assert client.get_run(second.run_id).info.status == "FINISHED"
        assert client.get_run(other.run_id).info.status == "RUNNING"
        tracking.end_parent(uri, parent, "FAILED")
        assert client.get_run(other.run_id).info.status == "KILLED"
        assert client.get_run(parent).info.status == "FAILED"
    finally:
        del os.environ[tracking.PARENT_ENV]


def test_the_next_invocation_closes_what_a_killed_one_left_running(tmp_path, monkeypatch, capsys):
    """SIGKILL of Snakemake and its jobs together (or a failure before its onerror) leaves the
    invocation's parent and child runs RUNNING: the next invocation in the same directory
    closes them as KILLED when it starts. Another directory's live runs are left alone."""
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)  # and absent again afterwards
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = {"tracking_uri": uri, "experiment": "killed"}
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    for d in (here, elsewhere):
        d.mkdir()
    runs = {}
    for name, d in (("killed", here), ("live", elsewhere)):
        monkeypatch.chdir(d)
        tracking.start_workflow(cfg, config={})
        runs[name] = os.environ[tracking.PARENT_ENV]
        runs[f"{name}_child"] = tracking.StageRun(uri, "killed", "train_model").run_id  # never closed
    monkeypatch.chdir(here)
    tracking.start_workflow(cfg, config={})
    assert "closed 1 MLflow workflow run(s)" in capsys.readouterr().err
    client = MlflowClient(uri)
    status = {k: client.get_run(v).info.status for k, v in runs.items()}
    assert status == {"killed": "KILLED", "killed_child": "KILLED", "live": "RUNNING", "live_child": "RUNNING"}
    new = os.environ[tracking.PARENT_ENV]
    assert client.get_run(runs["killed"]).data.tags["blendphot.superseded_by"] == new
    assert client.get_run(new).info.status == "RUNNING"  # its own run is not touched
    assert client.get_run(new).data.tags[tracking.WORKDIR_TAG] == tracking.workdir_id(here)


def test_a_store_that_cannot_be_written_is_one_message_naming_the_key(tmp_path, monkeypatch):
    import contextlib

    import pytest

    from blendphot.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    store = tmp_path / "mlflow"
    uri = f"sqlite:///{store / 'mlflow.db'}"
    tracking.start_parent(uri, "ro", config={})  # a store with runs in it...

    @contextlib.contextmanager
    def read_only(path):  # ... that cannot be written (root ignores file modes: a read-only mount)
        if os.geteuid() == 0:
            if subprocess.run(["mount", "--bind", "-o", "ro", str(path), str(path)]).returncode != 0:
                pytest.skip("cannot make a read-only bind mount here")
            try:
                yield
            finally:
                subprocess.run(["umount", "-l", str(path)], check=False)
        else:
            for f in path.iterdir():
                f.chmod(0o444)
            path.chmod(0o555)
            try:
                yield
            finally:
                path.chmod(0o755)

    with read_only(store), pytest.raises(ConfigError) as err:
        tracking.start_workflow({"tracking_uri": uri, "experiment": "ro"}, config={})
    message = str(err.value)
    assert message.startswith(f"config key 'mlflow.tracking_uri': cannot record runs in {uri} (")
    assert "set mlflow.enabled: false" in message and len(message.splitlines()) == 1
    assert tracking.PARENT_ENV not in os.environ


def test_a_server_that_does_not_answer_is_named_at_once(tmp_path, monkeypatch):
    import pytest

    from blendphot.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConfigError, match=rf"'mlflow.tracking_uri': no MLflow server answers at http://127.0.0.1:{port}"):
        tracking.start_workflow({"tracking_uri": f"http://127.0.0.1:{port}", "experiment": "x"}, config={})


def test_tracking_switched_off_tracks_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    cfg = {"enabled": False, "tracking_uri": "sqlite:///x.db", "experiment": "off"}
    tracking.start_workflow(cfg, config={"seed": 1})
    assert tracking.PARENT_ENV not in os.environ
    with tracking.open_run(cfg, "stage", {"a": 1}) as run:
        assert isinstance(run, tracking.NoTracking)
        run.log_metrics({"x": 1.0})
        run.set_tags({"t": 1})
        run.log_artifact(tmp_path / "nothing")
    tracking.end_workflow(cfg, "FINISHED")
    assert not any(tmp_path.iterdir())  # no database, no artifact folder


def test_a_tracking_failure_never_hides_the_jobs_own_error(tmp_path, capsys):
    import pytest

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = tracking.StageRun(uri, "broken", "stage")

    def unreachable(*args, **kwargs):
        raise ConnectionError("tracking server gone")

    run.client.set_terminated = unreachable
    with pytest.raises(ValueError, match="the job's own error"), run:
        raise ValueError("the job's own error")
    assert "could not close the MLflow run (ConnectionError: tracking server gone)" in capsys.readouterr().err
    # a job that succeeded but cannot close its run does fail: its tracking is incomplete
    run = tracking.StageRun(uri, "broken", "stage")
    run.client.set_terminated = unreachable
    with pytest.raises(ConnectionError), run:
        pass
