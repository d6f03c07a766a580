"""Training and loader throughput of every model of the shipped configs.

    python bench/bench_train.py                      # CPU: demo and paper sizes
    python bench/bench_train.py --device cuda        # GPU, bf16 autocast, channels-last

For each model of config/config.yaml (demo) and config/paper.yaml (paper) it reports:
- train samples/s: forward + backward + Adam step on batches of 32 random 128x128 blends
  (the configured autocast and memory layout), 200 CUDA-event-timed steps after 10 warm-up steps;
- loader samples/s: the training loader (``blendphot.data.Batches``) serving shuffled batches
  of an in-memory split to the device, with no model;
and for the paper-size blend2flux the time 70 epochs over config/paper.yaml's training blends
(18 000) would take at that speed (the paper: under 5 hours on an NVIDIA K80).
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import pandas as pd
import torch

from blendphot.blend import Blends
from blendphot.config import load_config, model_settings, runtime_settings
from blendphot.data import Batches
from blendphot.device import resolve_device
from blendphot.models import ModelConfig, build_model, count_parameters
from blendphot.train import TrainConfig, train_step


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_throughput(cfg: ModelConfig, device, *, batch=32, steps=10, warmup=10, amp=True, channels_last=True):
    """Samples/s of forward + backward + Adam on one resident batch (model compute only; the
    real loop with its loader, validation and checkpoints: bench/gpu_check.py). CUDA-event
    timing on a GPU."""
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, cfg.image_size, cfg.image_size, device=device) * 0.1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.rand(batch, 2, device=device) + 0.5
    m = (torch.rand(batch, 2, cfg.image_size, cfg.image_size, device=device) > 0.9).float()
    tcfg = TrainConfig(amp=amp)
    events = [torch.cuda.Event(enable_timing=True) for _ in range(2)] if device.type == "cuda" else None
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
            if events:
                events[0].record()
        train_step(model, opt, cfg, tcfg, x, y, m)
    if events:
        events[1].record()
        events[1].synchronize()
        seconds = events[0].elapsed_time(events[1]) / 1000
    else:
        seconds = time.perf_counter() - start
    return batch * steps / seconds, count_parameters(model)


def loader_throughput(device, *, n=4096, size=128, batch=32, with_masks=True, channels_last=True):
    rng = np.random.default_rng(0)
    fluxes = rng.random((n, 2)) + 0.5
    data = Blends(images=rng.normal(size=(n, size, size)).astype(np.float32),
                  masks=(rng.random((n, 2, size, size)) > 0.9).astype(np.uint8),
                  catalog=pd.DataFrame({"blend_id": np.arange(n), "cen_flux": fluxes[:, 0], "comp_flux": fluxes[:, 1]}))
    batches = Batches(data, batch, device, shuffle=True, generator=torch.Generator().manual_seed(0),
                      channels_last=channels_last, with_masks=with_masks)
    for _ in batches:  # warm-up epoch
        pass
    _sync(device)
    start = time.perf_counter()
    for _ in batches:
        pass
    _sync(device)
    return n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--scales", default="demo,paper", help="comma-separated: demo, paper")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per model (default: 200 GPU, 3 CPU)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    device = resolve_device(args.device)
    steps = args.steps or (200 if device.type == "cuda" else 3)
    warmup = 10 if device.type == "cuda" else 1
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'cpu'}"
    print(f"device: {device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    configs = {"demo": "config/config.yaml", "paper": "config/paper.yaml"}
    rows = []
    for scale in args.scales.split(","):
        config = load_config(configs[scale])
        for model_name in config["train"]["models"]:
            s = model_settings(config, model_name)
            cfg = ModelConfig(**s["model"], image_size=config["stamps"]["size"],
                              normalisation=s["train"]["normalisation"])
            sps, n_params = train_throughput(cfg, device, batch=s["train"]["batch_size"], steps=steps, warmup=warmup,
                                             **{k: v for k, v in runtime_settings(config).items()
                                                if k in ("amp", "channels_last")})
            rows.append({"scale": scale, "model": model_name, "parameters": n_params, "train_samples_per_s": sps})
            print(f"{scale:5s} {model_name:18s} {n_params / 1e6:8.2f} M params  train {sps:9.1f} samples/s", flush=True)
    loader = {masks: loader_throughput(device, with_masks=masks) for masks in (False, True)}
    print(f"loader: {loader[False]:.0f} samples/s (images + fluxes), {loader[True]:.0f} samples/s (with masks)")
    paper = next((r for r in rows if r["scale"] == "paper" and r["model"] == "blend2flux"), None)
    n_paper = load_config(configs["paper"])["blend"]["n_blends"]["train"]
    result = {"device": str(device), "device_name": name, "torch": torch.__version__, "models": rows,
              "loader_samples_per_s": {"images": loader[False], "images_and_masks": loader[True]}}
    if paper:
        hours = 70 * n_paper / paper["train_samples_per_s"] / 3600
        result[f"paper_blend2flux_70_epochs_{n_paper}_blends_h"] = hours
        print(f"paper blend2flux, 70 epochs x {n_paper} blends (config/paper.yaml): {hours:.2f} h of training steps "
              "(paper: < 5 h on a K80)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
