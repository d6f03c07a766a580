"""A CANDELS-like F160W mock survey generated offline with GalSim.

One field is a mosaic in e-/s at 0.06"/px with a TAN WCS, background noise correlated as a
drizzled mosaic's (:mod:`blendphot.noise`), an inverse-variance weight map (zero outside a
rotated footprint), a PSF image, a CANDELS-style photometric catalogue, a
Dimauro-2018-style morphology catalogue whose class probabilities are noisy functions of the
true class, and the generator's truth (true flux, class, position, structure).

Populations
-----------
* catalogued galaxies (``mag_bright`` range): bulges (Sérsic n ~ 4), discs (exponential,
  random inclinations), bulge+disc composites (B/T 0.2-0.8), irregular/clumpy galaxies
  (GalSim ``RandomKnots`` on a smooth exponential) and ambiguous two-component objects;
* faint neighbours (``mag_faint`` range), uniform and as satellites around catalogued galaxies;
* stars (point sources).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from blendphot.noise import aperture_noise_ratio, correlated_noise, mosaic_correlation
from blendphot.photometry import mag_to_flux
from blendphot.population import assign_classes, draw_structure, read_structure_catalog

__all__ = [
    "CLASSES",
    "MockField",
    "MockSurvey",
    "draw_population",
    "footprint_mask",
    "generate_field",
    "make_catalogs",
    "make_psf",
    "render_field",
    "run_make_mock_field",
]

CLASSES = ("bulge", "disk", "bulge_disk", "irregular", "ambiguous")

# Nominal morphology probabilities (F_SPH, F_DISK, F_IRR) per true class. Irregulars are
# disky (Huertas-Company et al. 2015); ambiguous objects sit in the middle of every axis.
_NOMINAL_P = {
    "bulge": (0.90, 0.07, 0.04),
    "disk": (0.06, 0.90, 0.08),
    "bulge_disk": (0.90, 0.90, 0.04),
    "irregular": (0.05, 0.55, 0.90),
    "ambiguous": (0.50, 0.50, 0.50),
}
# log10 of the semi-major effective radius (arcsec) at mag 22, per class; slope per mag.
_LOG_RE22 = {"bulge": -0.58, "disk": -0.36, "bulge_disk": -0.42, "irregular": -0.36, "ambiguous": -0.45}
_RE_SLOPE = -0.10
_RE_SCATTER = 0.17
_SERSIC_N = np.array([3.0, 3.5, 4.0, 4.5, 5.0])  # quantised: GalSim caches one table per n
# The empirical population gives classes by Sérsic index: discs and irregulars the lowest,
# bulge+disc and ambiguous objects the middle, bulges the highest (population.assign_classes).
CLASS_RANK = {"disk": 0, "irregular": 0, "bulge_disk": 1, "ambiguous": 1, "bulge": 2}


@dataclass(frozen=True)
class MockField:
    """One mock mosaic: name, tangent point (deg) and size (pixels)."""

    name: str
    ra: float
    dec: float
    nx: int
    ny: int


@dataclass
class MockSurvey:
    """Everything the generator makes for one field."""

    image: np.ndarray  # (ny, nx) float32, e-/s
    weight: np.ndarray  # (ny, nx) float32, inverse variance (e-/s)^-2, 0 = no data
    psf: np.ndarray  # (n, n) float32, unit sum
    header: astropy.io.fits.Header  # noqa: F821
    truth: pd.DataFrame
    photometry: pd.DataFrame
    morphology: pd.DataFrame


def _wcs(field: MockField, pixel_scale: float):
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [field.ra, field.dec]
    wcs.wcs.crpix = [(field.nx + 1) / 2, (field.ny + 1) / 2]
    wcs.wcs.cdelt = [-pixel_scale / 3600.0, pixel_scale / 3600.0]
    wcs.wcs.cunit = ["deg", "deg"]
    return wcs


def footprint_mask(nx: int, ny: int, angle_deg: float, margin: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Observed footprint (a rotated square) and its deep stripe, as boolean (ny, nx) arrays."""
    theta = np.deg2rad(angle_deg)
    c, s = abs(np.cos(theta)), abs(np.sin(theta))
    side = (min(nx, ny) - 2 * margin) / (c + s)
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float32)
    x -= (nx - 1) / 2
    y -= (ny - 1) / 2
    u = x * np.cos(theta) + y * np.sin(theta)
    v = -x * np.sin(theta) + y * np.cos(theta)
    inside = (np.abs(u) < side / 2) & (np.abs(v) < side / 2)
    deep = inside & (np.abs(u) < side / 6)
    return inside, deep


