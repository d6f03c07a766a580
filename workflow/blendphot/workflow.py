"""Glue for the thin scripts under workflow/scripts: logging, errors, tracking.

``with stage(snakemake) as run:`` sends the job's stdout/stderr (progress bars included) to
``snakemake.log[0]``, opens the job's MLflow child run, and turns a
:class:`~blendphot.errors.BlendphotError` into one line on the terminal,
``blendphot: error in rule <rule>: <message>``, with the traceback kept in the log.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import traceback

from blendphot.errors import BlendphotError
from pathlib import Path

from blendphot.tracking import Terminated, open_run

__all__ = ["DEVICE_ENV", "local_gpu_visible", "params_dict", "runtime_device", "stage"]

# Runtime choice of the torch device for training and prediction: auto (CUDA when present),
# cpu, cuda, cuda:1... Not a science setting, so it lives in the environment, not config/.
DEVICE_ENV = "BLENDPHOT_DEVICE"


def runtime_device() -> str:
    import os

    return os.environ.get(DEVICE_ENV, "auto")


def local_gpu_visible() -> bool:
    """Whether this host has a CUDA GPU device node (checked without importing torch)."""
    return any(Path("/dev", name).exists() for name in ("nvidiactl", "nvidia0"))


def params_dict(smk) -> dict:
    return {k: v for k, v in smk.params.items()}


@contextlib.contextmanager
def stage(smk, *, name: str | None = None):
    name = name or smk.rule
    log_path = smk.log[0] if len(smk.log) else None
    log = open(log_path, "w", buffering=1) if log_path else sys.stderr
    terminal = sys.__stderr__
    logging.basicConfig(stream=log, level=logging.INFO, format="%(asctime)s %(name)s %(message)s", force=True)
    mlflow_cfg = smk.config.get("mlflow", {})
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            with open_run(mlflow_cfg, name, params_dict(smk),
                          tags={"blendphot.wildcards": str(dict(smk.wildcards.items()))}) as run:
                yield run
    except BlendphotError as exc:
        traceback.print_exc(file=log)
        print(f"blendphot: error in rule {smk.rule}: {exc}", file=terminal)
        raise SystemExit(1) from None
    except Terminated:
        print(f"blendphot: rule {smk.rule} terminated by SIGTERM (cancelled, preempted or out of time)", file=log)
        print(f"blendphot: rule {smk.rule} terminated by SIGTERM", file=terminal)
        raise SystemExit(128 + signal.SIGTERM) from None
    except Exception:
        traceback.print_exc(file=log)
        raise
    finally:
        if log is not sys.stderr:
            log.close()
