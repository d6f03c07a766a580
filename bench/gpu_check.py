"""One prepared check for a short GPU slot: what the training code does on the card, in minutes.

    bash bench/gpu_check.sh [OUT.json]                 # on a GPU machine (about 3-5 minutes)
    python bench/gpu_check.py --toy --out check.json   # the same phases on the CPU at toy size

Imports only torch, numpy and pandas (with this checkout's package): a bare GPU machine has
them. It makes its own synthetic 128 x 128 blends (two Gaussian galaxies, Poisson-free noise)
on the device, and runs, each phase under its own time limit, writing the JSON after every
phase so that a slot that ends early still leaves what was measured:

1. facts: torch, CUDA, cuDNN, the card;
2. throughput of the paper's blend2flux (f = 256) at batch 32 and 128, bf16 autocast and
   channels-last on and off: CUDA-event timing of >= 200 steps after >= 10 warm-up steps;
3. host-device syncs in 20 steps of the real training loop (``torch.cuda.set_sync_debug_mode``),
   and the loader's pinned staging path (a split too large for the device) against the
   resident one;
4. ``fit()`` for 2 epochs, killed, and resumed to 3 (the resume is checked);
5. one epoch of the U-Net and of blend2mask2flux at the paper's sizes;
6. the paper's schedule extrapolated: 70 epochs over ``--paper-train`` blends (config/paper.yaml:
   18 000), from the measured fit() epoch time;
7. fresh blends (``train.blends: fresh``): one epoch of ``--paper-train`` blends drawn on one
   CPU core from a 1300-galaxy pool, against the measured training step rate (the draw runs in
   a thread beside training, so it must outpace the steps).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_blend import synthetic_pool  # noqa: E402

from blendphot.blend import Blends, FreshBlends  # noqa: E402
from blendphot.data import Batches  # noqa: E402
from blendphot.device import device_facts, set_determinism  # noqa: E402
from blendphot.models import ModelConfig, build_model, count_parameters  # noqa: E402
from blendphot.train import TrainConfig, fit, median_flux, train_step  # noqa: E402


def synthetic_blends(n: int, size: int, device: torch.device, seed: int) -> Blends:
    """Two Gaussian galaxies per blend (the second 4-30 px away), fluxes log-uniform in
    [10, 1000] e-/s, noise 0.01 e-/s; masks where a galaxy exceeds 1 % of its peak."""
    g = torch.Generator(device=device).manual_seed(seed)
    flux = 10 ** (1 + 2 * torch.rand(n, 2, generator=g, device=device))
    sigma = 1.5 + 4 * torch.rand(n, 2, generator=g, device=device)
    angle = 2 * torch.pi * torch.rand(n, generator=g, device=device)
    dist = 4 + 26 * torch.rand(n, generator=g, device=device)
    c = (size - 1) / 2
    cx = torch.stack([torch.full((n,), c, device=device), c + dist * torch.cos(angle)], 1)
    cy = torch.stack([torch.full((n,), c, device=device), c + dist * torch.sin(angle)], 1)
    yy, xx = torch.meshgrid(torch.arange(size, device=device), torch.arange(size, device=device), indexing="ij")
    images = 0.01 * torch.randn(n, size, size, generator=g, device=device)
    masks = torch.zeros(n, 2, size, size, dtype=torch.uint8, device=device)
    for k in range(2):
        r2 = (xx - cx[:, k, None, None]) ** 2 + (yy - cy[:, k, None, None]) ** 2
        profile = torch.exp(-r2 / (2 * sigma[:, k, None, None] ** 2))
        images += flux[:, k, None, None] * profile / (2 * torch.pi * sigma[:, k, None, None] ** 2)
        masks[:, k] = profile > 0.01
    flux = flux.cpu().numpy()
    catalog = pd.DataFrame({"blend_id": np.arange(n), "cen_flux": flux[:, 0], "comp_flux": flux[:, 1]})
    return Blends(images.cpu().numpy().astype(np.float32), masks.cpu().numpy(), catalog, source="synthetic")


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(cfg: ModelConfig, data: Blends, device, *, batch: int, amp: bool, channels_last: bool,
               warmup: int, steps: int) -> float:
    """Training samples/s of forward + backward + Adam over the real batch server."""
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    tcfg = TrainConfig(amp=amp, channels_last=channels_last)
    batches = Batches(data, batch, device, shuffle=True, generator=torch.Generator().manual_seed(0),
                      channels_last=channels_last, with_masks=cfg.arch != "blend2flux")

    def run(n):
        done = 0
        while done < n:
            for x, y, m, c in batches:
                train_step(model, opt, cfg, tcfg, x, y, m, c)
                done += 1
                if done == n:
                    return

    run(warmup)
    _sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run(steps)
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1000
    else:
        t0 = time.perf_counter()
        run(steps)
        seconds = time.perf_counter() - t0
    return batch * steps / seconds


def count_syncs(cfg: ModelConfig, data: Blends, device, *, steps: int = 20) -> dict | None:
    """Synchronising CUDA calls in the first step, and in the ``steps`` steps after it, of the
    training loop's own code (None on a CPU). The first step holds cuDNN's autotuning."""
    if device.type != "cuda":
        return None
    model = build_model(cfg).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    tcfg = TrainConfig()
    batches = iter(Batches(data, 32, device, shuffle=True, generator=torch.Generator().manual_seed(0),
                           channels_last=True))
    total = torch.zeros((), device=device)
    next(batches)  # the epoch's start (its order moves to the device once) is not a step
    def step():
        x, y, m, c = next(batches)
        total.add_(train_step(model, opt, cfg, tcfg, x, y, m, c).float() * x.shape[0])

    counts = {}
    for name, n in (("first_step", 1), (f"next_{steps}_steps", steps)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                for _ in range(n):
                    step()
            finally:
                torch.cuda.set_sync_debug_mode(0)
        counts[name] = sum("synchroniz" in str(w.message) for w in caught)
    return counts


def staged_loader(data: Blends, device, *, batch: int = 128) -> dict | None:
    """The loader's path for a split that does not fit on the device (pinned, double-buffered
    staging), forced here: its batches must equal the resident path's, and its speed."""
    if device.type != "cuda":
        return None
    kw = {"shuffle": True, "channels_last": True, "with_masks": True}
    resident = Batches(data, batch, device, generator=torch.Generator().manual_seed(3), **kw)
    staged = Batches(data, batch, device, generator=torch.Generator().manual_seed(3), max_device_fraction=0.0, **kw)
    assert staged.staged and not resident.staged
    same = all(torch.equal(a, b) for pair in zip(resident, staged, strict=True) for a, b in zip(*pair, strict=True))
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    n = sum(x.shape[0] for x, _, _ in staged)
    torch.cuda.synchronize(device)
    return {"identical_to_resident": same, "samples_per_s": round(n / (time.perf_counter() - t0), 1)}


