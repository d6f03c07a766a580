"""The mock survey generator: its distributions follow its settings, and its truth is what the
mosaic and the catalogues hold."""
import numpy as np
import pandas as pd
import pytest

from blendphot import mock
from blendphot.config import load_config
from blendphot.photometry import flux_to_mag, mag_to_flux

PIXEL_SCALE, ZEROPOINT = 0.06, 25.9463


@pytest.fixture(scope="module")
def params():
    """The demo's mock settings with the hand-set generator (test_population.py: the empirical one)."""
    return {**load_config("config/config.yaml")["survey"]["mock"], "population": "generator"}


@pytest.fixture(scope="module")
def population(params):
    field = mock.MockField("test", 53.1, -27.8, 2048, 2048)
    return mock.draw_population(np.random.default_rng(0), field, params, pixel_scale=PIXEL_SCALE,
                                zeropoint=ZEROPOINT), field


def test_densities_and_class_mix_follow_the_settings(population, params):
    truth, field = population
    inside, _ = mock.footprint_mask(field.nx, field.ny, params["footprint_angle"])
    area = inside.sum() * (PIXEL_SCALE / 60) ** 2
    bright = truth[truth["cls"].isin(list(params["class_fractions"]))]
    # Poisson counts: within 4 sigma of the expectation
    expected = params["density_bright"] * area
    assert abs(len(bright) - expected) < 4 * np.sqrt(expected)
    for cls, fraction in params["class_fractions"].items():
        n = (bright["cls"] == cls).sum()
        assert abs(n / len(bright) - fraction) < 4 * np.sqrt(fraction * (1 - fraction) / len(bright)), cls
    lo, hi = params["mag_bright"]
    assert bright["mag"].between(lo, hi).all()
    assert truth.loc[truth["cls"] == "faint", "mag"].between(*params["mag_faint"]).all()


def test_number_counts_have_the_configured_slope(params):
    dense = {**params, "density_bright": 50 * params["density_bright"], "density_faint": 0.0}
    truth = mock.draw_population(np.random.default_rng(1), mock.MockField("dense", 53.1, -27.8, 2048, 2048), dense,
                                 pixel_scale=PIXEL_SCALE, zeropoint=ZEROPOINT)
    mags = truth.loc[truth["cls"].isin(list(params["class_fractions"])), "mag"].to_numpy()
    lo, hi = params["mag_bright"]
    counts, edges = np.histogram(mags, bins=np.arange(lo, hi + 1e-9, 0.5))
    slope = np.polyfit(0.5 * (edges[1:] + edges[:-1]), np.log10(counts), 1)[0]
    assert slope == pytest.approx(params["count_slope"], abs=0.05)


def test_structure_is_physical(population):
    truth, _ = population
    galaxies = truth[truth["kind"] == "galaxy"]
    assert galaxies["re_arcsec"].between(0.05, 3.0).all() and galaxies["q"].between(0.2, 1.0).all()
    assert (truth.loc[truth["cls"] == "bulge", "sersic_n"] >= 3).all()
    assert (truth.loc[truth["cls"] == "disk", "sersic_n"] == 1).all()
    assert (truth.loc[truth["cls"] == "irregular", "knot_fraction"] > 0).all()
    # brighter galaxies are larger on average (the size-magnitude relation)
    disks = truth[truth["cls"] == "disk"]
    assert np.corrcoef(disks["mag"], np.log10(disks["re_arcsec"]))[0, 1] < -0.2
    # the truth flux is the magnitude's
    np.testing.assert_allclose(flux_to_mag(truth["flux"], ZEROPOINT), truth["mag"], atol=1e-9)


def test_the_population_is_seeded(params):
    field = mock.MockField("test", 53.1, -27.8, 512, 512)
    draw = [mock.draw_population(np.random.default_rng(s), field, params, pixel_scale=PIXEL_SCALE,
                                 zeropoint=ZEROPOINT) for s in (1, 1, 2)]
    assert draw[0].equals(draw[1]) and not draw[0].equals(draw[2])


