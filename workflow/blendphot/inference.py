"""Running a trained network over a split of blends, into the shared prediction format."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from blendphot import io
from blendphot.architectures import architecture
from blendphot.blend import Blends
from blendphot.data import Batches
from blendphot.device import resolve_device
from blendphot.models import count_parameters
from blendphot.prediction import Prediction
from blendphot.train import autocast

__all__ = ["predict_model", "run_predict_model"]


@torch.inference_mode()
def predict_model(model, data: Blends, *, device, batch_size: int = 256, amp: bool = True,
                  channels_last: bool = True, masks_out: np.ndarray | None = None, method: str = "") -> Prediction:
    """Run a trained model (built by :func:`blendphot.models.build_model`) over a split of blends.

    Flux models fill ``cen_flux``/``comp_flux`` (and ``cen_flux_err``/``comp_flux_err`` with a
    σ head, ``flux_sigma``); mask models write thresholded (p > 0.5)
    central and companion masks into ``masks_out`` (an (N, 2, S, S) uint8 array, e.g. a
    memmap from :func:`blendphot.io.create_array`) or a new array. Batches are served as in
    training (:class:`blendphot.data.Batches`), in order.
    """
    device = torch.device(device)
    arch = model.cfg.arch
    model = model.to(device).eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    n = len(data)
    fluxes = np.full((n, 2), np.nan)
    sigmas = np.full((n, 2), np.nan) if model.cfg.flux_sigma else None
    has_masks = architecture(arch).masks
    if has_masks and masks_out is None:
        masks_out = np.zeros((n, 2, *data.images.shape[1:]), dtype=np.uint8)
    start = 0
    for x, _, _ in Batches(data, batch_size, device, shuffle=False, channels_last=channels_last):
        with autocast(device, amp):
            out = model(x)
        rows = slice(start, start + len(x))
        if out.fluxes is not None:
            fluxes[rows] = out.fluxes.float().cpu().numpy()
        if out.uncertainties is not None:
            sigmas[rows] = out.uncertainties.float().cpu().numpy()
        if out.mask_logits is not None:
            masks_out[rows] = (out.mask_logits[:, :2] > 0).cpu().numpy()
        start += len(x)
    catalog = pd.DataFrame({"blend_id": data.catalog["blend_id"].to_numpy(), "cen_flux": fluxes[:, 0],
                            "comp_flux": fluxes[:, 1]})
    if sigmas is not None:  # 1σ-equivalent: ln F ± err / flux is the central 68 % interval
        catalog["cen_flux_err"], catalog["comp_flux_err"] = sigmas[:, 0], sigmas[:, 1]
    return Prediction(catalog=catalog, masks=masks_out if has_masks else None, method=method)


def run_predict_model(model_path: str | Path, blends_dir: str | Path, out_dir: str | Path, *, name: str,
                      device: str | torch.device = "auto", amp: bool = True, channels_last: bool = True) -> dict:
    """The predict_model stage: one trained network over a split of blends, written as a
    :class:`~blendphot.prediction.Prediction` folder with the network's ``model.json``
    (architecture, size). ``device``, ``amp`` and ``channels_last`` are runtime choices.
    Returns the throughput figures."""
    from blendphot.train import load_model

    device = resolve_device(device, what=f"prediction of {name}")
    model, cfg = load_model(model_path, device)
    blends = Blends.load(blends_dir, masks=False)
    has_masks = architecture(cfg.arch).masks
    masks = Prediction.allocate_masks(out_dir, len(blends), blends.size) if has_masks else contextlib.nullcontext()
    start = time.perf_counter()
    with masks as masks_out:
        pred = predict_model(model, blends, device=device, amp=amp, channels_last=channels_last, masks_out=masks_out,
                             method=name)
    elapsed = time.perf_counter() - start
    pred.save(out_dir, masks=False)
    io.write_json(Path(out_dir) / "model.json", {"name": name, "n_parameters": count_parameters(model),
                                                 **dataclasses.asdict(cfg)})
    return {"blends": len(blends), "blends_per_s": len(blends) / max(elapsed, 1e-9)}
