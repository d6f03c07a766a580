"""The one prediction format that every method writes: the CNNs, the U-Net and sep alike.

A :class:`Prediction` is a catalogue with one row per test blend, ``blend_id``, ``cen_flux``
and ``comp_flux`` (isolated-galaxy flux units of the blend catalogue; NaN where a method
gives no flux, e.g. the U-Net alone or sep finding nothing), plus any method-specific
columns, and optionally the predicted masks (N, 2, S, S) uint8 in the blend stage's layout
(channel 0 central, 1 companion), saved as a memory-mappable ``.npy``. Metrics read only this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from blendphot import io
from blendphot.data import Batches, BlendData
from blendphot.errors import InputError
from blendphot.models import split_outputs
from blendphot.train import autocast

__all__ = ["Prediction", "PREDICTION_COLUMNS", "predict_model"]

PREDICTION_COLUMNS = ("blend_id", "cen_flux", "comp_flux")


@dataclass
class Prediction:
    """Predictions of one method on one set of blends (see the module docstring)."""

    catalog: pd.DataFrame
    masks: np.ndarray | None = None
    method: str = ""

    def __post_init__(self):
        io.require_columns(self.catalog, PREDICTION_COLUMNS, f"predictions of {self.method or 'a method'}")
        if self.masks is not None and (self.masks.ndim != 4 or self.masks.shape[:2] != (len(self.catalog), 2)):
            raise ValueError(f"masks of shape {self.masks.shape} do not match {len(self.catalog)} predictions")

    def save(self, catalog_path: str | Path, masks_path: str | Path | None = None) -> None:
        io.write_csv(catalog_path, self.catalog)
        if masks_path is not None:
            if self.masks is None:
                raise ValueError(f"{self.method}: no masks to save to {masks_path}")
            io.save_array(masks_path, self.masks.astype(np.uint8, copy=False))

    @classmethod
    def load(cls, catalog_path: str | Path, masks_path: str | Path | None = None, *, method: str = "") -> "Prediction":
        catalog = io.read_csv(catalog_path, required=PREDICTION_COLUMNS)
        masks = io.load_array(masks_path) if masks_path is not None else None
        if masks is not None and masks.shape[:2] != (len(catalog), 2):
            raise InputError(f"{masks_path}: masks of shape {masks.shape} do not match the {len(catalog)} rows "
                             f"of {catalog_path}")
        return cls(catalog=catalog, masks=masks, method=method)


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