def test_the_mosaic_holds_the_truth_flux(params):
    """Rendered with no noise, the light within a big aperture around an isolated galaxy is its
    truth flux: what the catalogue and the blends are measured against."""
    field = mock.MockField("one", 53.1, -27.8, 256, 256)
    quiet = {**params, "noise_sigma": {"wide": 1e-9, "deep": 1e-9}, "footprint_angle": 0.0}
    rows = []
    for k, (cls, n, mag) in enumerate((("disk", 1.0, 21.0), ("bulge", 4.0, 21.5))):
        rows.append({"field": "one", "truth_id": k + 1, "kind": "galaxy", "cls": cls, "mag": mag,
                     "x": 64.0 + 128 * k, "y": 128.0, "re_arcsec": 0.3, "q": 0.7, "pa_deg": 30.0,
                     "sersic_n": n, "bt": 1.0 if cls == "bulge" else 0.0, "knot_fraction": 0.0, "n_knots": 0,
                     "flux": mag_to_flux(mag, ZEROPOINT), "draw_seed": 7 + k, "ra": 0.0, "dec": 0.0})
    truth = pd.DataFrame(rows)
    image, weight, psf = mock.render_field(truth, field, quiet, pixel_scale=PIXEL_SCALE,
                                           rng=np.random.default_rng(5), progress=False)
    assert psf.sum() == pytest.approx(1.0, abs=1e-5)
    assert (weight[truth["y"].astype(int), truth["x"].astype(int)] > 0).all()
    yy, xx = np.mgrid[:256, :256]
    for row in truth.itertuples():
        aperture = np.hypot(xx - row.x, yy - row.y) < 60
        # a Sérsic n = 4 profile keeps a few per cent of its light beyond 12 Re
        assert image[aperture].sum() == pytest.approx(row.flux, rel=0.06 if row.sersic_n > 2 else 0.02)


def test_catalogues_list_what_was_drawn(population, params):
    truth, _ = population
    phot, morph = mock.make_catalogs(truth, np.random.default_rng(3), params, pixel_scale=PIXEL_SCALE,
                                     zeropoint=ZEROPOINT)
    joined = phot.merge(truth, left_on="TRUTH_ID", right_on="truth_id")
    assert len(joined) == len(phot)
    # catalogue magnitudes scatter around the truth by their quoted errors
    pull = (joined["MAG_F160W"] - joined["mag"]) / joined["MAGERR_F160W"]
    assert abs(pull.mean()) < 0.1 and pull.std() == pytest.approx(1.0, abs=0.1)
    # the morphology catalogue: catalogued galaxies brighter than 24, with probabilities in [0, 1]
    assert set(morph["ID"]) <= set(phot["ID"])
    assert (phot.set_index("ID").loc[morph["ID"], "MAG_F160W"] < 24).all()
    assert morph[["F_SPH", "F_DISK", "F_IRR"]].stack().between(0, 1).all()
    # a class's nominal probability is the largest on average: the classifier is informative
    classes = phot.set_index("ID").loc[morph["ID"], "TRUTH_ID"].map(truth.set_index("truth_id")["cls"]).to_numpy()
    assert morph.loc[classes == "bulge", "F_SPH"].mean() > 0.7 > morph.loc[classes == "disk", "F_SPH"].mean()
    assert morph.loc[classes == "irregular", "F_IRR"].mean() > 0.7


def _lag_correlation(image: np.ndarray, dy: int, dx: int) -> float:
    a = image[: image.shape[0] - dy, : image.shape[1] - dx]
    b = image[dy:, dx:]
    return float(np.mean((a - a.mean()) * (b - b.mean())) / image.var())


@pytest.mark.parametrize("drizzle", [{"native_pixel": 0.128, "pixfrac": 0.8}, {"native_pixel": 0.128, "pixfrac": 0.5},
                                     False], ids=["candels", "small-drops", "white"])
