"""Helpers shared by the tests that run Snakemake: a clean copy of the workflow, a runner,
and the rule names a dry run plans."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "profiles", "envs", "containers", "tests", "pyproject.toml",
                  "README.md")
TINY = "tests/config/tiny.yaml"  # the tiny end-to-end config
PAPER_CATALOGUE = "data/dimauro2018_candels.fits"  # config/paper.yaml's local catalogue


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (without results) to ``dest``, as a user's checkout would be."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.sif"))
        elif src.exists():
            shutil.copy(src, dest / name)
    return dest


# The markers of the tests that may start Snakemake (`make test-fast` leaves them out), and the
# test running now (set by tests/conftest.py; None outside pytest).
STARTS_SNAKEMAKE = ("workflow", "slurm", "containers")
CURRENT_TEST = None


def require_workflow_marker() -> None:
    """Fail the test running now if it starts Snakemake without a STARTS_SNAKEMAKE marker."""
    item = CURRENT_TEST
    if item is not None and not any(item.get_closest_marker(m) for m in STARTS_SNAKEMAKE):
        raise AssertionError(f"{item.nodeid} starts Snakemake: mark it @pytest.mark.workflow")


def run_snakemake(args, cwd, check=True, env=None, timeout=None):
    """Run Snakemake in ``cwd``; on failure, raise with the tail of its output."""
    require_workflow_marker()
    base = {k: v for k, v in os.environ.items() if not k.startswith("BLENDPHOT_MLFLOW")}
    proc = subprocess.run(SNAKEMAKE + list(args), cwd=cwd, capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed:\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-5000:]}")
    return proc


# Rules that run once per model or figure: a planned job of theirs is named "<rule>:<wildcard>",
# e.g. "train_model:unet", "plot_figure:figure5".
PER_ITEM_RULES = {"train_model": "model", "predict_model": "model", "plot_figure": "fig"}


def planned_rules(dry_run_stdout: str) -> set[str]:
    """The jobs a dry run plans (:func:`planned_jobs`): rule names, and "<rule>:<item>" for the
    rules of :data:`PER_ITEM_RULES`."""
    return {f"{job['rule']}:{job['wildcards'][PER_ITEM_RULES[job['rule']]]}" if job["rule"] in PER_ITEM_RULES
            else job["rule"] for job in planned_jobs(dry_run_stdout)}


def planned_jobs(dry_run_stdout: str) -> list[dict]:
    """Every job of a dry run's plan as Snakemake resolved it: its rule, wildcards, threads (1
    where it prints none) and resources (strings, as printed)."""
    jobs, job = [], None
    for line in dry_run_stdout.splitlines():
        words = line.split()
        if line.startswith(("rule ", "localrule ")) and len(words) == 2 and words[1].endswith(":"):
            job = {"rule": words[1][:-1], "wildcards": {}, "threads": 1, "resources": {}}
            jobs.append(job)
        elif job is not None and line.startswith("    ") and ":" in line:
            key, value = (part.strip() for part in line.split(":", 1))
            if key == "threads":
                job["threads"] = int(value)
            elif key in ("wildcards", "resources"):
                job[key] = dict(part.strip().split("=", 1) for part in value.split(", ") if "=" in part)
        elif not line.startswith("    "):
            job = None
    return jobs


def copy_run(src: Path, dest: Path) -> Path:
    """A copy of a workflow folder with its results and Snakemake's records, file times kept:
    what is up to date in ``src`` is up to date in the copy."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


def stage_runs(tracking_uri: str, experiment: str):
    """(parent runs, stage runs) of an experiment, read back from MLflow."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parents = [r for r in runs if r.data.tags.get("blendphot.kind") == "workflow"]
    children = [r for r in runs if r.data.tags.get("blendphot.kind") == "stage"]
    return client, parents, children


def missing_system_needs(commands, *, root: bool = True) -> str:
    """Why a system test cannot run here ("" when it can): not root, or commands not found."""
    if root and os.geteuid() != 0:
        return "needs root"
    missing = [c for c in commands if not (shutil.which(c) or Path(f"/usr/sbin/{c}").exists())]
    return f"missing {', '.join(missing)}" if missing else ""


def skip_unless_possible(why: str, what: str, require_env: str) -> None:
    """Skip when ``why`` is set, or fail when ``require_env`` is set (as CI does)."""
    import pytest

    if why:
        if os.environ.get(require_env):
            pytest.fail(f"{what} {why} ({require_env} is set)")
        pytest.skip(f"{what} {why}")

