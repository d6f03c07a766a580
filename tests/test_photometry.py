"""The one photometry: FLUX_AUTO against photutils' Kron photometry on Sérsic galaxies, the
SExtractor neighbour correction, the background level and magnitudes."""
import numpy as np
import pytest
import sep
from astropy.modeling.models import Sersic2D

from blendphot.photometry import (
    background_level,
    correct_neighbours,
    delta_mag,
    flux_to_mag,
    kron_photometry,
    mag_to_flux,
)

SIZE, NOISE = 128, 0.01


def sersic_image(galaxies, *, noise=NOISE, seed=0):
    """Sum of Sérsic profiles (amplitude, r_eff px, n, x, y, ellipticity, theta) plus noise."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    image = sum(Sersic2D(*g)(xx, yy) for g in galaxies)
    return image + np.random.default_rng(seed).normal(0, noise, image.shape)


def photutils_kron(image, seg, label):
    """photutils' Kron flux and the isophotal shape it measures, neighbours corrected."""
    photutils_segmentation = pytest.importorskip("photutils.segmentation")
    catalog = photutils_segmentation.SourceCatalog(
        image, photutils_segmentation.SegmentationImage(seg), kron_params=(2.5, 0.1, 0.0),
        aperture_mask_method="correct").select_label(label)
    shape = {"x": [catalog.x_centroid], "y": [catalog.y_centroid], "a": [catalog.semimajor_axis.value],
             "b": [catalog.semiminor_axis.value], "theta": [catalog.orientation.to("rad").value]}
    return float(catalog.kron_flux), shape


CASES = {
    "exponential disk": [(1.0, 6, 1, 64, 64, 0.3, 0.5)],
    "de Vaucouleurs bulge, off-centre": [(1.0, 5, 4, 64.3, 63.7, 0.2, 1.0)],
    "disk with a bright neighbour": [(1.0, 6, 1, 64, 64, 0.3, 0.5), (2.0, 4, 1, 78, 70, 0.1, 0.0)],
    "n = 2 with a neighbour": [(1.0, 5, 2, 64, 64, 0.4, 0.2), (1.5, 5, 1, 52, 75, 0.3, 1.2)],
}


@pytest.mark.parametrize("case", CASES)
def test_kron_flux_agrees_with_photutils_within_one_percent(case):
    image = sersic_image(CASES[case])
    objects, seg = sep.extract(image.astype(np.float32), 5, err=NOISE, segmentation_map=True, deblend_cont=0.001)
    assert len(objects) == len(CASES[case])  # the neighbour is its own segment: the correction matters
    label = int(seg[64, 64])
    reference, shape = photutils_kron(image, seg, label)
    mine = kron_photometry(image, seg, shape, [label])
    assert mine["flux"][0] == pytest.approx(reference, rel=0.01)
    assert not mine["circular"][0]


def test_the_neighbour_correction_recovers_the_isolated_flux():
    galaxy, neighbour = CASES["disk with a bright neighbour"]
    blended, isolated = sersic_image([galaxy, neighbour]), sersic_image([galaxy])
    objects, seg = sep.extract(blended.astype(np.float32), 5, err=NOISE, segmentation_map=True, deblend_cont=0.001)
    label = int(seg[64, 64])
    central = objects[[label - 1]]
    corrected = kron_photometry(blended, seg, central, [label])["flux"][0]
    alone = kron_photometry(isolated, np.where(seg == label, label, 0), central, [label])["flux"][0]
    ignored = kron_photometry(blended, np.where(seg == label, label, 0), central, [label])["flux"][0]
    # SExtractor's correction: within 5 % of the galaxy alone (what is left is the neighbour's
    # wings below the detection threshold, outside its segment), where leaving the neighbour's
    # pixels in the aperture more than doubles the flux
    assert corrected == pytest.approx(alone, rel=0.05)
    assert ignored > 2 * alone


def test_correct_neighbours_mirrors_through_the_centre_pixel():
    data = np.arange(25, dtype=float).reshape(5, 5)
    seg = np.zeros((5, 5), int)
    seg[2, 2] = 1
    seg[0, 1] = 2  # mirrored through (2, 2): pixel (4, 3)
    seg[4, 4] = 3  # mirrored: (0, 0), not another segment
    seg[0, 0] = 3  # mirrored: (4, 4), another segment's pixel: 0
    out = correct_neighbours(data, seg, 1, x=2.2, y=1.9)
    assert out[0, 1] == data[4, 3] and out[4, 4] == 0 and out[0, 0] == 0
    assert np.array_equal(out[seg <= 1], data[seg <= 1])


def test_background_level_ignores_the_sources():
    rng = np.random.default_rng(3)
    data = rng.normal(0.5, 0.01, (64, 64))
    seg = np.zeros((64, 64), int)
    seg[20:40, 20:40] = 1
    data[seg == 1] += 100
    assert background_level(data, seg) == pytest.approx(0.5, abs=0.002)
    assert background_level(data, np.ones((64, 64), int)) == 0.0  # no background pixel at all


def test_magnitudes_have_one_definition():
    assert flux_to_mag([1.0, 10.0], 25.0).tolist() == pytest.approx([25.0, 22.5])
    assert np.isnan(flux_to_mag([0.0, -1.0, np.nan], 25.0)).all()
    assert mag_to_flux(flux_to_mag(3.7, 26.0), 26.0) == pytest.approx(3.7)
    assert delta_mag([2.0], [1.0])[0] == pytest.approx(-0.7526, abs=1e-4)  # twice too bright
    assert np.isnan(delta_mag([-1.0], [1.0])[0])
