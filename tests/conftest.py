import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest

from blendphot.config import validate_config

from . import workflow_helpers
from .workflow_helpers import PAPER_CATALOGUE, STARTS_SNAKEMAKE, TINY, copy_workflow, run_snakemake

# ---------------------------------------------------------------------------------------------
# Markers: `make test-fast` deselects the tests that start Snakemake (workflow), train or run
# long (slow), and the system tests (slurm, containers, browser). A test that starts Snakemake
# without one of the markers of STARTS_SNAKEMAKE fails (workflow_helpers.run_snakemake).


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    workflow_helpers.CURRENT_TEST = item  # set before its fixtures are: a fixture's run counts too


# Fixtures that start Snakemake: every test that uses one must carry a STARTS_SNAKEMAKE marker,
# even when another test set the fixture up first.
SNAKEMAKE_FIXTURES = {"workdir", "tiny_run", "stamps_workdir"}


def pytest_collection_modifyitems(config, items):
    unmarked = [item.nodeid for item in items if SNAKEMAKE_FIXTURES & set(getattr(item, "fixturenames", ()))
                and not any(item.get_closest_marker(m) for m in STARTS_SNAKEMAKE)]
    if unmarked:
        raise pytest.UsageError("these tests start Snakemake through a fixture but are not marked workflow: "
                                + ", ".join(unmarked))


# ---------------------------------------------------------------------------------------------
# pytest-xdist: the tests of these modules share one system resource, so each module runs whole
# on one worker. (xdist's own `--dist loadgroup` marks group nothing under pytest 9.2: xdist 3.8
# renames `item._nodeid`, which pytest 9.2 no longer reads, so a group's tests went to both
# workers and two local SLURM clusters cancelled each other's jobs.)
ONE_WORKER_MODULES = {
    "tests/test_slurm.py": "one local SLURM cluster, in one state folder",
    "tests/test_containers.py": "podman images shared by name",
}


