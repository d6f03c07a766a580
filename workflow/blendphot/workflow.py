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
from blendphot.tracking import StageRun, Terminated

__all__ = ["stage", "params_dict", "write_clean_outputs", "runtime_device", "DEVICE_ENV"]

# Runtime choice of the torch device for training and prediction: auto (CUDA when present),
# cpu, cuda, cuda:1... Not a science setting, so it lives in the environment, not config/.
DEVICE_ENV = "BLENDPHOT_DEVICE"


def runtime_device() -> str:
    import os

    return os.environ.get(DEVICE_ENV, "auto")


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
            with StageRun(mlflow_cfg["tracking_uri"], mlflow_cfg["experiment"], name, params_dict(smk),
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


def write_clean_outputs(out, *, images, originals, masks, table, dropped, qa) -> None:
    """Write the clean stage's six outputs (shared by remove_neighbours and import_stamps)."""
    from blendphot import io

    io.save_array(out.images, images)
    io.save_array(out.originals, originals)
    io.save_array(out.masks, masks)
    io.write_csv(out.catalog, table)
    io.write_csv(out.dropped, dropped)
    io.write_json(out.qa, qa)
