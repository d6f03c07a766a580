"""Running a trained network over a split of blends, into the shared prediction format."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from blendphot.data import Batches, BlendData
from blendphot.models import split_outputs
from blendphot.prediction import Prediction
from blendphot.train import autocast

__all__ = ["predict_model"]


@torch.inference_mode()
def predict_model(model, data: BlendData, *, device, batch_size: int = 256, amp: bool = True,
                  channels_last: bool = True, masks_out: np.ndarray | None = None, method: str = "") -> Prediction:
    """Run a trained model (built by :func:`blendphot.models.build_model`) over a split of blends.

    Flux models fill ``cen_flux``/``comp_flux``; mask models write thresholded (p > 0.5)
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
    has_masks = arch != "blend2flux"
    if has_masks and masks_out is None:
        masks_out = np.zeros((n, 2, *data.images.shape[1:]), dtype=np.uint8)
    start = 0
    for x, _, _ in Batches(data, batch_size, device, shuffle=False, channels_last=channels_last):
        with autocast(device, amp):
            pred, logits = split_outputs(arch, model(x))
        rows = slice(start, start + len(x))
        if pred is not None:
            fluxes[rows] = pred.float().cpu().numpy()
        if logits is not None:
            masks_out[rows] = (logits[:, :2] > 0).cpu().numpy()
        start += len(x)
    catalog = pd.DataFrame({"blend_id": data.blend_id, "cen_flux": fluxes[:, 0], "comp_flux": fluxes[:, 1]})
    return Prediction(catalog=catalog, masks=masks_out if has_masks else None, method=method)
