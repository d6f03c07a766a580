"""The training stage's view of the blend stage's files, and batches that keep a GPU fed.

The blend stage writes, per split, ``images.npy`` (N, S, S) float32 in e-/s, ``masks.npy``
(N, 2, S, S) uint8 and ``catalog.csv`` (see config/README.md). :meth:`BlendData.load` reads
them once into memory (paper scale, 24 000 blends: 1.6 GB of images), checks them, and
:class:`Batches` serves shuffled batches by indexing those tensors: on a GPU the whole set
is moved to device memory when it fits, so a step never waits for a loader process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from blendphot import io
from blendphot.errors import InputError

__all__ = ["FLUX_COLUMNS", "BlendData", "Batches", "fingerprint", "noise_sigma"]

FLUX_COLUMNS = ("cen_flux", "comp_flux")


@dataclass
class BlendData:
    """One split of blends held in memory.

    images : (N, S, S) float32 tensor, e-/s
    fluxes : (N, 2) float32 tensor, central and companion isolated-galaxy fluxes
    masks : (N, 2, S, S) uint8 tensor or None, central and companion segmentation
    blend_id : (N,) int64 array
    """

    images: torch.Tensor
    fluxes: torch.Tensor
    masks: torch.Tensor | None
    blend_id: np.ndarray

    def __post_init__(self):
        n = self.images.shape[0]
        if self.fluxes.shape != (n, 2) or len(self.blend_id) != n:
            raise ValueError(f"inconsistent blend data: images {tuple(self.images.shape)}, "
                             f"fluxes {tuple(self.fluxes.shape)}, {len(self.blend_id)} ids")
        if self.masks is not None and tuple(self.masks.shape) != (n, 2, *self.images.shape[1:]):
            raise ValueError(f"masks {tuple(self.masks.shape)} do not match images {tuple(self.images.shape)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @classmethod
    def load(cls, images: str | Path, catalog: str | Path, masks: str | Path | None = None, *,
             require_fluxes: bool = True) -> "BlendData":
        """Read one split. Non-finite pixels, missing columns and non-positive target fluxes
        are errors that name the file and the first bad blend."""
        cat = io.read_csv(catalog, required=("blend_id",) + (FLUX_COLUMNS if require_fluxes else ()))
        img = io.load_array(images)
        if img.ndim != 3 or img.shape[1] != img.shape[2]:
            raise InputError(f"{images}: expected blend images of shape (N, S, S), got {img.shape}")
        if img.shape[0] != len(cat):
            raise InputError(f"{images}: {img.shape[0]} images but {catalog} has {len(cat)} rows")
        img = np.array(img, dtype=np.float32)  # a private, writable copy in memory
        finite = np.isfinite(img).all(axis=(1, 2))
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise InputError(f"{images}: non-finite pixels in {int((~finite).sum())} blends "
                             f"(first: row {bad}, blend_id {cat['blend_id'].iloc[bad]})")
        if require_fluxes:
            flux = cat[list(FLUX_COLUMNS)].to_numpy(np.float64)
            bad_rows = ~(np.isfinite(flux) & (flux > 0))
            if bad_rows.any():
                row, col = map(int, np.argwhere(bad_rows)[0])
                raise InputError(f"{catalog}: column '{FLUX_COLUMNS[col]}' must be finite and positive; "
                                 f"row {row} (blend_id {cat['blend_id'].iloc[row]}) has {flux[row, col]}")
        else:
            flux = np.full((len(cat), 2), np.nan)
        msk = None
        if masks is not None:
            m = io.load_array(masks)
            if m.shape != (img.shape[0], 2, *img.shape[1:]):
                raise InputError(f"{masks}: expected masks of shape {(img.shape[0], 2, *img.shape[1:])}, got {m.shape}")
            msk = torch.from_numpy(np.array(m, dtype=np.uint8))
        return cls(images=torch.from_numpy(img), fluxes=torch.from_numpy(flux.astype(np.float32)), masks=msk,
                   blend_id=cat["blend_id"].to_numpy(np.int64))


def noise_sigma(images: torch.Tensor, *, sample: int = 2000, border: int = 8) -> float:
    """Robust background noise (e-/s) from the stamp borders of up to ``sample`` blends.

    1.4826 × the median absolute deviation of the border pixels; galaxies touching the
    border barely move the median.
    """
    x = images[:sample]
    edge = torch.cat([x[:, :border].reshape(-1), x[:, -border:].reshape(-1),
                      x[:, border:-border, :border].reshape(-1), x[:, border:-border, -border:].reshape(-1)])
    edge = edge.double()
    mad = (edge - edge.median()).abs().median()
    sigma = float(1.4826 * mad)
    if not sigma > 0:
        raise InputError("the blend borders have zero noise; cannot set the input normalisation")
    return sigma


def fingerprint(*datasets: BlendData) -> str:
    """SHA-256 over the images, fluxes and masks of the given splits, as loaded: identifies
    the data a checkpoint was trained on without reading the files a second time."""
    h = hashlib.sha256()
    for data in datasets:
        for tensor in (data.images, data.fluxes, data.masks):
            if tensor is not None:
                h.update(tensor.contiguous().numpy().data)
    return h.hexdigest()


class Batches:
    """Shuffled (or ordered) mini-batches of one :class:`BlendData`, already on ``device``.

    The split is moved to the device once when it fits in ``max_device_fraction`` of the
    free GPU memory; otherwise it stays in pinned host memory and each batch is copied
    asynchronously. Images come out as (B, 1, S, S) float32, in channels-last layout if
    asked; masks as float32 {0, 1}.
    """

    def __init__(self, data: BlendData, batch_size: int, device: torch.device, *, shuffle: bool,
                 generator: torch.Generator | None = None, channels_last: bool = False,
                 with_masks: bool = False, max_device_fraction: float = 0.5):
        self.data, self.batch_size, self.device = data, batch_size, torch.device(device)
        self.shuffle, self.generator, self.channels_last = shuffle, generator, channels_last
        self.with_masks = with_masks and data.masks is not None
        images, fluxes = data.images, data.fluxes
        masks = data.masks if self.with_masks else None
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            needed = sum(t.nbytes for t in (images, fluxes, masks) if t is not None)
            if needed < max_device_fraction * free:
                images, fluxes = images.to(self.device), fluxes.to(self.device)
                masks = masks.to(self.device) if masks is not None else None
            else:
                images, fluxes = images.pin_memory(), fluxes.pin_memory()
                masks = masks.pin_memory() if masks is not None else None
        self.images, self.fluxes, self.masks = images, fluxes, masks

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        n = len(self.data)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self._gather(idx.to(self.images.device))

    def _gather(self, idx):
        nb = self.device.type == "cuda"
        x = self.images.index_select(0, idx).unsqueeze(1).to(self.device, non_blocking=nb)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = self.fluxes.index_select(0, idx).to(self.device, non_blocking=nb)
        m = None
        if self.masks is not None:
            m = self.masks.index_select(0, idx).to(self.device, non_blocking=nb).float()
        return x, y, m
