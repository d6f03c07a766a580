"""The workflow on a real SLURM cluster: tests/cluster/slurm-cluster.sh brings up slurmctld,
slurmd, slurmdbd (MariaDB) and munge on this machine, with one node that has four `gpu` gres.

The tiny test config runs end to end through `snakemake --profile` with the project's two
profiles (profiles/slurm as the global profile, profiles/default loaded on top), and SLURM's own
accounting must show that training and prediction jobs got a GPU and the others did not, and
that the profile's job groups put the short CPU stages into shared jobs. Then a
training job is requeued (preemption) and another one cancelled mid-training; both must resume
from their last checkpoint.

Needs root and Debian's slurmctld slurmd slurm-client slurmdbd munge mariadb-server; skipped
without them unless BLENDPHOT_REQUIRE_SLURM=1 (set by .ci/run), which makes it fail instead.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .workflow_helpers import (
    ROOT,
    SNAKEMAKE,
    copy_workflow,
    missing_system_needs,
    run_snakemake,
    skip_unless_possible,
    stage_runs,
)

# runs whole on one pytest-xdist worker: conftest.ONE_WORKER_MODULES
pytestmark = pytest.mark.slurm

CLUSTER_SCRIPT = ROOT / "tests/cluster/slurm-cluster.sh"
NEEDED = ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd", "sbatch", "sacct")


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    """Environment of a client of the local cluster; the daemons are stopped afterwards."""
    skip_unless_possible(missing_system_needs(NEEDED), "SLURM cluster test", "BLENDPHOT_REQUIRE_SLURM")
    state = os.environ.get("BLENDPHOT_SLURM_DIR", "/tmp/blendphot-slurm")
    # The cluster's GPUs are gres entries without a device: its GPU jobs train on the CPU, by
    # choice (a real GPU job that gets no usable GPU stops; tests/test_train.py checks that).
    env = {**os.environ, "BLENDPHOT_SLURM_DIR": state, "BLENDPHOT_DEVICE": "cpu"}
    subprocess.run(["bash", str(CLUSTER_SCRIPT), "up"], check=True, env=env, timeout=300)
    env["SLURM_CONF"] = f"{state}/etc/slurm.conf"
    yield env
    subprocess.run(["bash", str(CLUSTER_SCRIPT), "down"], check=False, env=env, timeout=120)


@pytest.fixture(scope="module")
def cluster(slurm_env, tmp_path_factory):
    """A workflow copy and a global profile for the local cluster, derived from profiles/slurm."""
    shipped = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert shipped["executor"] == "slurm" and shipped["software-deployment-method"] == "apptainer"
    assert shipped["apptainer-args"] == "--nv" and shipped["slurm-requeue"] is True
    # No Apptainer on this machine (the container test covers that code path); and a cluster of
    # one idle node answers faster than a real one, so poll more often.
    profile = {k: v for k, v in shipped.items() if k not in ("software-deployment-method", "apptainer-args")}
    profile.update({"slurm-init-seconds-before-status-checks": 2, "seconds-between-status-checks": 2,
                    "latency-wait": 5})
    root = tmp_path_factory.mktemp("slurm")
    (root / "profile").mkdir()
    (root / "profile/config.yaml").write_text(yaml.safe_dump(profile))
    workdir = copy_workflow(root / "wf")
    return {"env": slurm_env, "workdir": workdir, "profile": str(root / "profile")}


def sacct(env, since: str) -> pd.DataFrame:
    """This test's jobs from SLURM's accounting database: one row per job (no steps)."""
    fields = ["JobID", "State", "Comment", "AllocTRES"]
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-S", since, "-o", ",".join(fields)],
                         env=env, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    jobs = pd.DataFrame(rows, columns=fields)
    jobs["tres"] = jobs["AllocTRES"].map(lambda s: dict(kv.split("=", 1) for kv in s.split(",") if "=" in kv))
    return jobs


def run_on_slurm(cluster, *args, **kw):
    return run_snakemake([*args, "--profile", cluster["profile"]], cluster["workdir"],
                         env={k: cluster["env"][k] for k in ("SLURM_CONF", "BLENDPHOT_DEVICE")}, **kw)


def test_tiny_workflow_on_slurm(cluster, mlflow_server):
    """As on a real cluster: jobs on the nodes track to one MLflow server (sqlite on a network
    file system is unsafe)."""
    workdir = cluster["workdir"]
    server = workdir / "tests/config/mlflow_server.yaml"
    server.write_text(f"mlflow: {{tracking_uri: '{mlflow_server}', experiment: blendphot-slurm}}\n")
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    t0 = time.perf_counter()
    run_on_slurm(cluster, "--configfile", "tests/config/tiny.yaml", str(server), timeout=1800)
    print(f"tiny workflow on the local SLURM cluster: {time.perf_counter() - t0:.0f} s")
    res = cluster["workdir"] / "results"
    assert (res / "summary.md").exists() and (res / "figures/figure12.png").stat().st_size > 5000

    jobs = sacct(cluster["env"], since).set_index("JobID")
    assert (jobs["State"] == "COMPLETED").all(), jobs[["Comment", "State"]]

    # Every job tracked its MLflow run under the one parent run, from its own node process:
    # 32 stage runs, every rule instance but `all` (a local rule), each tagged with its SLURM job
    _, parents, children = stage_runs(mlflow_server, "blendphot-slurm")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 32 and all(r.info.status == "FINISHED" for r in children)
    assert all(r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id for r in children)
    stages = pd.DataFrame([{"rule": r.data.tags["blendphot.stage"], "wildcards": r.data.tags["blendphot.wildcards"],
                            "job": r.data.tags.get("slurm.job_id")} for r in children])
    assert set(stages["job"]) == set(jobs.index)  # no stage ran outside SLURM, no job ran nothing

    # profiles/slurm's groups: the data stages share one SLURM job, as do evaluate and the
    # figures drawn from its tables; the GPU stages and the baseline each have a job to themselves
    per_job = stages.groupby("job")["rule"].agg(set)
    assert {"make_mock_field", "select_galaxies", "cut_stamps", "remove_neighbours", "build_inspection",
            "split_galaxies", "make_blends"} in list(per_job), per_job
    assert {"evaluate", "plot_figure"} in list(per_job), per_job
    alone = stages["rule"].isin(["train_model", "predict_model", "run_baseline"])
    assert (stages.groupby("job").size()[stages.loc[alone, "job"]] == 1).all(), per_job

    # GPUs: the training and prediction jobs of every model got one, and no other job did
    tres = jobs["tres"]
    gpu_stage = stages["rule"].isin(["train_model", "predict_model"])
    assert sorted(zip(stages.loc[gpu_stage, "rule"], stages.loc[gpu_stage, "wildcards"], strict=True)) == sorted(
        (f"{v}_model", str({"model": m})) for v in ("train", "predict")
        for m in ("blend2flux", "unet", "blend2mask2flux", "blend2image"))
    assert all(tres[j].get("gres/gpu") == "1" for j in stages.loc[gpu_stage, "job"]), "a GPU job got no GPU"
    assert not any("gres/gpu" in tres[j] for j in stages.loc[~gpu_stage, "job"]), "a CPU job got a GPU"
    # CPUs and memory come from profiles/default: 8 CPUs per GPU, 32 GB for training
    train = tres[stages.loc[(stages["rule"] == "train_model") & (stages["wildcards"] == str({"model": "blend2flux"})),
                            "job"].iloc[0]]
    assert train["cpu"] == "8" and train["mem"] == "32000M"
    baseline = tres[stages.loc[stages["rule"] == "run_baseline", "job"].iloc[0]]
    assert baseline["cpu"] == "8" and "gres/gpu" not in baseline


def long_training_config(workdir: Path, epochs: int) -> Path:
    """The tiny config with blend2flux trained longer, so that it can be stopped mid-way."""
    tiny = (workdir / "tests/config/tiny.yaml").read_text()
    entry = "blend2flux: {arch: blend2flux, filters: 4, flux_sigma: true}"
    assert entry in tiny
    path = workdir / f"tests/config/tiny_{epochs}_epochs.yaml"
    # a resumable checkpoint after every epoch (the default is every 300 s), so that the job is
    # still training, with a recent checkpoint, when the test stops it
    assert "train:\n  epochs: 2\n" in tiny
    path.write_text(tiny.replace(entry, f"{entry[:-1]}, epochs: {epochs}, early_stopping_patience: 1000}}")
                    .replace("train:\n  epochs: 2\n", "train:\n  epochs: 2\n  checkpoint_interval_s: 0\n"))
    return path


TRAIN_ONE = "results/train/blend2flux/model.pt"  # the target that trains one model


def start_training(cluster, config: Path):
    """Start training blend2flux on the cluster; return it as soon as its first checkpoint
    exists (the end of its first epoch): the event the tests stop it at, with the other epochs
    still to run."""
    workdir = cluster["workdir"]
    last = workdir / "results/train/blend2flux/state/last.pt"
    last.unlink(missing_ok=True)
    proc = subprocess.Popen([*SNAKEMAKE, TRAIN_ONE, "--profile", cluster["profile"], "--configfile", str(config)],
                            cwd=workdir, env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.monotonic() + 300
    while not last.exists():
        assert proc.poll() is None, f"snakemake ended before a checkpoint:\n{proc.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, "no checkpoint after 300 s"
        time.sleep(0.2)
    out = subprocess.run(["squeue", "-h", "-o", "%i %k"], env=cluster["env"], capture_output=True, text=True)
    job = next(line.split()[0] for line in out.stdout.splitlines() if "rule_train_model_wildcards_blend2flux" in line)
    return proc, job


def check_resumed(cluster, epochs: int):
    workdir = cluster["workdir"]
    log = (workdir / "results/logs/train/blend2flux.log").read_text()
    resumed = [line for line in log.splitlines() if "resumed from" in line]
    assert resumed, "training started again from scratch"
    start = int(resumed[0].split(" at epoch ")[1].split()[0])
    assert 0 < start < epochs
    history = pd.read_csv(workdir / "results/train/blend2flux/history.csv")
    assert list(history["epoch"]) == list(range(epochs))  # every epoch once, in order
    return start


def test_requeued_training_resumes_from_its_checkpoint(cluster):
    """Preemption: SLURM requeues the running job; the same Snakemake run waits and finishes."""
    env, epochs = cluster["env"], 40  # 39 epochs (~4 s idle, more under load) left at the first checkpoint
    config = long_training_config(cluster["workdir"], epochs)
    proc, job = start_training(cluster, config)
    subprocess.run(["scontrol", "requeue", job], env=env, check=True)
    # A requeued job waits before it is eligible again; let it start at once.
    for _ in range(60):
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], env=env, capture_output=True,
                               text=True).stdout.strip()
        if state == "RUNNING":
            break
        subprocess.run(["scontrol", "update", f"jobid={job}", "starttime=now"], env=env, capture_output=True)
        time.sleep(1)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    show = subprocess.run(["scontrol", "show", "job", job], env=env, capture_output=True, text=True).stdout
    assert "Restarts=1" in show
    check_resumed(cluster, epochs)
    # The first attempt's run was closed as KILLED, the second one resumed, both under the job id
    _, _, children = stage_runs(f"sqlite:///{cluster['workdir'] / 'results/mlflow/mlflow.db'}", "blendphot-test")
    runs = {r.info.status: r for r in children if r.data.tags.get("slurm.job_id") == job}
    assert set(runs) == {"KILLED", "FINISHED"}
    assert runs["FINISHED"].data.tags["slurm.cluster"] == "blendphot"
    assert runs["FINISHED"].data.tags["blendphot.resumed"] == "True"


def test_cancelled_training_resumes_on_the_next_run(cluster):
    """A killed job (scancel, time limit, node loss): Snakemake fails it; the rerun resumes."""
    env, epochs = cluster["env"], 41  # 40 epochs left at the first checkpoint; not the requeue test's config
    config = long_training_config(cluster["workdir"], epochs)
    proc, job = start_training(cluster, config)
    subprocess.run(["scancel", job], env=env, check=True)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "train_model" in out
    run_on_slurm(cluster, TRAIN_ONE, "--configfile", str(config), timeout=600)
    check_resumed(cluster, epochs)
