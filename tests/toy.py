"""A toy blend problem with known answers: two circular Gaussian blobs of known flux."""
import numpy as np
import pandas as pd

from blendphot.blend import Blends, FreshBlends

# The blending rule of the toy pools: candels_blender with shifts that fit 32 x 32 stamps.
TOY_RULE = {"rule": "candels_blender", "max_mag_diff": 2.0, "min_shift_re": 0.5, "max_shift": 12}


def toy_blends(n: int, *, size: int = 32, seed: int = 0, noise: float = 0.05, sigma_px: float = 2.0) -> Blends:
    """``n`` blends: a central blob and a companion 4-10 px away, fluxes log-uniform in [10, 100].

    The masks are the pixels where each blob exceeds 1 % of its peak; the central galaxy's
    isolated image is its blob plus half the noise (the companion's is the rest).
    """
    rng = np.random.default_rng(seed)
    flux = 10 ** rng.uniform(1, 2, size=(n, 2))
    angle = rng.uniform(0, 2 * np.pi, n)
    dist = rng.uniform(4, 10, n)
    c = (size - 1) / 2
    centres = np.stack([np.full(n, c), np.full(n, c), c + dist * np.cos(angle), c + dist * np.sin(angle)], axis=1)
    yy, xx = np.mgrid[:size, :size]
    images = rng.normal(0, noise, size=(n, size, size))
    masks = np.zeros((n, 2, size, size), np.uint8)
    central = 0.5 * images
    for k in range(2):
        x0, y0 = centres[:, 2 * k, None, None], centres[:, 2 * k + 1, None, None]
        profile = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma_px ** 2))
        images += flux[:, k, None, None] * profile / (2 * np.pi * sigma_px ** 2)
        if k == 0:
            central += flux[:, 0, None, None] * profile / (2 * np.pi * sigma_px ** 2)
        masks[:, k] = profile > 0.01
    catalog = pd.DataFrame({"blend_id": np.arange(n), "cen_flux": flux[:, 0], "comp_flux": flux[:, 1]})
    return Blends(images=images.astype(np.float32), masks=masks, catalog=catalog, source="toy blends",
                  central=central.astype(np.float32))


def toy_pool(n: int, *, size: int = 32, seed: int = 0, noise: float = 0.05, pixel_scale: float = 0.06):
    """``n`` isolated galaxies for the blender: (images, masks, pool catalogue).

    Elliptical Gaussian blobs on the centre pixel (size // 2), fluxes log-uniform in
    [10, 100], sigma 1.5-3 px; masks where a blob exceeds 1 % of its peak. The catalogue has
    the columns the blend stage needs (gid, cls, mag_auto, flux_auto, re_arcsec, flux_true).
    """
    rng = np.random.default_rng(seed)
    flux = 10 ** rng.uniform(1, 2, n)
    sigma = rng.uniform(1.5, 3.0, n)
    q = rng.uniform(0.4, 1.0, n)
    c = size // 2
    yy, xx = np.mgrid[:size, :size] - c
    profile = np.exp(-(xx ** 2 + (yy[None] / q[:, None, None]) ** 2) / (2 * sigma[:, None, None] ** 2))
    profile /= profile.sum(axis=(1, 2), keepdims=True)
    images = (flux[:, None, None] * profile + rng.normal(0, noise, (n, size, size))).astype(np.float32)
    masks = (profile > 0.01 * profile.max(axis=(1, 2), keepdims=True)).astype(np.uint8)
    pool = pd.DataFrame({"gid": [f"g{seed}_{i}" for i in range(n)], "cls": "disk",
                         "mag_auto": 25.0 - 2.5 * np.log10(flux), "flux_auto": flux * 0.95,
                         "re_arcsec": 1.1774 * sigma * pixel_scale, "flux_true": flux})
    return images, masks, pool


def toy_fresh_blends(n: int = 64, *, seed: int = 11, pool_seed: int = 0, **kw) -> FreshBlends:
    """``n`` blends drawn afresh every epoch from a toy pool of 40 galaxies (:func:`toy_pool`)."""
    images, masks, pool = toy_pool(40, seed=pool_seed)
    return FreshBlends(images, masks, pool, n, settings=TOY_RULE, pixel_scale=0.06, seed=seed, **kw)