def one_worker_scope(nodeid: str) -> str:
    """The unit of work of a test under `make test`: its module for ONE_WORKER_MODULES, else itself."""
    module = nodeid.split("::", 1)[0]
    return module if module in ONE_WORKER_MODULES else nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class OneWorkerModules(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return one_worker_scope(nodeid)

    return OneWorkerModules(config, log)


# ---------------------------------------------------------------------------------------------
# Unit-level fixtures


@pytest.fixture
def one_torch_thread():
    """torch on one CPU thread for the test (bitwise-reproducible kernels), as before after it."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def default_config():
    import yaml

    with open("config/config.yaml") as fh:
        return validate_config(yaml.safe_load(fh))


def gaussian(size, x0, y0, sigma, flux):
    y, x = np.mgrid[0:size, 0:size]
    return flux * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)


@pytest.fixture
def two_galaxy_stamp():
    """A 128x128 stamp: a central Gaussian, one bright neighbour, white noise (sigma 0.01)."""
    rng = np.random.default_rng(3)
    size = 128
    truth = gaussian(size, 64, 64, 4.0, 40.0)
    neighbour = gaussian(size, 100, 30, 3.0, 25.0)
    noise = rng.normal(0, 0.01, (size, size))
    image = (truth + neighbour + noise).astype(np.float32)
    weight = np.full((size, size), 1 / 0.01**2, np.float32)
    return image, weight, truth, neighbour


@pytest.fixture
def pool():
    """A small pool of isolated Gaussian galaxies with masks and a catalogue."""
    rng = np.random.default_rng(5)
    n, size = 40, 64
    images = np.stack([gaussian(size, 32, 32, 2 + rng.random() * 2, 10.0) for _ in range(n)]).astype(np.float32)
    masks = (images > 0.05).astype(np.uint8)
    cat = pd.DataFrame({
        "gid": [f"F-{i}" for i in range(n)],
        "cls": rng.choice(["bulge", "disk", "bulge_disk", "irregular"], n),
        "mag_auto": rng.uniform(20, 23.5, n),
        "flux_auto": rng.uniform(1, 10, n),
        "re_arcsec": rng.uniform(0.1, 0.5, n),
    })
    return images, masks, cat


def make_toy_config(arch="blend2flux", data=None, **kw):
    """A small network of ``arch`` for the toy blends of tests/toy.py (32 x 32), its input and
    flux scales taken from ``data`` (ten toy blends when none is given)."""
    from blendphot.data import noise_sigma
    from blendphot.models import ModelConfig
    from blendphot.train import median_flux

    from .toy import toy_blends

    data = data if data is not None else toy_blends(10)
    return ModelConfig(arch, image_size=32, filters=8, unet_depth=3, unet_filters=4, normalisation="linear",
                       noise_sigma=noise_sigma(data.images, border=4), flux_scale=median_flux(data.fluxes), **kw)


@pytest.fixture(scope="session")
def toy_config():
    """:func:`make_toy_config`: ``toy_config("unet", data=train)``."""
    return make_toy_config


def make_resume_setup(blends: str):
    """(model config, training config, training data, validation blends) of the resume tests:
    a blend2mask2flux with a checkpoint every epoch, trained on fixed toy blends
    (``blends="fixed"``, 6 epochs) or on blends drawn afresh every epoch (``"fresh"``, 4 epochs
    of 8 batches). The killed-and-resumed processes of the tests build the same with it."""
    from blendphot.train import TrainConfig

    from .toy import toy_blends, toy_fresh_blends

    if blends == "fixed":
        train, val = toy_blends(300, seed=5), toy_blends(100, seed=6)
        tcfg = TrainConfig(epochs=6, learning_rate=1e-3, seed=7, checkpoint_interval_s=0)  # a checkpoint every epoch
        return make_toy_config("blend2mask2flux", data=train), tcfg, train, val
    if blends == "fresh":
        sampler, val = toy_fresh_blends(n=128, seed=21), toy_blends(48, seed=6)
        tcfg = TrainConfig(epochs=4, batch_size=16, learning_rate=1e-3, seed=7, checkpoint_interval_s=0,
                           flux_loss="log", mask_weight=1.0)
        return make_toy_config("blend2mask2flux", data=sampler.epoch(0)), tcfg, sampler, val
    raise ValueError(f"blends must be 'fixed' or 'fresh', not {blends!r}")


@pytest.fixture(scope="session")
def resume_setup():
    """:func:`make_resume_setup`: ``resume_setup("fixed")`` or ``resume_setup("fresh")``."""
    return make_resume_setup


# ---------------------------------------------------------------------------------------------
# Services


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """`mlflow server` on 127.0.0.1, sqlite behind it, artifacts served through it."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination",
         str(root / "artifacts"), "--workers", "2"],
        cwd=root, stdout=open(root / "server.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield uri
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


# ---------------------------------------------------------------------------------------------
# Workflow copies (the tests that use them start Snakemake: mark them workflow)

@pytest.fixture(scope="session")
def workflow_copy(tmp_path_factory):
    """``workflow_copy(name)``: a fresh copy of the workflow (without results), as a user's
    checkout would be, in a new temporary folder."""
    return lambda name="wf": copy_workflow(tmp_path_factory.mktemp(name))


@pytest.fixture(scope="session")
def workdir(workflow_copy):
    """A copy of the workflow for dry runs, never run for real: with a stand-in for the catalogue
    that config/paper.yaml reads from disk (a person downloads it from a web form)."""
    root = workflow_copy("wf")
    (root / PAPER_CATALOGUE).parent.mkdir()
    (root / PAPER_CATALOGUE).write_bytes(b"")
    return root


@contextlib.contextmanager
def _locked(path):
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def shared_folder(tmp_path_factory, name: str, make):
    """A folder made by ``make(folder)`` once per test session: under pytest-xdist, the first
    worker that asks for it makes it (the others wait for it) and every worker gets the same."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        folder = tmp_path_factory.mktemp(name)
        make(folder)
        return folder
    base = tmp_path_factory.getbasetemp().parent  # the run's folder, shared by its workers
    folder, done = base / name, base / f"{name}.done"
    with _locked(base / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # what a worker that failed to make it left
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole workflow run once on tests/config/tiny.yaml, for every test that only reads
    its outputs (or plans against them with dry runs): its folder, results/ in it. Tests must not
    run Snakemake there for real: they copy it first (workflow_helpers.copy_run). Its folder's
    name has a space and non-ASCII letters, as a user's project path may: every rule, the MLflow
    artifact URIs and the report must cope with them."""

    def make(root):
        copy_workflow(root)
        run_snakemake(["--cores", "2", "--configfile", TINY], root)

    return shared_folder(tmp_path_factory, "tiny run Ångström", make)
