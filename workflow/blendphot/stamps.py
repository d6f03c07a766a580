"""Cutouts (paper §2.1): square stamps of image and weight around each selected galaxy.

Mosaics are read memory-mapped, so a 40 000 x 32 000 CANDELS mosaic is never loaded whole.
A galaxy is dropped, with a recorded reason, when its stamp leaves the mosaic
(``mosaic_edge``) or covers pixels without data (``missing_data``: weight 0 or NaN).
NaN image pixels *inside* the covered area mean a corrupt mosaic and stop the stage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from blendphot.errors import InputError
from blendphot.io import native

__all__ = ["StampSet", "open_mosaic", "cut_stamps"]


@dataclass
class StampSet:
    """Stamps of one field: images and weights (N, size, size) float32, and their catalogue."""

    images: np.ndarray
    weights: np.ndarray
    catalog: pd.DataFrame  # selected rows kept, plus x, y (mosaic pixels) and crpix1, crpix2
    dropped: pd.DataFrame  # gid, reason


def open_mosaic(path: str | os.PathLike):
    """Open a FITS mosaic memory-mapped. Returns (hdul, data, wcs); close ``hdul`` when done."""
    from astropy.io import fits
    from astropy.wcs import WCS

    try:
        hdul = fits.open(path, memmap=True)
        hdu = next((h for h in hdul if h.is_image and h.data is not None and h.data.ndim == 2), None)
        if hdu is None:
            hdul.close()
            raise InputError(f"{path}: no 2-D image HDU found")
        return hdul, hdu.data, WCS(hdu.header)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except Exception as exc:
        raise InputError(f"{path}: not a readable FITS image ({type(exc).__name__}: {exc})") from exc


def cut_stamps(image: np.ndarray, weight: np.ndarray, wcs, catalog: pd.DataFrame, *, size: int,
               max_missing_fraction: float = 0.0, image_name: str = "image") -> StampSet:
    """Cut ``size`` x ``size`` stamps centred on each catalogue position (``ra``, ``dec``).

    The galaxy lands on pixel ``(size // 2, size // 2)`` of its stamp (to within half a
    pixel); ``crpix1/2`` give the stamp's WCS reference pixel so its WCS can be rebuilt.
    """
    if image.shape != weight.shape:
        raise InputError(f"{image_name}: image shape {image.shape} differs from weight shape {weight.shape}")
    x, y = wcs.all_world2pix(catalog["ra"].to_numpy(), catalog["dec"].to_numpy(), 0)
    ny, nx = image.shape
    half = size // 2
    ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    images, weights, kept, dropped = [], [], [], []
    for k in range(len(catalog)):
        x0, y0 = ix[k] - half, iy[k] - half
        gid = catalog["gid"].iat[k]
        if x0 < 0 or y0 < 0 or x0 + size > nx or y0 + size > ny:
            dropped.append((gid, "mosaic_edge"))
            continue
        img = native(np.asarray(image[y0:y0 + size, x0:x0 + size])).astype(np.float32)
        wht = native(np.asarray(weight[y0:y0 + size, x0:x0 + size])).astype(np.float32)
        covered = np.isfinite(wht) & (wht > 0)
        bad_pixels = covered & ~np.isfinite(img)
        if bad_pixels.any():
            yy, xx = np.nonzero(bad_pixels)
            raise InputError(
                f"{image_name}: {int(bad_pixels.sum())} NaN/inf pixels inside the covered area near "
                f"x={x0 + xx.min()}..{x0 + xx.max()}, y={y0 + yy.min()}..{y0 + yy.max()} (0-based)"
            )
        if (~covered).mean() > max_missing_fraction:
            dropped.append((gid, "missing_data"))
            continue
        img[~covered] = 0.0
        wht[~covered] = 0.0
        images.append(img)
        weights.append(wht)
        kept.append(k)
    out = catalog.iloc[kept].copy()
    out["x"], out["y"] = x[kept], y[kept]
    # Stamp WCS = mosaic WCS with the reference pixel moved (FITS 1-based convention).
    out["crpix1"] = wcs.wcs.crpix[0] - (ix[kept] - half)
    out["crpix2"] = wcs.wcs.crpix[1] - (iy[kept] - half)
    shape = (0, size, size)
    return StampSet(
        images=np.stack(images) if images else np.zeros(shape, np.float32),
        weights=np.stack(weights) if weights else np.zeros(shape, np.float32),
        catalog=out.reset_index(drop=True),
        dropped=pd.DataFrame(dropped, columns=["gid", "reason"]),
    )
