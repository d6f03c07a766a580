"""The torch device of training and prediction: chosen once, checked, described, configured.

A job that asked for a GPU and did not get one stops with the cause (a CPU-only torch build,
no device visible, a driver too old for this build) instead of training on the CPU for hours.
A job asks for one with ``BLENDPHOT_DEVICE=cuda`` (or ``cuda:N``), or by running under SLURM
with the ``gpu`` resource of the workflow profile. ``auto`` elsewhere uses the first GPU when
there is one and the CPU otherwise (a workstation without a GPU runs the demo config).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from blendphot.errors import ConfigError

__all__ = ["check_device", "cpus_available", "cuda_unavailable_reason", "device_facts", "requested_device",
           "resolve_device", "set_determinism", "set_torch_threads"]


def cuda_unavailable_reason() -> str | None:
    """Why CUDA cannot be used here, or None when it can."""
    if torch.version.cuda is None:
        return f"this torch build ({torch.__version__}) has no CUDA support (a CPU-only build)"
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return "no GPU is visible (CUDA_VISIBLE_DEVICES is empty: none was allocated to this job)"
    if not torch.cuda.is_available():
        return (f"CUDA {torch.version.cuda} is not usable: no GPU device is visible, or the NVIDIA driver is too "
                "old for this torch build (see nvidia-smi)")
    return None


def resolve_device(name: str | torch.device = "auto", *, gpu_requested: bool = False,
                   what: str = "this job", asked_by: str = "BLENDPHOT_DEVICE") -> torch.device:
    """The device for ``name`` (auto, cpu, cuda, cuda:N; a device already resolved is returned
    as it is); an error naming the cause, and where it was asked for (``asked_by``: the
    environment variable or a command-line option), when a GPU was asked for (``cuda*``, or
    ``gpu_requested`` with ``auto``) and none is usable."""
    if isinstance(name, torch.device):
        return name
    wants_gpu = name.startswith("cuda") or (name == "auto" and gpu_requested)
    if name == "cpu" or (name == "auto" and not gpu_requested and not torch.cuda.is_available()):
        return torch.device("cpu")
    why = cuda_unavailable_reason()
    if why is not None:
        if wants_gpu:
            asked = _asked(asked_by, name) if name != "auto" else "a GPU (the job's gpu resource)"
            cpu = f"pass {asked_by} cpu" if asked_by.startswith("-") else f"set {asked_by}=cpu"
            raise ConfigError(f"{what} asked for {asked}, but {why}. Run it where a GPU is allocated (for a "
                              f"cluster, profiles/default's gpu resource and partition), or {cpu}.")
        return torch.device("cpu")
    device = torch.device("cuda" if name == "auto" else name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"{what}: {_asked(asked_by, name)}, but only {torch.cuda.device_count()} GPU(s) are "
                          "visible")
    return device


def _asked(asked_by: str, name: str) -> str:
    return f"{asked_by} {name}" if asked_by.startswith("-") else f"{asked_by}={name}"


def requested_device(option: str | None, option_name: str = "--device") -> tuple[str, str]:
    """(device name, where it was asked for) for a command: its option when given, else
    ``BLENDPHOT_DEVICE``, else auto. One rule for both: an explicit device that is not there
    is an error naming where it was asked for."""
    if option:
        return option, option_name
    return os.environ.get("BLENDPHOT_DEVICE") or "auto", "BLENDPHOT_DEVICE"


def check_device(name: str, flops: float, *, what: str) -> None:
    """Refuse to start a training of ``flops`` that is too long for a CPU when ``auto`` finds
    no GPU (a GPU job that lands on a CPU node, a CPU-only torch build, an old driver).

    Raises ConfigError naming ``what``; ``name == "cpu"`` (BLENDPHOT_DEVICE=cpu) is an explicit
    choice and passes.
    """
    from blendphot.config import CPU_FLOPS, CPU_TRAINING_LIMIT_FLOP

    why = None if name != "auto" or flops <= CPU_TRAINING_LIMIT_FLOP else cuda_unavailable_reason()
    if why is None:
        return
    raise ConfigError(f"{what}: training needs ~{flops:.1e} FLOP (~{flops / CPU_FLOPS / 3600:.0f} h on a CPU), but "
                      f"{why}. Run it on a GPU, train a smaller model, or set BLENDPHOT_DEVICE=cpu to train on "
                      "the CPU anyway.")


def device_facts(device: torch.device) -> dict:
    """What the run ran on: logged and tagged in MLflow."""
    facts = {"device": str(device), "torch": torch.__version__, "cuda": torch.version.cuda or "none"}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts |= {"gpu": props.name, "gpu_memory_gb": round(props.total_memory / 1e9, 1),
                  "compute_capability": f"{props.major}.{props.minor}",
                  "cudnn": str(torch.backends.cudnn.version())}
    return facts


def set_determinism(device: torch.device, deterministic: bool) -> None:
    """``deterministic``: bit-exact results and resume on a GPU (slower kernels); otherwise cuDNN
    picks the fastest convolution algorithms (``cudnn.benchmark``)."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = device.type == "cuda" and not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=False)

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cpus_available() -> int:
    """CPUs this process may run on: its CPU affinity (SLURM's task plugins, taskset), lowered
    to its cgroup's CPU quota (containers, SLURM's cgroup plugin) where that is smaller."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:  # cgroup v2: "max 100000" (no quota) or "<quota> <period>"
        quota, period = CGROUP_CPU_MAX.read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def set_torch_threads(asked: int) -> int:
    """Give torch the job's threads, but never more than the CPUs it can run on: a job that asks
    for 8 threads on a 2-CPU host (a profile written for GPU nodes, a shared node without CPU
    binding) would otherwise oversubscribe its CPUs and train slower than with 2."""
    threads = max(1, min(int(asked), cpus_available()))
    torch.set_num_threads(threads)
    return threads