def fresh_draw(n_pool: int, n_blends: int, size: int, step_rate: float | None) -> dict:
    """Blends/s of one fresh epoch (augmented, the candels_blender rule) from a synthetic pool of
    ``n_pool`` noisy stamps, best of two epochs, and its ratio to ``step_rate`` (samples/s)."""
    images, masks, pool = synthetic_pool(n_pool, size)
    rule = {"rule": "candels_blender", "max_mag_diff": 2.0, "min_shift_re": 0.5, "max_shift": size // 2}
    sampler = FreshBlends(images, masks, pool, n_blends, settings=rule, pixel_scale=0.06, seed=0)
    seconds = []
    for epoch in range(2):
        t0 = time.perf_counter()
        sampler.epoch(epoch)
        seconds.append(time.perf_counter() - t0)
    rate = n_blends / min(seconds)
    ratio = round(rate / step_rate, 2) if step_rate else None
    return {"pool": n_pool, "blends": n_blends, "blends_per_s": round(rate, 1), "training_samples_per_s": step_rate,
            "draw_over_step_rate": ratio}


class _Killed(Exception):
    pass


def fit_and_resume(cfg: ModelConfig, train: Blends, val: Blends, device, state: Path) -> dict:
    """fit() for 3 epochs, killed after the second; the rerun resumes and runs the third."""
    tcfg = TrainConfig(epochs=3, batch_size=32, learning_rate=1e-4, seed=1, checkpoint_interval_s=0)

    def kill(record, epoch):
        if epoch == 1:
            raise _Killed

    t0 = time.perf_counter()
    try:
        fit(cfg, tcfg, train, val, state, device=device, on_epoch=kill)
    except _Killed:
        pass
    first = time.perf_counter() - t0
    summary = fit(cfg, tcfg, train, val, state, device=device)
    history = summary["history"]
    return {"resumed": summary["resumed"], "epochs": [h["epoch"] for h in history],
            "resume_ok": summary["resumed"] and [h["epoch"] for h in history] == [0, 1, 2],
            "first_two_epochs_wall_s": first, "epoch_time_s": [h["epoch_time_s"] for h in history],
            "samples_per_s": [h["samples_per_s"] for h in history],
            "val_mape": [h.get("val_flux_mape") for h in history]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--toy", action="store_true", help="CPU-sized: 32 px blends, small networks, few steps")
    parser.add_argument("--budget-s", type=float, default=330.0, help="stop starting phases after this")
    parser.add_argument("--paper-train", type=int, default=18000, help="training blends of config/paper.yaml")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.toy else "cpu")
    set_determinism(device, False)
    t_start = time.monotonic()
    result: dict = {"toy": args.toy, "facts": device_facts(device), "phases": {}}
    out = Path(args.out)

    def save():
        out.write_text(json.dumps(result, indent=2))

    def phase(name, limit_s, fn):
        left = args.budget_s - (time.monotonic() - t_start)
        if left < limit_s:
            result["phases"][name] = {"skipped": f"{left:.0f} s left of the budget, phase needs up to {limit_s} s"}
        else:
            t0 = time.monotonic()
            try:
                result["phases"][name] = {"result": fn(), "wall_s": round(time.monotonic() - t0, 2)}
            except Exception as exc:
                result["phases"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(name, json.dumps(result["phases"][name])[:400], flush=True)
        save()

    print(json.dumps(result["facts"]), flush=True)
    save()
    size = 32 if args.toy else 128
    n_train, n_val = (256, 64) if args.toy else (8192, 2048)
    steps, warmup = (3, 1) if args.toy else (200, 10)
    flux_kw = {"filters": 8} if args.toy else {"filters": 256}
    unet_kw = {"unet_depth": 3, "unet_filters": 4} if args.toy else {"unet_depth": 5, "unet_filters": 32}
    gen = torch.device("cpu") if args.toy else device
    train = synthetic_blends(n_train, size, gen, seed=1)
    val = synthetic_blends(n_val, size, gen, seed=2)
    sigma, scale = 0.01, median_flux(train.fluxes)
    common = {"image_size": size, "normalisation": "arcsinh", "noise_sigma": sigma, "flux_scale": scale}
    b2f = ModelConfig("blend2flux", **flux_kw, **common)
    result["blend2flux_parameters"] = count_parameters(build_model(b2f))

    def throughputs():
        rows = []
        for batch in (32, 128):
            for amp in (True, False):
                for channels_last in (True, False):
                    sps = throughput(b2f, train, device, batch=batch, amp=amp, channels_last=channels_last,
                                     warmup=warmup, steps=steps)
                    rows.append({"batch": batch, "amp": amp, "channels_last": channels_last,
                                 "samples_per_s": round(sps, 1)})
        return rows

    phase("throughput_blend2flux_f256", 120, throughputs)
    phase("syncs_in_20_training_steps", 30, lambda: count_syncs(b2f, train, device))
    phase("staged_loader", 30, lambda: staged_loader(train, device))
    with tempfile.TemporaryDirectory() as tmp:
        phase("fit_2_epochs_then_resume_to_3", 120, lambda: fit_and_resume(b2f, train, val, device, Path(tmp) / "b2f"))
        for arch in ("unet", "blend2mask2flux"):
            cfg = ModelConfig(arch, **unet_kw, **({"filters": 128, "dense_units": 256} if not args.toy else flux_kw),
                              **common)

            def one_epoch(cfg=cfg, arch=arch):
                summary = fit(cfg, TrainConfig(epochs=1, batch_size=32, seed=1), train, val, Path(tmp) / arch,
                              device=device)
                h = summary["history"][0]
                return {"parameters": summary["parameters"], "epoch_time_s": h["epoch_time_s"],
                        "samples_per_s": h["samples_per_s"], "val_loss": h["val_loss"]}

            phase(f"one_epoch_{arch}", 60, one_epoch)
    fitted = result["phases"].get("fit_2_epochs_then_resume_to_3", {}).get("result")
    step_rate = float(np.median(fitted["samples_per_s"])) if fitted else None
    pool_blends = (64, 256) if args.toy else (1300, args.paper_train)
    phase("fresh_blends_draw", 60, lambda: fresh_draw(*pool_blends, size, step_rate))
    if fitted:
        per_blend = float(np.median(fitted["epoch_time_s"])) / n_train
        result["paper_blend2flux_70_epochs_h"] = round(70 * args.paper_train * per_blend / 3600, 3)
        result["paper_blend2flux_70_epochs_note"] = (
            f"70 epochs x {args.paper_train} training blends at the measured fit() epoch time (training pass "
            "only; validation and checkpoints add to it)")
    result["wall_s"] = round(time.monotonic() - t_start, 1)
    save()
    print(f"wrote {out} after {result['wall_s']} s", flush=True)


if __name__ == "__main__":
    main()
