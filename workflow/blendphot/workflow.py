"""Glue for the thin scripts under workflow/scripts: logging, errors, tracking.

``with stage(snakemake) as run:`` sends the job's stdout/stderr (progress bars included) to
``snakemake.log[0]``, opens the job's MLflow child run, and turns a
:class:`~blendphot.errors.BlendphotError` into one line on the terminal,
``blendphot: error in rule <rule>: <message>``, with the traceback kept in the log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

from blendphot.errors import BlendphotError
from blendphot.tracking import Terminated, open_run

__all__ = ["DEVICE_ENV", "cpu_training_warning", "gpu_job", "local_gpu_visible", "params_dict", "runtime_device",
           "stage", "use_package_from"]

# Runtime choice of the torch device for training and prediction: auto (CUDA when present),
# cpu, cuda, cuda:1... Not a science setting, so it lives in the environment, not config/.
DEVICE_ENV = "BLENDPHOT_DEVICE"


def runtime_device() -> str:
    return os.environ.get(DEVICE_ENV, "auto")


def use_package_from(package_root: str | os.PathLike) -> None:
    """Put ``package_root`` first on the jobs' Python path (the ``PYTHONPATH`` they inherit),
    so that every job imports blendphot from the workflow's own checkout."""
    root = str(package_root)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, *paths]))


def local_gpu_visible() -> bool:
    """Whether this host has a CUDA GPU device node (checked without importing torch)."""
    return any(Path("/dev", name).exists() for name in ("nvidiactl", "nvidia0"))


def cpu_training_warning(config: dict) -> str | None:
    """The start-up warning of a local run with no GPU whose training is far too long for a CPU
    (:func:`blendphot.config.expensive_on_cpu`); None when there is nothing to warn about."""
    from blendphot.config import CPU_FLOPS, expensive_on_cpu

    expensive = expensive_on_cpu(config)
    if not expensive or local_gpu_visible() or runtime_device() == "cpu":
        return None
    return ("blendphot: no GPU on this machine, and training "
            + ", ".join(f"{n} ({f:.1e} FLOP, ~{f / CPU_FLOPS / 3600:.0f} h on a CPU)" for n, f in expensive.items())
            + " is far too long for a CPU: those training jobs will stop at once. Run them on a GPU"
            + " (a cluster: README.md, 'Running on a SLURM cluster'), train smaller models (see"
            + " config/config.yaml's train section), or set BLENDPHOT_DEVICE=cpu to train on the CPU anyway.")


def gpu_job(resources) -> bool:
    """Whether this job runs under SLURM with the ``gpu`` resource: it must get a GPU (on a
    workstation the profile's gpu=1 only limits how many such jobs run at once)."""
    return bool(os.environ.get("SLURM_JOB_ID")) and int(resources.get("gpu", 0) or 0) > 0


def params_dict(smk) -> dict:
    return {k: v for k, v in smk.params.items()}


def _job_paths(smk) -> list[str]:
    """The job's outputs, and a training job's resumable state folder."""
    state = smk.params.get("state_dir")
    return [str(p) for p in smk.output] + ([str(state)] if state else [])


def _disk_full(smk, exc: BaseException):
    """The DiskFullError of a job whose write failed for want of space, naming the output it was
    writing (not its temporary); None when ``exc`` is not a full disk."""
    from blendphot.io import disk_full, is_disk_full

    if isinstance(exc, BlendphotError):
        return None
    filename = getattr(exc, "filename", None)
    paths = ([Path(str(filename))] if filename else []) + [Path(str(p)) for p in [*smk.output, *smk.log]]
    written = next((p for p in paths if is_disk_full(exc, p)), None)
    if written is None:
        return None
    # a hidden temporary is reported as the output it was to become
    return disk_full(next((Path(str(out)) for out in smk.output if written.name.startswith(f".{Path(out).name}.")),
                          written))


def _tell(stream, text: str) -> None:
    """Write to a job's log; a log on a full disk must not hide the job's own error."""
    try:
        print(text, file=stream, flush=True)
    except (OSError, ValueError):
        pass


@contextlib.contextmanager
def stage(smk, *, name: str | None = None):
    name = name or smk.rule
    from blendphot.io import remove_stale_temporaries

    stale = remove_stale_temporaries(_job_paths(smk))  # what a killed attempt of this job left
    log_path = smk.log[0] if len(smk.log) else None
    log = open(log_path, "w", buffering=1) if log_path else sys.stderr
    terminal = sys.__stderr__
    logging.basicConfig(stream=log, level=logging.INFO, format="%(asctime)s %(name)s %(message)s", force=True)
    mlflow_cfg = smk.config.get("mlflow", {})
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            if stale:
                print(f"removed {len(stale)} temporary file(s) left by an interrupted attempt: "
                      + ", ".join(str(t) for t in stale))
            with open_run(mlflow_cfg, name, params_dict(smk),
                          tags={"blendphot.wildcards": str(dict(smk.wildcards.items()))}) as run:
                yield run
    except Terminated:
        _tell(log, f"blendphot: rule {smk.rule} terminated by SIGTERM (cancelled, preempted or out of time)")
        print(f"blendphot: rule {smk.rule} terminated by SIGTERM", file=terminal)
        raise SystemExit(128 + signal.SIGTERM) from None
    except Exception as exc:
        error = exc if isinstance(exc, BlendphotError) else _disk_full(smk, exc)
        _tell(log, "".join(traceback.format_exception(exc)).rstrip())
        if error is None:
            raise
        # bad input or a full disk: the user's to fix, one line on the terminal, the traceback in the log
        if error is not exc:
            _tell(log, f"blendphot: error in rule {smk.rule}: {error}")
        print(f"blendphot: error in rule {smk.rule}: {error}", file=terminal)
        raise SystemExit(1) from None
    finally:
        if log is not sys.stderr:
            with contextlib.suppress(OSError):
                log.close()