def _truncated_counts(rng, n: int, lo: float, hi: float, slope: float) -> np.ndarray:
    """Magnitudes with dN/dm ~ 10**(slope m) on [lo, hi] by inverse transform."""
    a, b = 10 ** (slope * lo), 10 ** (slope * hi)
    return np.log10(a + rng.random(n) * (b - a)) / slope


def _inclined_q(rng, n: int, q0: float = 0.2) -> np.ndarray:
    cos_i = rng.random(n)
    return np.sqrt((1 - q0**2) * cos_i**2 + q0**2)


def draw_population(rng: np.random.Generator, field: MockField, params: dict, *, pixel_scale: float,
                    zeropoint: float, footprint: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """Draw every object of one field: positions, classes, magnitudes and structure.

    ``footprint`` is :func:`footprint_mask`'s result, computed when not given.
    Returns the truth table (one row per object, ``x``/``y`` in 0-based pixels).
    """
    inside, _ = footprint or footprint_mask(field.nx, field.ny, params["footprint_angle"])
    ys, xs = np.nonzero(inside[::8, ::8])  # coarse grid for uniform positions in the footprint
    area = inside.sum() * (pixel_scale / 60.0) ** 2  # arcmin^2

    def positions(n):
        k = rng.integers(0, len(xs), n)
        return xs[k] * 8 + rng.random(n) * 8, ys[k] * 8 + rng.random(n) * 8

    empirical = params.get("population", "generator") == "empirical"
    catalog = read_structure_catalog(params.get("structure_catalog")) if empirical else None
    n_bright = rng.poisson(params["density_bright"] * area)
    classes = np.array(list(params["class_fractions"]))
    probs = np.array([params["class_fractions"][c] for c in classes], dtype=float)
    bright = pd.DataFrame({"kind": "galaxy", "cls": rng.choice(classes, n_bright, p=probs / probs.sum())})
    if empirical:  # magnitude and structure together from one catalogue galaxy; class follows n
        structure = draw_structure(rng, catalog, n=n_bright, mag_range=tuple(params["mag_bright"]))
        bright["mag"] = structure["mag"].to_numpy()
        bright["cls"] = assign_classes(rng, bright["cls"].to_numpy(), structure["n"].to_numpy(), CLASS_RANK)
    else:
        bright["mag"] = _truncated_counts(rng, n_bright, *params["mag_bright"], params["count_slope"])
    bright["x"], bright["y"] = positions(n_bright)

    # Faint neighbours: uniform, plus satellites within 0.6-4 arcsec of catalogued galaxies.
    n_faint = rng.poisson(params["density_faint"] * area)
    n_sat = rng.poisson(params["satellites_per_galaxy"], n_bright)
    host = np.repeat(np.arange(n_bright), n_sat)
    r = rng.uniform(0.6, 4.0, len(host)) / pixel_scale
    phi = rng.uniform(0, 2 * np.pi, len(host))
    fx, fy = positions(n_faint)
    faint = pd.DataFrame({
        "kind": "galaxy", "cls": "faint",
        "x": np.concatenate([fx, bright["x"].to_numpy()[host] + r * np.cos(phi)]),
        "y": np.concatenate([fy, bright["y"].to_numpy()[host] + r * np.sin(phi)]),
    })
    faint["mag"] = _truncated_counts(rng, len(faint), *params["mag_faint"], params["count_slope"])

    n_star = rng.poisson(params["density_stars"] * area)
    sx, sy = positions(n_star)
    stars = pd.DataFrame({"kind": "star", "cls": "star", "x": sx, "y": sy, "mag": rng.uniform(17.5, 25.0, n_star)})

    truth = pd.concat([bright, faint, stars], ignore_index=True)
    keep = (truth.x > -20) & (truth.x < field.nx + 20) & (truth.y > -20) & (truth.y < field.ny + 20)
    bright_kept = np.flatnonzero(keep.to_numpy()[:n_bright])  # rows of ``structure`` still in the truth
    truth = truth[keep].reset_index(drop=True)
    n = len(truth)
    cls = truth["cls"].to_numpy()

    log_re = np.where(
        cls == "faint", -0.80 + _RE_SLOPE * (truth.mag - 25.0),
        np.array([_LOG_RE22.get(c, -0.45) for c in cls]) + _RE_SLOPE * (truth.mag - 22.0),
    ) + rng.normal(0, _RE_SCATTER, n)
    truth["re_arcsec"] = np.clip(10**log_re, 0.05, 3.0)  # semi-major half-light radius
    q = rng.uniform(0.35, 1.0, n)
    q = np.where(cls == "bulge", rng.uniform(0.55, 1.0, n), q)
    q = np.where(np.isin(cls, ["disk", "bulge_disk"]), _inclined_q(rng, n), q)
    truth["q"] = np.where(cls == "star", 1.0, q)
    truth["pa_deg"] = rng.uniform(0, 180, n)
    sersic = np.where(cls == "bulge", rng.choice(_SERSIC_N, n, p=[0.1, 0.2, 0.4, 0.2, 0.1]), 1.0)
    sersic = np.where(cls == "faint", rng.choice([1.0, 1.5, 2.5], n), sersic)
    sersic = np.where(cls == "ambiguous", 2.5, sersic)
    truth["sersic_n"] = np.where(cls == "star", 0.0, sersic)
    truth["bt"] = np.select([cls == "bulge", cls == "bulge_disk", cls == "ambiguous"],
                            [1.0, rng.uniform(0.2, 0.8, n), 0.5], 0.0)
    truth["knot_fraction"] = np.where(cls == "irregular", rng.uniform(0.35, 0.7, n), 0.0)
    truth["n_knots"] = np.where(cls == "irregular", rng.integers(15, 60, n), 0)
    truth["structure"] = "generator"
    if empirical:  # (Re, n, q) from the catalogue, drawn as single Sérsics (irregulars with their knots)
        rows_bright = np.arange(len(bright_kept))  # the bright galaxies come first in the truth table
        rows_faint = np.flatnonzero(cls == "faint")
        faint = draw_structure(rng, catalog, mags=truth["mag"].to_numpy()[rows_faint])
        for rows, drawn in ((rows_bright, structure.iloc[bright_kept]), (rows_faint, faint)):
            truth.loc[rows, "re_arcsec"] = np.clip(drawn["re_arcsec"].to_numpy(), 0.02, 3.0)
            truth.loc[rows, "sersic_n"] = drawn["n"].to_numpy()
            truth.loc[rows, "q"] = drawn["q"].to_numpy()
            truth.loc[rows, "structure"] = "catalogue"
    truth["flux"] = mag_to_flux(truth["mag"], zeropoint)
    truth["draw_seed"] = rng.integers(1, 2**31 - 1, n)

    wcs = _wcs(field, pixel_scale)
    ra, dec = wcs.all_pix2world(truth["x"], truth["y"], 0)
    truth["ra"], truth["dec"] = ra, dec
    truth.insert(0, "field", field.name)
    truth.insert(1, "truth_id", np.arange(1, n + 1))
    return truth


def make_psf(params: dict, pixel_scale: float):
    """The F160W-like PSF as a GalSim object (Airy x Gaussian jitter)."""
    import galsim

    psf = galsim.Airy(lam_over_diam=params["lam_over_diam"], obscuration=params["obscuration"])
    if params["jitter_fwhm"] > 0:
        psf = galsim.Convolve(psf, galsim.Gaussian(fwhm=params["jitter_fwhm"]))
    return psf


def _profile(row, galsim, gsparams):
    """The GalSim profile (before PSF) of one truth row."""
    cls = row.cls
    hlr = row.re_arcsec * np.sqrt(row.q)  # circularised half-light radius
    if cls == "star":
        return galsim.DeltaFunction(flux=row.flux, gsparams=gsparams)
    shear = dict(q=row.q, beta=row.pa_deg * galsim.degrees)
    catalogue = getattr(row, "structure", "generator") == "catalogue"  # a measured single-Sérsic fit: one
    if cls in ("bulge", "faint") or (catalogue and cls in ("disk", "bulge_disk")):
        gal = galsim.Sersic(n=row.sersic_n, half_light_radius=hlr, flux=row.flux, gsparams=gsparams)
        return gal.shear(**shear)
    if cls == "disk":
        return galsim.Exponential(half_light_radius=hlr, flux=row.flux, gsparams=gsparams).shear(**shear)
    if cls == "bulge_disk":
        disk = galsim.Exponential(half_light_radius=hlr * 1.1, flux=(1 - row.bt) * row.flux, gsparams=gsparams)
        bulge = galsim.DeVaucouleurs(half_light_radius=max(0.3 * hlr, 0.03), flux=row.bt * row.flux,
                                     gsparams=gsparams).shear(q=min(1.0, row.q + 0.3), beta=shear["beta"])
        return galsim.Add(disk.shear(**shear), bulge)
    if cls == "irregular":
        rng = galsim.BaseDeviate(int(row.draw_seed))
        knots = galsim.RandomKnots(npoints=int(row.n_knots), half_light_radius=hlr * 1.2,
                                   flux=row.knot_fraction * row.flux, rng=rng, gsparams=gsparams)
        smooth_flux = (1 - row.knot_fraction) * row.flux
        smooth = (galsim.Sersic(n=row.sersic_n, half_light_radius=hlr, flux=smooth_flux, gsparams=gsparams)
                  if catalogue else galsim.Exponential(half_light_radius=hlr, flux=smooth_flux, gsparams=gsparams))
        return galsim.Add(smooth, knots).shear(**shear)
    if cls == "ambiguous":  # a compact two-component system: merger-like, no clean class
        sep_arcsec = 0.8 * hlr + 0.1
        a = galsim.Sersic(n=2.5, half_light_radius=0.7 * hlr, flux=0.6 * row.flux, gsparams=gsparams)
        b = galsim.Exponential(half_light_radius=0.6 * hlr, flux=0.4 * row.flux, gsparams=gsparams)
        ang = np.deg2rad(row.pa_deg)
        return galsim.Add(a.shift(-0.4 * sep_arcsec * np.cos(ang), -0.4 * sep_arcsec * np.sin(ang)),
                          b.shift(0.6 * sep_arcsec * np.cos(ang), 0.6 * sep_arcsec * np.sin(ang)))
    raise ValueError(f"unknown class {cls!r}")


def render_field(truth: pd.DataFrame, field: MockField, params: dict, *, pixel_scale: float,
                 rng: np.random.Generator, progress: bool = True,
                 footprint: tuple[np.ndarray, np.ndarray] | None = None):
    """Draw every truth object into a noisy mosaic.

    Returns
    -------
    image, weight : (ny, nx) float32 arrays (e-/s and inverse variance)
    psf_image : (41, 41) float32, unit sum
    """
    import galsim
    from tqdm import tqdm

    gsparams = galsim.GSParams(folding_threshold=1e-2, maxk_threshold=2e-3, maximum_fft_size=8192)
    psf = make_psf(params["psf"], pixel_scale)
    full = galsim.ImageF(field.nx, field.ny, scale=pixel_scale)  # 1-based bounds
    rows = truth.itertuples(index=False)
    for row in tqdm(rows, total=len(truth), desc=f"render {field.name}", mininterval=2, disable=not progress):
        obj = galsim.Convolve(_profile(row, galsim, gsparams), psf, gsparams=gsparams)
        re_px = row.re_arcsec / pixel_scale
        size = int(np.clip(10 * re_px + 24, 32, 256)) | 1
        ix, iy = int(np.floor(row.x + 0.5)), int(np.floor(row.y + 0.5))
        offset = (row.x - ix, row.y - iy)
        stamp = obj.drawImage(nx=size, ny=size, scale=pixel_scale, offset=offset)
        stamp.setCenter(ix + 1, iy + 1)
        bounds = stamp.bounds & full.bounds
        if bounds.isDefined():
            full[bounds] += stamp[bounds]
    signal = full.array

    inside, deep = footprint or footprint_mask(field.nx, field.ny, params["footprint_angle"])
    sigma = np.where(deep, params["noise_sigma"]["deep"], params["noise_sigma"]["wide"]).astype(np.float32)
    noise = correlated_noise(rng, (field.ny, field.nx), mosaic_correlation(params["drizzle"], pixel_scale))
    image = np.where(inside, signal + sigma * noise, 0.0).astype(np.float32)
    weight = np.where(inside, 1.0 / sigma**2, 0.0).astype(np.float32)
    psf_image = psf.drawImage(nx=41, ny=41, scale=pixel_scale).array.astype(np.float32)
    return image, weight, psf_image / psf_image.sum()


def _noisy_probability(rng, nominal: np.ndarray, scatter: np.ndarray) -> np.ndarray:
    logit = np.log(nominal / (1 - nominal))
    return 1.0 / (1.0 + np.exp(-(logit + rng.normal(0, 1, nominal.shape) * scatter)))


def make_catalogs(truth: pd.DataFrame, rng: np.random.Generator, params: dict, *, pixel_scale: float,
                  zeropoint: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """CANDELS-style photometric catalogue and Dimauro-style morphology catalogue.

    Catalogue magnitudes carry noise from the object's S/N in the wide-field noise; the
    morphology catalogue lists the galaxies brighter than F160W = 24 with class probabilities
    scattered around their true class's nominal values (more scatter for fainter objects).
    """
    sigma_pix = params["noise_sigma"]["wide"]
    detected = truth[(truth.cls != "faint") | (truth.mag < 26.0)].copy()
    re_px = detected.re_arcsec / pixel_scale
    npix = np.pi * (2 * re_px + 2.0) ** 2
    # the aperture's noise, with the drizzled noise's correlation (noise.py)
    ratio = aperture_noise_ratio(mosaic_correlation(params["drizzle"], pixel_scale))
    snr = detected.flux / (sigma_pix * np.sqrt(npix) * ratio)
    magerr = 1.0857 / snr
    phot = pd.DataFrame({
        "ID": np.arange(1, len(detected) + 1, dtype=np.int64),
        "FIELD": detected.field.to_numpy(),
        "RA": detected.ra.to_numpy(),
        "DEC": detected.dec.to_numpy(),
        "MAG_F160W": (detected.mag + rng.normal(0, 1, len(detected)) * magerr).to_numpy(),
        "MAGERR_F160W": magerr.to_numpy(),
        "CLASS_STAR": np.where(detected.kind == "star", 0.98, 0.02),
        "TRUTH_ID": detected.truth_id.to_numpy(),
    })
    gal = (phot.CLASS_STAR < 0.5) & (phot.MAG_F160W < 24.0) & (detected.cls != "faint").to_numpy()
    sel = phot[gal].reset_index(drop=True)
    t = detected[gal.to_numpy()].reset_index(drop=True)
    nominal = np.array([_NOMINAL_P[c] for c in t.cls])
    scatter = params["prob_scatter"] * (1.0 + 0.25 * np.clip(t.mag.to_numpy() - 21.0, 0, None))[:, None]
    p = _noisy_probability(rng, nominal, scatter)
    morph = pd.DataFrame({
        "ID": sel.ID, "FIELD": sel.FIELD, "RA": sel.RA, "DEC": sel.DEC,
        "F_SPH": p[:, 0], "F_DISK": p[:, 1], "F_IRR": p[:, 2],
        "F_PS": np.clip(rng.normal(0.01, 0.01, len(sel)), 0, 1),
        "B_T_m": np.clip(t.bt + rng.normal(0, 0.08, len(sel)), 0, 1),
        "MAG_SS": t.mag + rng.normal(0, 0.05, len(sel)),
        "RE_SS": t.re_arcsec * np.exp(rng.normal(0, 0.08, len(sel))),
        "N_SS": np.clip(t.sersic_n * np.exp(rng.normal(0, 0.15, len(sel))), 0.3, 8),
        "Q_SS": np.clip(t.q + rng.normal(0, 0.03, len(sel)), 0.05, 1),
    })
    return phot, morph


def generate_field(field: MockField, params: dict, *, pixel_scale: float, zeropoint: float,
                   seed: np.random.SeedSequence, progress: bool = True) -> MockSurvey:
    """Generate one complete mock field from its own seed."""
    pop_seed, noise_seed, cat_seed = seed.spawn(3)
    footprint = footprint_mask(field.nx, field.ny, params["footprint_angle"])
    truth = draw_population(np.random.default_rng(pop_seed), field, params, pixel_scale=pixel_scale,
                            zeropoint=zeropoint, footprint=footprint)
    image, weight, psf = render_field(truth, field, params, pixel_scale=pixel_scale,
                                      rng=np.random.default_rng(noise_seed), progress=progress,
                                      footprint=footprint)
    phot, morph = make_catalogs(truth, np.random.default_rng(cat_seed), params, pixel_scale=pixel_scale,
                                zeropoint=zeropoint)
    header = _wcs(field, pixel_scale).to_header()
    header["BUNIT"] = ("ELECTRONS/S", "F160W count rate")
    header["PHOTZPT"] = (zeropoint, "AB zero point")
    header["FIELD"] = field.name
    header["ORIGIN"] = "blendphot mock survey (GalSim)"
    return MockSurvey(image=image, weight=weight, psf=psf, header=header, truth=truth, photometry=phot,
                      morphology=morph)


def run_make_mock_field(out: dict, *, field: dict, index: int, params: dict, seed: int, pixel_scale: float,
                        zeropoint: float) -> MockSurvey:
    """The make_mock_field stage: one field from its own child of the workflow's seed, written as
    a survey's files (``out``: image, weight, psf, photometry, morphology, truth)."""
    from blendphot import io
    from blendphot.config import child_seed

    spec = MockField(**field)
    field_seed = child_seed(seed, "mock").spawn(index + 1)[index]
    survey = generate_field(spec, params, pixel_scale=pixel_scale, zeropoint=zeropoint, seed=field_seed)
    io.write_fits_image(out["image"], survey.image, survey.header)
    io.write_fits_image(out["weight"], survey.weight, survey.header)
    io.write_fits_image(out["psf"], survey.psf)
    io.write_fits_table(out["photometry"], survey.photometry, {"FIELD": spec.name})
    io.write_fits_table(out["morphology"], survey.morphology, {"FIELD": spec.name})
    io.write_csv(out["truth"], survey.truth)
    return survey
