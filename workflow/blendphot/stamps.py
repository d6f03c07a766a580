"""Cutouts (paper §2.1): square stamps of image and weight around each selected galaxy.

Mosaics are read one stamp window at a time (positional reads), so a 40 500 x 32 400 CANDELS
mosaic is never loaded whole and the stage's memory stays bounded by its stamps.
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

__all__ = ["Stamps", "WindowReader", "cut_stamps", "open_mosaic", "run_cut_stamps"]


@dataclass
class Stamps:
    """The stamps stage's product for one field, one folder (``results/stamps/<field>/``).

    images, weights : (N, S, S) float32, e-/s and inverse variance (0 = no data)
    catalog : the selected rows kept, plus where they were cut (mosaics: x, y, crpix1, crpix2;
        a stamp set: noise_sigma)
    dropped : gid and reason of every stamp left out
    segmentation : (N, S, S) int32, a stamp set's own maps (None for stamps cut from mosaics)
    """

    images: np.ndarray
    weights: np.ndarray
    catalog: pd.DataFrame
    dropped: pd.DataFrame
    segmentation: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.catalog)
        for name in ("images", "weights", "segmentation"):
            array = getattr(self, name)
            if array is not None and (array.ndim != 3 or array.shape[0] != n):
                raise InputError(f"stamps: {name} of shape {array.shape} do not match the {n} catalogue rows")

    def save(self, directory: str | os.PathLike) -> None:
        """images.npy, weights.npy, catalog.csv, dropped.csv (and segmentation.npy)."""
        from pathlib import Path

        from blendphot import io

        d = Path(directory)
        io.save_array(d / "images.npy", self.images)
        io.save_array(d / "weights.npy", self.weights)
        if self.segmentation is not None:
            io.save_array(d / "segmentation.npy", self.segmentation)
        io.write_csv(d / "catalog.csv", self.catalog)
        io.write_csv(d / "dropped.csv", self.dropped)

    @classmethod
    def load(cls, directory: str | os.PathLike, *, segmentation: bool = False) -> Stamps:
        """Read a stamps folder into memory (``segmentation``: a stamp set's maps too)."""
        from pathlib import Path

        from blendphot import io

        d = Path(directory)
        return cls(images=io.load_array(d / "images.npy", mmap=False),
                   weights=io.load_array(d / "weights.npy", mmap=False),
                   catalog=io.read_csv(d / "catalog.csv", required=["gid"]), dropped=io.read_csv(d / "dropped.csv"),
                   segmentation=io.load_array(d / "segmentation.npy", mmap=False) if segmentation else None)


_BITPIX = {-32: ">f4", -64: ">f8", 8: "u1", 16: ">i2", 32: ">i4", 64: ">i8"}


class WindowReader:
    """A 2-D FITS image read one window at a time with positional reads.

    Memory stays bounded by the windows asked for: a memory map would do the same in principle,
    but the kernel's read-around maps whole neighbouring rows of a 40 000-pixel-wide mosaic
    into the process on every page fault, and cutting 2000 stamps then makes the entire
    5 GB file resident (measured: bench/bench_cut_stamps.py). Supports ``shape``, ``dtype``
    and ``reader[y0:y1, x0:x1]`` (big-endian array, as in the file).
    """

    def __init__(self, path: str | os.PathLike, offset: int, shape: tuple[int, int], dtype: str, *,
                 bscale: float = 1.0, bzero: float = 0.0, blank: int | None = None):
        self.shape, self._raw, self._offset, self._path = shape, np.dtype(dtype), offset, path
        self._scale = (bscale, bzero, blank) if (bscale, bzero, blank) != (1.0, 0.0, None) else None
        self.dtype = self._raw if self._scale is None else np.dtype(np.float64)
        self._fd = os.open(path, os.O_RDONLY)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)  # no read-ahead of unused rows

    def __getitem__(self, key):
        ys, xs = key
        (y0, y1, _), (x0, x1, _) = ys.indices(self.shape[0]), xs.indices(self.shape[1])
        out = np.empty((max(y1 - y0, 0), max(x1 - x0, 0)), self._raw)
        size, row = self._raw.itemsize, self.shape[1] * self._raw.itemsize
        for i, y in enumerate(range(y0, y1)):
            buf = os.pread(self._fd, out.shape[1] * size, self._offset + y * row + x0 * size)
            if len(buf) != out.shape[1] * size:
                raise InputError(f"{self._path}: the file ends before its image data does (truncated?)")
            out[i] = np.frombuffer(buf, self._raw)
        if self._scale is None:
            return out
        bscale, bzero, blank = self._scale
        scaled = bzero + bscale * out.astype(np.float64)
        if blank is not None:
            scaled[out == blank] = np.nan
        return scaled

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_mosaic(path: str | os.PathLike):
    """Open a FITS mosaic for cutting, without reading it whole.

    Returns (handle, data, wcs); use ``handle`` as a context manager (or close it). For an
    uncompressed image (the CANDELS mosaics) ``data`` is a :class:`WindowReader`, its own
    handle; for a compressed one, what astropy gives (decompressed whole), ``handle`` the file.
    """
    from astropy.io import fits
    from astropy.wcs import WCS

    try:
        hdul = fits.open(path, memmap=True)
        index = next((i for i, h in enumerate(hdul) if h.is_image and h.header.get("NAXIS") == 2), None)
        if index is None:
            hdul.close()
            raise InputError(f"{path}: no 2-D image HDU found")
        hdu = hdul[index]
        header, wcs = hdu.header, WCS(hdu.header)
        plain = (type(hdu) in (fits.PrimaryHDU, fits.ImageHDU) and header.get("BITPIX") in _BITPIX
                 and not getattr(hdul._file, "compression", None))
        if not plain:
            return hdul, hdu.data, wcs
        offset = hdul.fileinfo(index)["datLoc"]
        hdul.close()  # astropy is needed for the header only
        shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
        expected = offset + shape[0] * shape[1] * abs(header["BITPIX"]) // 8
        if os.path.getsize(path) < expected:
            raise InputError(f"{path}: {os.path.getsize(path)} bytes, but its {shape[1]} x {shape[0]} image needs "
                             f"{expected}: the file is truncated (a cut download?)")
        reader = WindowReader(path, offset, shape, _BITPIX[header["BITPIX"]], bscale=float(header.get("BSCALE", 1)),
                              bzero=float(header.get("BZERO", 0)),
                              blank=header.get("BLANK") if header["BITPIX"] > 0 else None)
        return reader, reader, wcs
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except Exception as exc:
        raise InputError(f"{path}: not a readable FITS image ({type(exc).__name__}: {exc})") from exc


