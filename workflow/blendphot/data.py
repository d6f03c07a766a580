"""Training's view of the blends: batches that keep a GPU fed.

The blend stage writes each split as a :class:`~blendphot.blend.Blends` folder;
:meth:`Blends.load <blendphot.blend.Blends.load>` reads one into memory (paper scale, 24 000
blends: 1.6 GB of images) and checks it. :class:`Batches` serves shuffled batches by indexing
those arrays as tensors: on a GPU the whole split is moved to device memory when it fits, so
a step never waits for a loader process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch

from blendphot.blend import Blends
from blendphot.errors import InputError
from blendphot.photometry import border_noise

__all__ = ["Batch", "Batches", "fingerprint", "noise_sigma"]


class Batch(NamedTuple):
    """One mini-batch (see :class:`Batches`); what was not asked for is None."""

    images: torch.Tensor
    fluxes: torch.Tensor
    masks: torch.Tensor | None = None
    central: torch.Tensor | None = None


def noise_sigma(images: np.ndarray, *, sample: int = 2000, border: int = 8) -> float:
    """Robust background noise (e-/s) of blends, which sets a network's input scale:
    :func:`blendphot.photometry.border_noise` of up to ``sample`` of them; zero is an error."""
    sigma = border_noise(images, sample=sample, border=border)
    if not sigma > 0:
        raise InputError("the blend borders have zero noise; cannot set the input normalisation")
    return sigma


def fingerprint(*datasets: Blends) -> str:
    """SHA-256 over the images, fluxes and masks of the given splits, as loaded: identifies
    the data a checkpoint was trained on without reading the files a second time."""
    h = hashlib.sha256()
    for data in datasets:
        for array in (data.images, data.fluxes, data.masks, data.central):
            if array is not None:
                h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()


class Batches:
    """Shuffled (or ordered) mini-batches of one split of :class:`~blendphot.blend.Blends`, on ``device``.

    The split is moved to the device once when it fits in ``max_device_fraction`` of the
    free GPU memory, and each epoch's order once per epoch: a step then never waits for the
    host. Otherwise the split stays in host memory and each batch is gathered into one of two
    pinned staging buffers and copied asynchronously (a buffer is reused once its previous
    copy is done). Each batch is a :class:`Batch`: images (B, 1, S, S) float32, in channels-last
    layout if asked; the fluxes, the ``target`` columns (:data:`~blendphot.blend.TARGET_COLUMNS`;
    None: the catalogue's isolated fluxes, or NaN for blends without them); masks as float32
    {0, 1} (``with_masks``); the central galaxies' isolated images (B, S, S) float32
    (``with_central``, the target of an image network). What was not asked for is None.
    """

    def __init__(self, data: Blends, batch_size: int, device: torch.device, *, shuffle: bool,
                 generator: torch.Generator | None = None, channels_last: bool = False,
                 with_masks: bool = False, max_device_fraction: float = 0.5, target: str | None = None,
                 with_central: bool = False):
        self.data, self.batch_size, self.device = data, batch_size, torch.device(device)
        self.shuffle, self.generator, self.channels_last = shuffle, generator, channels_last
        self.with_masks = with_masks and data.masks is not None
        if with_central and data.central is None:
            raise InputError(f"{data.source}: an image network needs the central galaxies' isolated images "
                             "(central.npy), which were not loaded")
        tensors = {
            "images": torch.from_numpy(np.asarray(data.images, dtype=np.float32)),
            "fluxes": torch.from_numpy(np.array(data.fluxes if target is None else data.targets(target), np.float32)),
            "masks": torch.from_numpy(np.asarray(data.masks, dtype=np.uint8)) if self.with_masks else None,
            "central": torch.from_numpy(np.asarray(data.central, dtype=np.float32)) if with_central else None,
        }
        self.staged = False
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            needed = sum(t.nbytes for t in tensors.values() if t is not None)
            if needed < max_device_fraction * free:
                tensors = {k: t.to(self.device) if t is not None else None for k, t in tensors.items()}
            else:
                self.staged = True
                self._staging = [self._pinned_like(tensors) for _ in range(2)]
                self._copied = [None, None]  # the CUDA event of each buffer's last copy
        self.images, self.fluxes, self.masks, self.central = (tensors[k] for k in self.FIELDS)

    FIELDS = ("images", "fluxes", "masks", "central")

    def _pinned_like(self, tensors):
        b = self.batch_size
        return {k: torch.empty((b, *t.shape[1:]), dtype=t.dtype).pin_memory() if t is not None else None
                for k, t in tensors.items()}

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.data)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if not self.staged:
            order = order.to(self.images.device)  # once per epoch
        for k, start in enumerate(range(0, n, self.batch_size)):
            idx = order[start:start + self.batch_size]
            yield self._stage(idx, k % 2) if self.staged else self._gather(idx)

    def _layout(self, x, y, m, c):
        x = x.unsqueeze(1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return Batch(x, y, m.float() if m is not None else None, c)

    def _gather(self, idx):
        return self._layout(*(getattr(self, k).index_select(0, idx).to(self.device)
                              if getattr(self, k) is not None else None for k in self.FIELDS))

    def _stage(self, idx, slot: int):
        buffers, b = self._staging[slot], len(idx)
        if self._copied[slot] is not None:
            self._copied[slot].synchronize()  # the copy out of this buffer two batches ago is done
        out = []
        for name in self.FIELDS:
            source = getattr(self, name)
            if source is None:
                out.append(None)
                continue
            staged = torch.index_select(source, 0, idx, out=buffers[name][:b])
            out.append(staged.to(self.device, non_blocking=True))
        event = torch.cuda.Event()
        event.record()
        self._copied[slot] = event
        return self._layout(*out)
