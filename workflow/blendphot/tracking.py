"""MLflow tracking: one parent run per workflow invocation, one child run per job.

The parent run is created once, before any job starts (Snakemake ``onstart``), which also
creates the sqlite database so that concurrent jobs never race to create it. Its id travels
to the jobs in the environment variable ``BLENDPHOT_MLFLOW_PARENT``; each job opens its own
child run with :class:`StageRun`. The client API is used throughout (no global active run),
so any number of processes can log at once.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from blendphot.errors import ConfigError

__all__ = ["PARENT_ENV", "WORKDIR_TAG", "NoTracking", "StageRun", "Terminated", "active_uri", "close_abandoned",
           "end_parent", "end_workflow", "flatten", "open_run", "runtime_tags", "start_parent", "start_workflow",
           "workdir_id"]

PARENT_ENV = "BLENDPHOT_MLFLOW_PARENT"

# Where a job ran, as tags of its run: the batch system's job id ties a run to `sacct`. (Inside
# a Snakemake SLURM job step only these two of the SLURM_* variables survive.)
SLURM_TAGS = {"SLURM_JOB_ID": "slurm.job_id", "SLURM_CLUSTER_NAME": "slurm.cluster"}


class Terminated(BaseException):
    """SIGTERM arrived (scancel, preemption, time limit): the run ends KILLED, not RUNNING."""


def runtime_tags() -> dict:
    # sys.prefix tells a container's environment (/opt/venv) from the host's or a conda env
    tags = {"blendphot.host": socket.gethostname(), "blendphot.python": sys.prefix}
    tags.update({tag: os.environ[var] for var, tag in SLURM_TAGS.items() if os.environ.get(var)})
    return tags


def _client(tracking_uri: str):
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=tracking_uri)


def _experiment_id(client, name: str, tracking_uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifact_location = None
    if tracking_uri.startswith("sqlite:///"):  # keep artifacts beside the database, not in ./mlruns
        db = Path(tracking_uri[len("sqlite:///"):]).resolve()
        artifact_location = (db.parent / "artifacts").as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # created concurrently by another process
        return client.get_experiment_by_name(name).experiment_id


def flatten(mapping: dict, prefix: str = "") -> dict:
    """Nested dict -> {"a.b.c": value} (MLflow params are flat)."""
    out = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def start_parent(tracking_uri: str, experiment: str, *, config: dict, tags: dict | None = None) -> str:
    """Create the experiment if needed and a parent run; returns its id."""
    client = _client(tracking_uri)
    exp_id = _experiment_id(client, experiment, tracking_uri)
    run = client.create_run(exp_id, run_name=f"workflow-{time.strftime('%Y%m%d-%H%M%S')}",
                            tags={"blendphot.kind": "workflow", **(tags or {})})
    _log_params(client, run.info.run_id, flatten(config))
    return run.info.run_id


WORKDIR_TAG = "blendphot.workdir"


def workdir_id(workdir: str | os.PathLike = ".") -> str:
    """This working directory's identity (a random id kept in ``.snakemake/``): the runs of
    invocations here carry it, whichever host or path they were started from."""
    path = Path(workdir) / ".snakemake" / "blendphot-workdir-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        import uuid

        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "x") as fh:
                fh.write(uuid.uuid4().hex)
        except FileExistsError:  # written meanwhile by another process
            pass
        return path.read_text().strip()


def close_abandoned(tracking_uri: str, experiment: str, workdir: str, superseded_by: str | None = None) -> int:
    """Close as KILLED the runs that earlier invocations in ``workdir`` left RUNNING (killed
    outright, or failed before Snakemake's ``onerror``), children included; returns how many
    parents. Safe while Snakemake holds the directory's lock: no other invocation here is alive."""
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return 0
    running = client.search_runs([exp.experiment_id], max_results=1000, filter_string=(
        f"tags.`{WORKDIR_TAG}` = '{workdir}' and tags.`blendphot.kind` = 'workflow' and attributes.status = 'RUNNING'"))
    abandoned = [run.info.run_id for run in running if run.info.run_id != superseded_by]
    for run_id in abandoned:
        _kill_running(client, exp.experiment_id, {"mlflow.parentRunId": run_id})
        if superseded_by:
            client.set_tag(run_id, "blendphot.superseded_by", superseded_by)
        client.set_terminated(run_id, status="KILLED")
    return len(abandoned)


def check_server(tracking_uri: str, *, timeout: float = 10.0) -> None:
    """An http(s) tracking server must answer now: MLflow's own client would retry for minutes."""
    import urllib.error
    import urllib.request

    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        pass  # it answered (a server without /health, or behind a proxy): the runs will tell
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(f"config key 'mlflow.tracking_uri': no MLflow server answers at {tracking_uri} "
                          f"({reason}). Start it, correct the key, or set it to null to track nothing.") from None


def active_uri(mlflow_cfg: dict) -> str | None:
    """Where runs are tracked, or None when tracking is off (``mlflow.enabled: false``)."""
    if not mlflow_cfg.get("enabled", True):
        return None
    return mlflow_cfg.get("tracking_uri")


def start_workflow(mlflow_cfg: dict, *, config: dict | None = None) -> None:
    """The workflow's parent run, its id exported to the jobs; nothing when tracking is
    off (``mlflow.enabled: false``). Runs that earlier invocations in this directory left RUNNING are closed first. A
    store that cannot be written, or a server that does not answer, is a ConfigError naming
    ``mlflow.tracking_uri``."""
    uri = active_uri(mlflow_cfg)
    if uri is None:
        return
    experiment, here = mlflow_cfg["experiment"], workdir_id()
    check_server(uri)
    try:
        os.environ[PARENT_ENV] = start_parent(uri, experiment, config=config or {}, tags={WORKDIR_TAG: here})
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ConfigError(f"config key 'mlflow.tracking_uri': cannot record runs in {uri} ({type(exc).__name__}: "
                          f"{first}). Make it writable, point the key at another store, or set "
                          "mlflow.enabled: false to track nothing.") from None
    try:
        closed = close_abandoned(uri, experiment, here, superseded_by=os.environ[PARENT_ENV])
    except Exception as exc:  # housekeeping: never a reason to stop the workflow
        print(f"blendphot: warning: could not close the runs of interrupted invocations ({type(exc).__name__}: "
              f"{exc})", file=sys.stderr)
        closed = 0
    if closed:
        print(f"blendphot: closed {closed} MLflow workflow run(s) that an interrupted invocation here left "
              "RUNNING (now KILLED)", file=sys.stderr)


def end_workflow(mlflow_cfg: dict, status: str) -> None:
    """End the parent run. A tracking failure here is reported, never raised: it must not turn
    a finished workflow into a failed one, nor hide why a failed one failed."""
    if active_uri(mlflow_cfg) is None or PARENT_ENV not in os.environ:
        return
    try:
        end_parent(active_uri(mlflow_cfg), os.environ[PARENT_ENV], status)
    except Exception as exc:
        _warn_not_closed(exc)


def _warn_not_closed(exc: Exception) -> None:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    for stream in (sys.stderr, sys.__stderr__):  # the job's log may sit on a full disk
        try:
            print(f"blendphot: warning: could not close the MLflow run ({type(exc).__name__}: {first})",
                  file=stream, flush=True)
            return
        except (OSError, ValueError):
            continue


class NoTracking:
    """What a job logs to when tracking is off (``mlflow.enabled: false``): nothing."""

    def log_metrics(self, metrics: dict, step: int = 0) -> None:
        pass

    def set_tags(self, tags: dict) -> None:
        pass

    def log_artifact(self, path, artifact_path: str | None = None) -> None:
        pass

    def log_artifacts(self, directory, artifact_path: str | None = None) -> None:
        pass

    def __enter__(self) -> NoTracking:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        return None


def open_run(mlflow_cfg: dict, name: str, params: dict | None = None, tags: dict | None = None):
    """A job's run: a :class:`StageRun`, or :class:`NoTracking` when tracking is off."""
    if active_uri(mlflow_cfg) is None:
        return NoTracking()
    return StageRun(mlflow_cfg["tracking_uri"], mlflow_cfg["experiment"], name, params, tags=tags)


def end_parent(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    """End the workflow's run. Its jobs are over by now (Snakemake waits for them), so a child
    still RUNNING belongs to a process that was killed outright: it is closed as KILLED."""
    client = _client(tracking_uri)
    _kill_running(client, client.get_run(run_id).info.experiment_id, {"mlflow.parentRunId": run_id})
    client.set_terminated(run_id, status=status)


def _kill_running(client, experiment_id: str, tags: dict, superseded_by: str | None = None) -> None:
    """Close as KILLED the RUNNING runs that carry all of ``tags``."""
    def quoted(value: str) -> str:
        return f'"{value}"' if "'" in value else f"'{value}'"

    query = " and ".join([f"tags.`{k}` = {quoted(v)}" for k, v in tags.items()] + ["attributes.status = 'RUNNING'"])
    for run in client.search_runs([experiment_id], filter_string=query, max_results=1000):
        if run.info.run_id == superseded_by:
            continue
        if superseded_by:
            client.set_tag(run.info.run_id, "blendphot.superseded_by", superseded_by)
        client.set_terminated(run.info.run_id, status="KILLED")


def _log_params(client, run_id: str, params: dict) -> None:
    from mlflow.entities import Param

    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i:i + 100])