def cut_stamps(image: np.ndarray, weight: np.ndarray, wcs, catalog: pd.DataFrame, *, size: int,
               max_missing_fraction: float = 0.0, image_name: str = "image", weight_name: str = "weight",
               pixels: bool = False) -> Stamps:
    """Cut ``size`` x ``size`` stamps centred on each catalogue position (``ra``, ``dec``; or
    0-based pixel ``x``, ``y`` with ``pixels``).

    The galaxy lands on pixel ``(size // 2, size // 2)`` of its stamp (to within half a
    pixel); ``crpix1/2`` give the stamp's WCS reference pixel so its WCS can be rebuilt.
    """
    if image.shape != weight.shape:
        raise InputError(f"{weight_name}: weight map of shape {weight.shape}, but {image_name} is {image.shape}")
    if pixels:
        x, y = catalog["x"].to_numpy(float), catalog["y"].to_numpy(float)
    else:
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
    return Stamps(
        images=np.stack(images) if images else np.zeros(shape, np.float32),
        weights=np.stack(weights) if weights else np.zeros(shape, np.float32),
        catalog=out.reset_index(drop=True),
        dropped=pd.DataFrame(dropped, columns=["gid", "reason"]),
    )


def run_cut_stamps(image_path, weight_path, selected_path, out_dir, *, field: str, settings: dict) -> Stamps:
    """The cut_stamps stage: the stamps of one field's selected galaxies, cut window by window
    from its mosaic and weight map (``settings``: the config's ``stamps``). A field that
    matches no selected galaxy is an error naming the catalogue's fields."""
    from blendphot import io

    selected = io.read_csv(selected_path, required=["gid", "field", "ra", "dec"])
    catalog = selected[selected["field"].astype(str) == field].reset_index(drop=True)
    if not len(catalog):
        raise InputError(f"field {field!r} (config key survey.candels.fields.{field}) matches no selected galaxy of "
                         f"{selected_path}: its FIELD values are {sorted(selected['field'].astype(str).unique())}")
    image_handle, image, wcs = open_mosaic(image_path)
    weight_handle, weight, _ = open_mosaic(weight_path)
    with image_handle, weight_handle:
        stamps = cut_stamps(image, weight, wcs, catalog, size=settings["size"],
                            max_missing_fraction=settings["max_missing_fraction"], image_name=str(image_path),
                            weight_name=str(weight_path))
    stamps.save(out_dir)
    return stamps
