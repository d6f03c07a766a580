"""The empirical galaxy population: structure drawn from a measured catalogue."""
import numpy as np
import pandas as pd
import pytest

from blendphot import mock, population
from blendphot.errors import InputError

PIXEL_SCALE, ZP = 0.06, 25.94


def synthetic_catalog(tmp_path, n_good: int = 400):
    """A catalogue whose unusable rows carry values no usable row has: flag 2 and 3 fits, a
    point-like source and a runaway fit."""
    rng = np.random.default_rng(0)
    good = pd.DataFrame({"id": np.arange(n_good), "flag": rng.integers(0, 2, n_good),
                         "mag": rng.uniform(19, 27, n_good), "re_arcsec": rng.uniform(0.1, 1.0, n_good),
                         "n": rng.uniform(0.5, 4.0, n_good), "q": rng.uniform(0.2, 1.0, n_good)})
    bad = pd.DataFrame({"id": [-1, -2, -3, -4], "flag": [2, 3, 0, 1], "mag": [22.0, 22.0, 22.0, 22.0],
                        "re_arcsec": [0.777, -999.0, 0.03, 7.5], "n": [5.55, -999.0, 5.55, 5.55],
                        "q": [0.111, -999.0, 0.111, 0.111]})
    path = tmp_path / "structure.csv"
    pd.concat([good, bad]).to_csv(path, index=False)
    return path


def test_no_bad_flag_point_source_or_runaway_fit_is_drawn(tmp_path):
    catalog = population.read_structure_catalog(synthetic_catalog(tmp_path))
    assert len(catalog) == 400 and not np.isclose(catalog["q"], 0.111).any()
    drawn = population.draw_structure(np.random.default_rng(1), catalog, n=5000, mag_range=(19, 24.5))
    assert not np.isclose(drawn["q"], 0.111).any() and drawn["re_arcsec"].between(0.1, 1.0).all()
    shipped = population.read_structure_catalog()
    assert shipped["re_arcsec"].between(0.06, 3.0).all() and len(shipped) > 20000


def test_draws_are_seeded_and_bit_reproducible():
    params = {**_demo_mock(), "population": "empirical"}
    field = mock.MockField("f", 150.1, 2.2, 1024, 1024)

    def draw(seed):
        return mock.draw_population(np.random.default_rng(seed), field, params, pixel_scale=PIXEL_SCALE, zeropoint=ZP)

    a, b, c = draw(3), draw(3), draw(4)
    pd.testing.assert_frame_equal(a, b)
    assert not a[["mag", "re_arcsec"]].equals(c[["mag", "re_arcsec"]])
    galaxies = a[a["kind"] == "galaxy"]
    assert (galaxies["structure"] == "catalogue").all()
    assert (a.loc[a["kind"] == "star", "structure"] == "generator").all()


def test_the_empirical_mock_matches_the_catalogue_where_the_generator_did_not():
    """A mock field dense enough for 5000 galaxies brighter than 23.5: KS <= 0.05 in log Re, n and
    q (the rendered n is rounded and clipped to GalSim's 6.2) and the median Re within 5 % where
    bins are large; the hand-set generator is far off in n (and 12-16 % too small at 22-23.5)."""
    catalog = population.read_structure_catalog()
    field = mock.MockField("f", 150.1, 2.2, 4096, 4096)
    dense = {**_demo_mock(), "density_bright": 20 * _demo_mock()["density_bright"], "density_faint": 0.0,
             "satellites_per_galaxy": 0.0}

    def galaxies(kind, seed):
        truth = mock.draw_population(np.random.default_rng(seed), field, {**dense, "population": kind},
                                     pixel_scale=PIXEL_SCALE, zeropoint=ZP)
        return truth[truth["kind"] == "galaxy"].rename(columns={"sersic_n": "n"})

    ks, bins = population.compare_structure(galaxies("empirical", 5), catalog, mag_min=19.0)
    ks = ks.set_index("quantity")
    assert ks.loc["n", "n_mock"] >= 5000
    assert (ks.loc[["log_re", "n", "q"], "ks"] <= 0.05).all(), ks
    # the median Re within 5 % where a bin's sampling noise is below that (>= 800 galaxies: 22-23.5
    # mag; smaller bins drift by up to 12 % at this sample size, bench/bench_population.py)
    assert (bins.loc[bins["n_catalogue"] >= 800, "ratio"] - 1).abs().max() <= 0.05, bins
    assert (bins["re16_mock"] < bins["median_re_mock"]).all() and (bins["median_re_mock"] < bins["re84_mock"]).all()
    generator = population.compare_structure(galaxies("generator", 5), catalog, mag_min=19.0)[0]
    assert generator.set_index("quantity").loc["n", "ks"] > 0.3


