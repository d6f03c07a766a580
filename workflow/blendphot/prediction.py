"""The one prediction format that every method writes: the CNNs, the U-Net and sep alike.

A :class:`Prediction` is a catalogue with one row per test blend, ``blend_id``, ``cen_flux``
and ``comp_flux`` (isolated-galaxy flux units of the blend catalogue; NaN where a method
gives no flux, e.g. the U-Net alone or sep finding nothing), plus any method-specific
columns, and optionally the predicted masks (N, 2, S, S) uint8 in the blend stage's layout
(channel 0 central, 1 companion) and deblended images (N, 2, S, S) float32, e-/s, in the same
layout. It lives in one folder: ``predictions.csv`` and, for a method with masks or images,
``masks.npy`` and ``images.npy`` (memory-mappable). Metrics read only this.
No torch here: the evaluation stage reads predictions without it
(:func:`blendphot.inference.predict_model` makes them from a network).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from blendphot import io
from blendphot.errors import InputError

__all__ = ["PREDICTION_COLUMNS", "Prediction"]

PREDICTION_COLUMNS = ("blend_id", "cen_flux", "comp_flux")


@dataclass
class Prediction:
    """Predictions of one method on one set of blends (see the module docstring)."""

    catalog: pd.DataFrame
    masks: np.ndarray | None = None
    method: str = ""
    images: np.ndarray | None = None

    FILES: ClassVar[dict[str, str]] = {"catalog": "predictions.csv", "masks": "masks.npy", "images": "images.npy"}

    def __post_init__(self):
        io.require_columns(self.catalog, PREDICTION_COLUMNS, f"predictions of {self.method or 'a method'}")
        for kind in ("masks", "images"):
            array = getattr(self, kind)
            if array is not None and (array.ndim != 4 or array.shape[:2] != (len(self.catalog), 2)):
                raise InputError(f"predictions of {self.method or 'a method'}: {kind} of shape {array.shape} do not "
                                 f"match the {len(self.catalog)} predictions")

    @staticmethod
    @contextlib.contextmanager
    def allocate_masks(directory: str | Path, n: int, size: int):
        """A memory-mapped ``masks.npy`` of ``n`` blends, filled in place by the method; the
        file appears only if the block succeeds. Save the catalogue after it with
        ``save(directory, masks=False)``."""
        with io.create_array(Path(directory) / Prediction.FILES["masks"], (n, 2, size, size), np.uint8) as masks:
            yield masks

    @staticmethod
    @contextlib.contextmanager
    def allocate_images(directory: str | Path, n: int, size: int):
        """A memory-mapped ``images.npy`` of ``n`` blends' deblended images, as :meth:`allocate_masks`."""
        with io.create_array(Path(directory) / Prediction.FILES["images"], (n, 2, size, size), np.float32) as images:
            yield images

    def save(self, directory: str | Path, *, masks: bool = True) -> None:
        """Write ``predictions.csv`` and, if the method has them and ``masks``, ``masks.npy``
        and ``images.npy``."""
        d = Path(directory)
        if masks and self.masks is not None:
            io.save_array(d / self.FILES["masks"], np.asarray(self.masks, np.uint8))
        if masks and self.images is not None:
            io.save_array(d / self.FILES["images"], np.asarray(self.images, np.float32))
        io.write_csv(d / self.FILES["catalog"], self.catalog)

    @classmethod
    def load(cls, directory: str | Path, *, masks: bool | None = None, images: bool = False,
             method: str = "") -> Prediction:
        """Read a prediction folder; ``masks=None`` reads ``masks.npy`` when there is one,
        ``images`` reads ``images.npy`` when there is one (memory-mapped)."""
        d = Path(directory)
        catalog_path = d / cls.FILES["catalog"]
        catalog = io.read_csv(catalog_path, required=PREDICTION_COLUMNS)
        if masks is None:
            masks = (d / cls.FILES["masks"]).exists()
        wanted = {"masks": masks, "images": images and (d / cls.FILES["images"]).exists()}
        arrays = {}
        for kind, read in wanted.items():
            path = d / cls.FILES[kind]
            array = io.load_array(path) if read else None
            if array is not None and (array.ndim != 4 or array.shape[:2] != (len(catalog), 2)):
                raise InputError(f"{path}: {kind} of shape {array.shape} do not match the {len(catalog)} rows "
                                 f"of {catalog_path}")
            arrays[kind] = array
        return cls(catalog=catalog, method=method or d.name, **arrays)
