"""Photometry: the one way every stage measures a galaxy on an image, and magnitudes.

The isolated galaxies' ground truth (the clean stage), the sep baseline on the blends and any
later method that measures images all call :func:`kron_photometry`, so that a difference
between two of them is a difference of what they see, never of how they measure.

FLUX_AUTO as SExtractor measures it (Bertin & Arnouts 1996):

1. ``background``, a level, is subtracted (:func:`background_level`: the median of the pixels
   far from every segment);
2. pixels of *other* segments are replaced by the pixel mirrored through the object's centre
   pixel,
   or by 0 when that one is another object's too or off the image (SExtractor's
   ``MASK_TYPE = CORRECT``; photutils' ``aperture_mask_method='correct'``);
3. the first-moment Kron radius k = Σ r I / Σ I over the pixels within the ellipse of 6× the
   object's isophotal shape (r: elliptical radius in units of that shape);
4. the flux inside the ellipse of ``KRON_FACTOR`` × k; when k√(ab) < ``KRON_MIN_RADIUS`` px (a
   tiny or noise-dominated object), inside a circle of that radius instead.

Magnitudes: ``mag = zeropoint - 2.5 log10(flux)`` (:func:`flux_to_mag`), NaN for a flux that
is missing or not positive; Δmag of a flux against a reference: :func:`delta_mag`.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "INTERVAL_K",
    "KRON_FACTOR",
    "KRON_MIN_RADIUS",
    "KRON_MOMENT_SCALE",
    "LAPLACE_68",
    "background_level",
    "binned_s68",
    "border_noise",
    "correct_neighbours",
    "delta_mag",
    "fit_binned_s68",
    "flux_to_mag",
    "interval_halfwidth",
    "kron_photometry",
    "laplace_pit",
    "log_flux_z",
    "mag_to_flux",
    "pair_mag_diff",
]

KRON_FACTOR = 2.5  # SExtractor's PHOT_AUTOPARAMS, first value
KRON_MIN_RADIUS = 1.75  # pixels: SExtractor's minimum diameter of 3.5 px
KRON_MOMENT_SCALE = 6.0  # the Kron radius is measured within 6x the isophotal ellipse
_SUBPIX = 5  # SExtractor's sub-pixel sampling of aperture edges
# Flux uncertainties: ln F follows a Laplace distribution (the networks' errors have heavier
# tails than a Gaussian's: bench/bench_science.py), and flux_err / flux = s68 is the
# half-width of its central 68 % interval. A Laplace's 68 % half-width is ln(1/0.32) scales.
LAPLACE_68 = 1.1394343


def interval_halfwidth(p: float) -> float:
    """Half-width of the central interval holding ``p`` of a Laplace, in units of its 68 % half-width."""
    return float(-np.log1p(-p) / LAPLACE_68)


def laplace_pit(z):
    """The Laplace CDF of ``z`` = (ln F_true − ln F) / s68: uniform on [0, 1] when the
    uncertainties are right (the probability integral transform)."""
    x = np.asarray(z, float) * LAPLACE_68
    return np.where(x < 0, 0.5 * np.exp(np.minimum(x, 0)), 1 - 0.5 * np.exp(-np.maximum(x, 0)))


INTERVAL_K = {68: 1.0, 95: interval_halfwidth(0.95)}  # in units of s68: 1 and 2.629


def log_flux_z(flux, flux_err, reference) -> np.ndarray:
    """z = (ln reference − ln flux) / s68, s68 = flux_err / flux: a flux's error in units of
    its uncertainty (``|z| <= INTERVAL_K[p]`` inside the central p % interval); NaN where a
    flux, uncertainty or reference is missing or not positive."""
    flux, flux_err, reference = (np.asarray(a, float) for a in (flux, flux_err, reference))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log(reference / flux) / (flux_err / flux)
    return np.where((flux > 0) & (flux_err > 0) & (reference > 0) & np.isfinite(z), z, np.nan)


def border_noise(images: np.ndarray, *, sample: int = 2000, border: int = 8) -> float:
    """Robust background noise (e-/s) of stamps from their borders: 1.4826 × the median
    absolute deviation of the border pixels of up to ``sample`` (N, S, S) stamps; galaxies
    touching the border barely move the median (the lower median of an even count)."""
    x = np.asarray(images[:sample], dtype=np.float32)
    edge = np.concatenate([x[:, :border].ravel(), x[:, -border:].ravel(), x[:, border:-border, :border].ravel(),
                           x[:, border:-border, -border:].ravel()]).astype(np.float64)

    def lower_median(a: np.ndarray) -> float:
        return np.partition(a, (a.size - 1) // 2)[(a.size - 1) // 2]

    return float(1.4826 * lower_median(np.abs(edge - lower_median(edge))))


def pair_mag_diff(fluxes) -> np.ndarray:
    """(N, 2) fluxes of the central and companion galaxies -> (N, 2) mag_self − mag_other of
    each (NaN where either flux is missing or not positive)."""
    f = np.asarray(fluxes, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((f > 0).all(axis=1), np.log10(f[:, 0] / f[:, 1]), np.nan)
    return np.stack([-2.5 * ratio, 2.5 * ratio], axis=1)


def fit_binned_s68(fluxes, true, *, n_bins: int = 5) -> tuple[list[float], list[float]]:
    """The flux uncertainty of a method without its own, from its errors on known blends:
    the half-width s68 of the central 68 % interval of ln F, per bin of the predicted
    mag_self − mag_other (``n_bins`` bins of equal counts; a galaxy fainter than its companion
    is measured worse). ``fluxes`` and ``true``: (N, 2) central and companion fluxes. Returns
    (the bins' inner edges, their s68 and, last, the s68 of every galaxy together: for a
    galaxy whose companion has no flux)."""
    f, t = np.asarray(fluxes, float), np.asarray(true, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(np.log(t / f)).ravel()
    dm = pair_mag_diff(f).ravel()
    ok = np.isfinite(err)
    if ok.sum() < 10 * n_bins:
        raise ValueError(f"{ok.sum()} galaxies with a flux: too few to calibrate {n_bins} bins of uncertainty")
    binned = ok & np.isfinite(dm)
    edges = np.quantile(dm[binned], np.linspace(0, 1, n_bins + 1)[1:-1])
    which = np.digitize(dm[binned], edges)
    s68 = [float(np.quantile(err[binned][which == b], 0.68)) for b in range(n_bins)]
    return [float(e) for e in edges], [*s68, float(np.quantile(err[ok], 0.68))]


def binned_s68(fluxes, edges, s68) -> np.ndarray:
    """(N, 2) flux uncertainties (1σ-equivalent, flux × s68) of (N, 2) fluxes from the table of
    :func:`fit_binned_s68`; NaN where a flux is missing."""
    f = np.asarray(fluxes, float)
    dm = pair_mag_diff(f)
    table = np.asarray(s68, float)
    width = np.where(np.isfinite(dm), table[np.digitize(np.nan_to_num(dm), np.asarray(edges, float))], table[-1])
    return np.where(np.isfinite(f) & (f > 0), f * width, np.nan)


def flux_to_mag(flux, zeropoint: float):
    """AB magnitude of a flux; NaN where the flux is NaN or not positive."""
    flux = np.asarray(flux, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux > 0, zeropoint - 2.5 * np.log10(np.where(flux > 0, flux, 1.0)), np.nan)


def mag_to_flux(mag, zeropoint: float):
    """Flux of an AB magnitude (the inverse of :func:`flux_to_mag`)."""
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=float) - zeropoint))


def delta_mag(flux, reference):
    """Δmag = -2.5 log10(flux / reference); NaN where ``flux`` is NaN or not positive."""
    return flux_to_mag(flux, 0.0) - flux_to_mag(reference, 0.0)


def background_level(data: np.ndarray, seg: np.ndarray, *, grow: int = 6, valid: np.ndarray | None = None,
                     min_pixels: int = 50) -> float:
    """The median of the pixels farther than ``grow`` px from every segment (``valid`` ones
    only); the undilated background when that leaves fewer than ``min_pixels``; 0 when even
    that does."""
    from scipy.ndimage import binary_dilation
    from skimage.morphology import disk

    valid = np.isfinite(data) if valid is None else valid & np.isfinite(data)
    sources = seg > 0
    for mask in (binary_dilation(sources, structure=disk(grow)) if grow > 0 else sources, sources):
        pool = data[valid & ~mask]
        if pool.size >= min_pixels:
            return float(np.median(pool))
    return 0.0


def correct_neighbours(data: np.ndarray, seg: np.ndarray, label: int, x: float, y: float) -> np.ndarray:
    """A copy of ``data`` where the pixels of segments other than ``label`` hold the pixel
    mirrored through the pixel that holds (x, y), or 0 where that one is off the image or another segment's too."""
    out = np.array(data, dtype=np.float64)
    others = (seg > 0) & (seg != label)
    yy, xx = np.nonzero(others)
    if not len(yy):
        return out
    cy, cx = int(np.floor(y + 0.5)), int(np.floor(x + 0.5))  # through the pixel holding the centre
    my, mx = 2 * cy - yy, 2 * cx - xx
    inside = (my >= 0) & (my < data.shape[0]) & (mx >= 0) & (mx < data.shape[1])
    fill = np.zeros(len(yy))
    ok = np.flatnonzero(inside)
    ok = ok[~others[my[ok], mx[ok]]]
    fill[ok] = out[my[ok], mx[ok]]
    out[yy, xx] = fill
    return out


