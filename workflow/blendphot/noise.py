"""The pixel noise of a drizzled HST mosaic.

CANDELS mosaics are drizzled from WFC3/IR's native 0.128" pixels onto 0.06" pixels with a
drop size (``pixfrac``) of 0.8 native pixels (Koekemoer et al. 2011, ApJS 197, 36). With many
sub-pixel dithers, the sky noise of the mosaic is white noise on the sky smoothed by the drop
(a box ``pixfrac`` native pixels wide) and by the output pixel (a box one pixel wide). Its
covariance is separable, ``C(dx, dy) = c(dx) c(dy)``, with ``c`` the autocorrelation of the
two boxes' convolution sampled at whole output pixels. For CANDELS' numbers neighbouring
pixels correlate at 0.52, pixels two apart at 0.04, and the noise of a large aperture is
``R = 2.12`` times what the per-pixel rms predicts for white noise: the ratio of Fruchter &
Hook (2002, PASP 114, 144; Casertano et al. 2000), which this model reproduces exactly.

The weight map of a drizzled mosaic is the inverse of the per-pixel variance, as here: it
underestimates the variance of sums over many pixels by ``R**2``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["aperture_noise_ratio", "correlated_noise", "drizzle_correlation", "mosaic_correlation", "noise_kernel"]

_FINE = 200  # samples per output pixel of the numerical box convolutions (error < 1e-4)


@lru_cache(maxsize=16)
def drizzle_correlation(drop_px: float) -> tuple[float, ...]:
    """The 1-D correlation of drizzled noise at lags 0, 1, 2, ... output pixels (1 at lag 0;
    zero from lag ceil(drop_px + 1) on), for a drop ``drop_px`` output pixels wide (pixfrac x
    native pixel / output pixel)."""
    if not drop_px > 0:
        raise ValueError(f"the drop must be wider than 0 output pixels, not {drop_px}")
    half = int(np.ceil(drop_px + 1)) + 1
    x = np.arange(-half * _FINE, half * _FINE + 1) / _FINE

    def box(width):  # the fraction of each fine cell inside the box: its area exact
        return np.clip((width / 2 - np.abs(x)) * _FINE + 0.5, 0, 1)

    response = np.convolve(box(drop_px), box(1.0), mode="same")  # drop * output pixel
    acf = np.correlate(response, response, mode="same")
    lags = np.arange(int(np.ceil(drop_px + 1)) + 1)
    values = np.interp(lags, x, acf)
    return tuple(float(v) for v in values / values[0])


def mosaic_correlation(drizzle: dict | bool | None, pixel_scale: float) -> tuple[float, ...] | None:
    """The noise correlation of a mosaic of ``pixel_scale`` arcsec drizzled as ``drizzle``
    (``{native_pixel, pixfrac}``, arcsec and native pixels), or None for white noise
    (``drizzle`` false or None)."""
    if not drizzle:
        return None
    return drizzle_correlation(drizzle["pixfrac"] * drizzle["native_pixel"] / pixel_scale)


def aperture_noise_ratio(correlation: tuple[float, ...] | None) -> float:
    """Noise in a large aperture over the white-noise expectation from the per-pixel rms: the
    square root of the 2-D covariance's sum, i.e. the 1-D correlation's sum (1 for white noise)."""
    if correlation is None:
        return 1.0
    c = np.asarray(correlation)
    return float(c[0] + 2 * c[1:].sum())


@lru_cache(maxsize=16)
def noise_kernel(correlation: tuple[float, ...]) -> np.ndarray:
    """A symmetric 1-D kernel of unit norm whose autocorrelation is ``correlation``: white noise
    filtered by it along both axes has unit variance and the separable covariance.
    (The square root of the noise's power spectrum, back in pixel space.)"""
    c = np.asarray(correlation)
    n = 256
    omega = 2 * np.pi * np.fft.rfftfreq(n)
    power = c[0] + 2 * sum(ck * np.cos(k * omega) for k, ck in enumerate(c[1:], start=1))
    if power.min() < -1e-9:
        raise ValueError(f"correlation {tuple(c)} is not a valid covariance (negative power)")
    if len(c) >= n // 4:
        raise ValueError(f"correlation longer than {n // 4} lags")
    kernel = np.fft.fftshift(np.fft.irfft(np.sqrt(np.clip(power, 0, None)), n))
    keep = np.flatnonzero(np.abs(kernel) > 1e-4 * np.abs(kernel).max())  # covariance error ~1e-4
    half = max(n // 2 - keep[0], keep[-1] - n // 2)
    kernel = kernel[n // 2 - half:n // 2 + half + 1]
    kernel = kernel / np.sqrt(np.sum(kernel**2))
    kernel.flags.writeable = False  # cached: shared by every caller
    return kernel


def correlated_noise(rng: np.random.Generator, shape: tuple[int, int],
                     correlation: tuple[float, ...] | None) -> np.ndarray:
    """Unit-variance Gaussian noise of ``shape`` (float32) with the separable covariance of
    ``correlation`` (None: white), periodic across the array's edges."""
    from scipy import ndimage

    noise = rng.standard_normal(shape, dtype=np.float32)
    if correlation is None or len(correlation) == 1:
        return noise
    kernel = noise_kernel(tuple(correlation)).astype(np.float32)
    noise = ndimage.correlate1d(noise, kernel, axis=0, mode="wrap")
    return ndimage.correlate1d(noise, kernel, axis=1, mode="wrap")
