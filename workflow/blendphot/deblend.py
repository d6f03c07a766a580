"""Measuring deblended images: fluxes and masks of an image network's output, taken the way
the clean stage took the isolated galaxies' (the paper's ground truth).

A deblended galaxy image is treated like an isolated stamp: sep detects its sources with the
clean stage's settings (``clean`` in the config: :class:`~blendphot.clean.CleanParams`), the
galaxy is the segment under its position (or the nearest object within 3 px:
:func:`~blendphot.clean.label_at`, as for the isolated galaxies), the background level is the
median of the pixels farther than ``dilate_neighbours`` + 2 px from every segment (the clean
stage's empty pool; :func:`~blendphot.photometry.background_level`), and its flux is the Kron
FLUX_AUTO of :func:`~blendphot.photometry.kron_photometry`, the one photometry of the
project. Its mask is its segment, as the isolated galaxies' masks are theirs. The plain sum of
the image's pixels is kept beside it. Measured this way, the isolated images themselves give
the isolated fluxes back to 1.02 % (config/README.md, "Training choices").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from blendphot.clean import CleanParams, detect_sources, label_at
from blendphot.photometry import background_level, kron_photometry

__all__ = ["measure_deblended", "measure_galaxy"]

_OFF_CENTRE = 2.0  # px: a companion of unknown position is a source centred farther than this


def _brightest_off_centre(objects, c: int) -> int:
    """Label (1-based) of the brightest object centred more than ``_OFF_CENTRE`` px from pixel
    (c, c), where what is left of the central galaxy lies; 0 when there is none."""
    off = np.flatnonzero(np.hypot(objects["x"] - c, objects["y"] - c) > _OFF_CENTRE)
    return int(off[np.argmax(objects["flux"][off])]) + 1 if len(off) else 0


def measure_galaxy(image: np.ndarray, x: float, y: float, params: CleanParams) -> tuple[float, float, np.ndarray]:
    """(Kron flux, plain sum, mask) of the galaxy at pixel (x, y) of one deblended image; for
    a NaN position, of its brightest source centred more than 2 px from the centre pixel.

    The flux is NaN and the mask empty when there is no such source; the sum is always the
    sum of the image's pixels.
    """
    data = np.ascontiguousarray(image, dtype=np.float32)
    total = float(data.sum(dtype=np.float64))
    covered = np.isfinite(data)
    objects, seg, _, rms = detect_sources(data, covered, params)
    if np.isfinite(x) and np.isfinite(y):
        label = label_at(objects, seg, x, y)
    else:
        label = _brightest_off_centre(objects, data.shape[0] // 2)
    if label == 0:
        return np.nan, total, np.zeros(data.shape, np.uint8)
    level = background_level(data, seg, grow=params.dilate_neighbours + 2, valid=covered)
    kron = kron_photometry(data, seg, objects[[label - 1]], [label], background=level, err=rms)
    return float(kron["flux"][0]), total, (seg == label).astype(np.uint8)


def measure_deblended(images: np.ndarray, dx, dy, params: CleanParams | None = None, *,
                      masks_out: np.ndarray | None = None,
                      progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Fluxes and masks of (N, 2, S, S) deblended images, central then companion.

    The central galaxy lies on the centre pixel (S // 2, S // 2) and the companion ``dx``,
    ``dy`` pixels from it (arrays of N; NaN where unknown: the companion is then the
    brightest source of its image centred more than 2 px from the centre pixel). Returns
    ``cen_flux``, ``comp_flux`` (Kron), ``cen_flux_sum``, ``comp_flux_sum`` and ``masks``
    ((N, 2, S, S) uint8, written into ``masks_out`` when given). ``progress(1)`` after each blend.
    """
    params = params or CleanParams()
    n, size = len(images), images.shape[-1]
    c = size // 2
    dx, dy = (np.broadcast_to(np.asarray(v, float), (n,)) for v in (dx, dy))
    out = {k: np.full(n, np.nan) for k in ("cen_flux", "comp_flux", "cen_flux_sum", "comp_flux_sum")}
    masks = masks_out if masks_out is not None else np.zeros((n, 2, size, size), np.uint8)
    for i in range(n):
        pair = np.asarray(images[i], np.float32)
        out["cen_flux"][i], out["cen_flux_sum"][i], masks[i, 0] = measure_galaxy(pair[0], c, c, params)
        out["comp_flux"][i], out["comp_flux_sum"][i], masks[i, 1] = measure_galaxy(pair[1], c + dx[i], c + dy[i],
                                                                                  params)
        if progress is not None:
            progress(1)
    out["masks"] = masks
    return out