def kron_photometry(data: np.ndarray, seg: np.ndarray, objects, labels, *, background: float = 0.0,
                    err: float | None = None) -> dict[str, np.ndarray]:
    """FLUX_AUTO of the objects ``labels`` (see the module docstring).

    Parameters
    ----------
    data : (H, W) image, e-/s; NaN pixels count as 0
    seg : (H, W) integer segmentation, 0 the background, object k labelled ``labels[k]``
    objects : per object, the fields x, y, a, b, theta of its isophotal shape (a sep
        object array, or a mapping of equal-length arrays)
    labels : the segment label of each object
    background : the level subtracted first
    err : the per-pixel noise σ, for ``flux_err``

    Returns
    -------
    dict of arrays, one value per object: ``flux``, ``flux_err`` (NaN without ``err``),
    ``kron_radius`` (in units of the shape, before the factor), ``circular`` (the minimum
    circle was used) and ``flag`` (sep's aperture flags).
    """
    import sep

    labels = np.atleast_1d(np.asarray(labels, dtype=np.int64))
    n = len(labels)
    shape = {k: np.atleast_1d(np.asarray(objects[k], dtype=float)) for k in ("x", "y", "a", "b", "theta")}
    base = np.nan_to_num(np.asarray(data, dtype=np.float64) - background, nan=0.0, posinf=0.0, neginf=0.0)
    out = {"flux": np.full(n, np.nan), "flux_err": np.full(n, np.nan), "kron_radius": np.full(n, np.nan),
           "circular": np.zeros(n, bool), "flag": np.zeros(n, np.int64)}
    for k in range(n):
        x, y, a, b, theta = (shape[key][k:k + 1] for key in ("x", "y", "a", "b", "theta"))
        image = correct_neighbours(base, seg, int(labels[k]), float(x[0]), float(y[0]))
        kron, kflag = sep.kron_radius(image, x, y, a, b, theta, KRON_MOMENT_SCALE)
        circular = not (kron[0] * np.sqrt(a[0] * b[0]) >= KRON_MIN_RADIUS)  # also a NaN radius
        if circular:
            flux, ferr, flag = sep.sum_circle(image, x, y, KRON_MIN_RADIUS, err=err, subpix=_SUBPIX)
        else:
            flux, ferr, flag = sep.sum_ellipse(image, x, y, a, b, theta, KRON_FACTOR * kron, err=err,
                                               subpix=_SUBPIX)
        out["flux"][k], out["kron_radius"][k], out["circular"][k] = flux[0], kron[0], circular
        out["flux_err"][k] = ferr[0] if err is not None else np.nan
        out["flag"][k] = int(flag[0]) | int(kflag[0])
    return out
