import os
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