class StageRun:
    """A child run for one job: ``with StageRun(uri, exp, "clean", params) as run: ...``.

    The run ends FINISHED, FAILED when the block raises, or KILLED when the process gets SIGTERM
    (in the main thread, the signal raises :class:`Terminated` so that the run is closed). ``run.log_metrics`` accepts a
    flat or nested dict of numbers; ``run.log_artifact`` a file path.
    """

    def __init__(self, tracking_uri: str, experiment: str, name: str, params: dict | None = None,
                 tags: dict | None = None):
        self.client = _client(tracking_uri)
        exp_id = _experiment_id(self.client, experiment, tracking_uri)
        parent = os.environ.get(PARENT_ENV)
        run_tags = {"blendphot.kind": "stage", "blendphot.stage": name, **runtime_tags(), **(tags or {})}
        if parent:
            run_tags["mlflow.parentRunId"] = parent
        self.run_id = self.client.create_run(exp_id, run_name=name, tags=run_tags).info.run_id
        if parent:
            # An earlier attempt of this same job (a requeued SLURM job, a retry) that was killed
            # before it could close its run: one job runs once at a time within a workflow run.
            same_job = {k: run_tags[k] for k in ("mlflow.parentRunId", "blendphot.stage", "blendphot.wildcards")
                        if k in run_tags}
            _kill_running(self.client, exp_id, same_job, superseded_by=self.run_id)
        self._start = time.perf_counter()
        if params:
            _log_params(self.client, self.run_id, flatten(params))

    def log_metrics(self, metrics: dict, step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in flatten(metrics).items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)]
        for i in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[i:i + 500])

    def set_tags(self, tags: dict) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, f"blendphot.{key}", str(value))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, directory: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Every file under ``directory``, as the folder ``artifact_path`` of the run."""
        self.client.log_artifacts(self.run_id, str(directory), artifact_path)

    def __enter__(self) -> StageRun:
        self._previous_handler = None
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGTERM, _raise_terminated)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)
        status = "KILLED" if exc_type is Terminated else "FAILED" if exc_type else "FINISHED"
        try:
            self.log_metrics({"wall_time_s": time.perf_counter() - self._start})
            self.client.set_terminated(self.run_id, status=status)
        except Exception as tracking_error:
            if exc_type is None:
                raise
            _warn_not_closed(tracking_error)  # the job failed already: its own exception is the one that matters


def _raise_terminated(signum, frame):
    raise Terminated(f"signal {signum}")