def test_classes_follow_the_sersic_index_and_keep_their_mix():
    rng = np.random.default_rng(2)
    n = 10 ** rng.uniform(np.log10(0.5), np.log10(6), 3000)
    classes = rng.choice(list(mock.CLASS_RANK), 3000)
    given = population.assign_classes(rng, classes, n, mock.CLASS_RANK)
    assert sorted(given) == sorted(classes)
    median_n = pd.Series(n).groupby(given).median()
    assert median_n["disk"] < median_n["bulge_disk"] < median_n["bulge"]


def test_faint_galaxies_beyond_the_catalogue_take_smaller_radii():
    catalog = pd.DataFrame({"mag": [24.0, 24.1, 24.2], "re_arcsec": [0.3, 0.3, 0.3], "n": [1.0, 1.0, 1.0],
                            "q": [0.5, 0.5, 0.5]})
    drawn = population.draw_structure(np.random.default_rng(0), catalog, mags=np.array([24.1, 26.2]))
    assert drawn["re_arcsec"].iloc[0] == 0.3
    # 26.2 lies 2.0-2.2 mag beyond the rows it draws from: 10**(-0.1 * 2.0..2.2)
    assert 0.3 * 10 ** (-0.22) <= drawn["re_arcsec"].iloc[1] <= 0.3 * 10 ** (-0.2)


def test_rendered_sersic_indices_are_in_galsims_range_on_a_log_grid():
    n = population.render_sersic_n(np.array([0.1, 0.3, 1.0, 1.03, 4.0, 7.9]))
    assert n.min() >= 0.3 and n.max() <= 6.2 and n[2] == pytest.approx(1.0)
    assert np.allclose(np.log10(n[1:-1]) / 0.02, np.round(np.log10(n[1:-1]) / 0.02))


@pytest.mark.parametrize(("text", "message"), [
    ("flag,mag,re_arcsec,n\n0,22,0.3,1\n", "column 'q'"),
    ("flag,mag,re_arcsec,n,q\n0,22,big,1,0.5\n", "column 're_arcsec' must be numeric"),
    ("flag,mag,re_arcsec,n,q\n0,22,0.3,1,0.5\n", "only 1 usable galaxies"),
])
def test_a_bad_structure_catalogue_is_named(tmp_path, text, message):
    path = tmp_path / "mine.csv"
    path.write_text(text)
    with pytest.raises(InputError, match="mine.csv") as err:
        population.read_structure_catalog(path)
    assert message in str(err.value)


def test_the_summary_names_a_mock_that_differs_from_the_catalogue():
    from blendphot.evaluate import structure_markdown

    catalog = population.read_structure_catalog()
    rng = np.random.default_rng(9)
    drawn = population.draw_structure(rng, catalog, n=2000, mag_range=(19.0, 23.5))
    text = structure_markdown(*population.compare_structure(drawn, catalog, mag_min=19.0))
    assert "Two-sample KS distances: log Re 0.0" in text and "Warning" not in text
    rounder = drawn.assign(q=np.clip(drawn["q"] + 0.15, 0, 1))
    text = structure_markdown(*population.compare_structure(rounder, catalog, mag_min=19.0))
    assert "**Warning: the mock's galaxies differ from the measured ones** (KS p < 0.001 in q)" in text


def _demo_mock() -> dict:
    from blendphot.config import load_configs

    from .workflow_helpers import ROOT

    return load_configs([ROOT / "config/config.yaml"])["survey"]["mock"]
