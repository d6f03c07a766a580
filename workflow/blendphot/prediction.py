"""The one prediction format that every method writes: the CNNs, the U-Net and sep alike.

A :class:`Prediction` is a catalogue with one row per test blend, ``blend_id``, ``cen_flux``
and ``comp_flux`` (isolated-galaxy flux units of the blend catalogue; NaN where a method
gives no flux, e.g. the U-Net alone or sep finding nothing), plus any method-specific
columns, and optionally the predicted masks (N, 2, S, S) uint8 in the blend stage's layout
(channel 0 central, 1 companion), saved as a memory-mappable ``.npy``. Metrics read only this.
No torch here: the evaluation stage reads predictions without it
(:func:`blendphot.inference.predict_model` makes them from a network).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from blendphot import io
from blendphot.errors import InputError

__all__ = ["Prediction", "PREDICTION_COLUMNS"]

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
