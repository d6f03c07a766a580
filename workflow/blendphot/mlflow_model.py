"""Trained networks in MLflow's model format, so that MLflow's own tools can use them.

The train stage logs every model as an MLflow ``pyfunc`` model (artifact ``model`` of its
run): the checkpoint (``artifacts/model.pt``: weights, architecture, input normalisation,
flux scale and σ calibration, everything :func:`blendphot.train.load_model` needs), this
package's code and the pinned requirements. Then, with nothing of blendphot installed::

    model = mlflow.pyfunc.load_model("runs:/<run_id>/model")
    table = model.predict(blends)      # (N, S, S) float32 blends in e-/s

or ``mlflow models predict -m runs:/<run_id>/model -i blends.json`` / ``mlflow models serve``.
The output is the prediction table of :func:`blendphot.inference.predict_model` (blend_id,
cen_flux, comp_flux, and the σ and plain-sum columns where the model has them).
``blendphot predict runs:/<run_id>/model ...`` reads the same artifact.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

__all__ = ["REQUIREMENTS", "BlendModel", "save_pyfunc"]

# What loading and running a model needs (blendphot[train] and the core dependencies it imports).
REQUIREMENTS = ("numpy", "pandas", "pyyaml", "jsonschema", "torch", "scipy", "sep", "scikit-image")


class BlendModel(mlflow.pyfunc.PythonModel):
    """A trained blendphot network as an MLflow pyfunc model (see the module docstring)."""

    def load_context(self, context) -> None:
        from blendphot.device import resolve_device
        from blendphot.train import load_model

        self.device = resolve_device("auto", what="prediction")
        self.model, self.cfg = load_model(context.artifacts["checkpoint"], self.device)

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        """Blends in e-/s as an (N, S, S) array, or N rows of S × S pixels (a table, as
        ``mlflow models predict`` and ``serve`` pass them) → the prediction table."""
        from blendphot.blend import Blends
        from blendphot.errors import InputError
        from blendphot.inference import predict_model

        size = self.cfg.image_size
        images = np.array(model_input.to_numpy() if isinstance(model_input, pd.DataFrame) else model_input,
                          np.float32)  # a private, writable copy
        if images.ndim == 2 and images.shape[1] == size * size:
            images = images.reshape(-1, size, size)
        if images.ndim != 3 or images.shape[1:] != (size, size):
            raise InputError(f"blends of shape {images.shape}: this {self.cfg.arch} takes (N, {size}, {size}) "
                             f"blends or N rows of {size * size} pixels")
        blends = Blends(images, None, pd.DataFrame({"blend_id": np.arange(len(images))}), source="model input")
        blends.check_finite(where="model input")
        return predict_model(self.model, blends, device=self.device, amp=self.device.type == "cuda").catalog


def save_pyfunc(checkpoint: str | Path, path: str | Path) -> Path:
    """Write the checkpoint ``checkpoint`` as an MLflow pyfunc model in the new folder ``path``."""
    import blendphot

    pins = [f"{name}=={importlib.metadata.version(name)}" for name in REQUIREMENTS]
    mlflow.pyfunc.save_model(str(path), python_model=BlendModel(), artifacts={"checkpoint": str(checkpoint)},
                             code_paths=[str(Path(blendphot.__file__).parent)], pip_requirements=pins)
    return Path(path)