def test_a_blank_fields_noise_has_the_models_rms_and_autocorrelation(params, drizzle):
    """A field without sources: its pixels have the configured rms, their correlation at each lag
    is the drizzle model's (separable: the diagonal lag is the product of the axes' ones), and the
    weight map is the inverse per-pixel variance, as a drizzled mosaic's."""
    from blendphot.noise import mosaic_correlation

    field = mock.MockField("blank", 53.1, -27.8, 768, 768)
    settings = {**params, "drizzle": drizzle, "noise_sigma": {"wide": 0.0085, "deep": 0.0055}}
    everywhere = (np.ones((768, 768), bool), np.zeros((768, 768), bool))  # all of it observed, wide
    image, weight, _ = mock.render_field(pd.DataFrame(columns=["cls"]), field, settings, pixel_scale=PIXEL_SCALE,
                                         rng=np.random.default_rng(11), progress=False, footprint=everywhere)
    assert image.std() == pytest.approx(0.0085, rel=0.01)
    assert np.allclose(weight, 1 / 0.0085**2)
    c = mosaic_correlation(drizzle, PIXEL_SCALE) or (1.0, 0.0, 0.0)
    c = [*c, 0.0, 0.0]
    expected = {(0, 1): c[1], (1, 0): c[1], (1, 1): c[1] ** 2, (0, 2): c[2], (2, 0): c[2], (0, 4): 0.0}
    measured = {lag: _lag_correlation(image, *lag) for lag in expected}
    assert measured == pytest.approx(expected, abs=0.01)  # 768^2 pixels: standard error ~0.002


@pytest.mark.parametrize("drop_px", [0.5, 1.0, 1.7067, 2.5])
def test_the_drizzle_model_gives_fruchter_and_hooks_noise_ratio(drop_px):
    """The noise of a large aperture over the per-pixel rms's white-noise figure, R, against the
    closed form of Fruchter & Hook (2002) for a drop r = pixfrac x native / output pixels wide:
    r / (1 - 1 / (3 r)) for r >= 1, 1 / (1 - r / 3) for r < 1. The generated noise has it too."""
    from blendphot.noise import aperture_noise_ratio, correlated_noise, drizzle_correlation

    c = drizzle_correlation(drop_px)
    closed_form = drop_px / (1 - 1 / (3 * drop_px)) if drop_px >= 1 else 1 / (1 - drop_px / 3)
    assert aperture_noise_ratio(c) == pytest.approx(closed_form, rel=1e-3)
    # ... and its shape: a drop one pixel wide correlates neighbours at 1/4 (two triangles' overlap),
    # a narrower one at r / (6 (1 - r / 3)); nothing beyond the drop and the pixel
    if drop_px == 1.0:
        assert c == pytest.approx((1.0, 0.25, 0.0), abs=1e-4)
    if drop_px < 1:
        assert c == pytest.approx((1.0, drop_px / (6 * (1 - drop_px / 3)), 0.0), abs=1e-4)
    assert len(c) == int(np.ceil(drop_px + 1)) + 1 and c[-1] == pytest.approx(0, abs=1e-6)
    noise = correlated_noise(np.random.default_rng(2), (1024, 1024), c)
    block = 32  # sums over 32 x 32 pixels: R up to the blocks' edges
    sums = noise.reshape(1024 // block, block, 1024 // block, block).sum(axis=(1, 3))
    edge = (block + 2 * sum((block - k) * ck for k, ck in enumerate(c[1:], start=1))) / block  # exact, 1-D
    assert sums.std() / block == pytest.approx(edge, rel=0.07)  # 1024 blocks: ~2 % standard error


def test_white_noise_is_drizzle_false_and_null_keeps_the_candels_model():
    """null means unset in a config (the default, CANDELS' drizzle, applies); false is white noise."""
    from blendphot.config import validate_config
    from blendphot.errors import ConfigError
    from blendphot.noise import mosaic_correlation

    def demo_with(drizzle):
        config = load_config("config/config.yaml", validate=False)
        config["survey"]["mock"]["drizzle"] = drizzle
        return validate_config(config)

    for value, white in ((False, True), (None, False)):
        assert (mosaic_correlation(demo_with(value)["survey"]["mock"]["drizzle"], PIXEL_SCALE) is None) == white
    with pytest.raises(ConfigError, match="survey.mock.drizzle"):
        demo_with(True)
