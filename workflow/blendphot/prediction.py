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
from blendphot.errors import InputError

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
def predict_model(model, arch: str, images: torch.Tensor, blend_id: np.ndarray, *, device, batch_size: int = 256,
                  amp: bool = True, channels_last: bool = True, masks_out: np.ndarray | None = None,
                  method: str = "") -> Prediction:
    """Run a trained model over (N, S, S) blends.

    Flux models fill ``cen_flux``/``comp_flux``; mask models write thresholded (p > 0.5)
    central and companion masks into ``masks_out`` (an (N, 2, S, S) uint8 array, e.g. a
    memmap from :func:`blendphot.io.create_array`) or a new array.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    n = images.shape[0]
    fluxes = np.full((n, 2), np.nan)
    has_masks = arch in ("unet", "blend2mask2flux")
    if has_masks and masks_out is None:
        masks_out = np.zeros((n, 2, *images.shape[1:]), dtype=np.uint8)
    for start in range(0, n, batch_size):
        x = images[start:start + batch_size].unsqueeze(1).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            out = model(x)
        if arch == "blend2flux":
            fluxes[start:start + len(x)] = out.float().cpu().numpy()
        elif arch == "unet":
            masks_out[start:start + len(x)] = (out[:, :2] > 0).cpu().numpy()
        else:
            fluxes[start:start + len(x)] = out[0].float().cpu().numpy()
            masks_out[start:start + len(x)] = (out[1][:, :2] > 0).cpu().numpy()
    catalog = pd.DataFrame({"blend_id": blend_id, "cen_flux": fluxes[:, 0], "comp_flux": fluxes[:, 1]})
    return Prediction(catalog=catalog, masks=masks_out if has_masks else None, method=method)
