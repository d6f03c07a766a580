"""The sep baseline: matching rules, cold/hot passes and photometry on synthetic blends."""
import numpy as np
import pandas as pd
import pytest

from blendphot.baseline import BaselineConfig, SepPass, match_detections, measure_blends, run_baseline
from blendphot.errors import ConfigError, InputError
from tests.conftest import gaussian

SIZE, C = 128, 64.0


def blend(dx, dy, *, sigma=(3.0, 3.0), flux=(200.0, 150.0), noise=0.01, seed=0):
    """A central Gaussian at (64, 64) plus a companion at (64 + dx, 64 + dy), white noise."""
    rng = np.random.default_rng(seed)
    image = gaussian(SIZE, C, C, sigma[0], flux[0]) + gaussian(SIZE, C + dx, C + dy, sigma[1], flux[1])
    return (image + rng.normal(0, noise, image.shape)).astype(np.float32)


def catalog(shifts, re_px=3.0):
    shifts = np.asarray(shifts, float)
    return pd.DataFrame({"blend_id": np.arange(len(shifts)), "dx": shifts[:, 0], "dy": shifts[:, 1],
                         "cen_re_px": re_px})


def test_no_detection():
    assert match_detections(np.empty((0, 2)), np.empty(0), (64, 64), (80, 64), 4.0) == (-1, -1, "none")


@pytest.mark.parametrize("xy, expected", [((65.0, 63.0), (0, -1, "one_central")),   # 2.2 px < 0.5 x 6
                                          ((68.0, 64.0), (-1, 0, "one_companion"))])  # 4 px > 3
def test_single_detection_goes_by_half_the_central_radius(xy, expected):
    assert match_detections(np.array([xy]), np.array([1.0]), (64, 64), (90, 64), 6.0) == expected


def test_two_detections_are_assigned_by_distance_whatever_their_order():
    xy = np.array([[90.0, 65.0], [64.5, 63.5]])  # the companion listed first
    assert match_detections(xy, np.array([5.0, 9.0]), (64, 64), (90, 64), 4.0) == (1, 0, "two")


def test_more_than_two_keeps_the_two_brightest_with_indices_into_the_full_list():
    # a faint spurious object first: the public code indexed the companion in the bright
    # subset and applied it to the full list, which would pick the spurious one
    xy = np.array([[20.0, 20.0], [64.0, 64.0], [90.0, 64.0]])
    fluxes = np.array([0.5, 10.0, 8.0])
    assert match_detections(xy, fluxes, (64, 64), (90, 64), 4.0) == (1, 2, "more")


def test_separated_pair_both_found_with_kron_fluxes_near_the_truth():
    images = np.stack([blend(30, 10), blend(-25, -20, seed=1)])
    pred = measure_blends(images, catalog([(30, 10), (-25, -20)]), BaselineConfig(flux="kron"))
    c = pred.catalog
    assert list(c["outcome"]) == ["two", "two"] and list(c["sep_pass"]) == ["cold", "cold"]
    np.testing.assert_allclose(c["cen_flux"], 200, rtol=0.05)
    np.testing.assert_allclose(c["comp_flux"], 150, rtol=0.05)
    np.testing.assert_allclose(c["comp_x"], C + np.array([30, -25]), atol=0.3)
    # the matched segments are the method's masks, in the blend stage's channel order
    assert pred.masks.shape == (2, 2, SIZE, SIZE)
    assert pred.masks[0, 0, 64, 64] == 1 and pred.masks[0, 1, 74, 94] == 1 and pred.masks[0, 0, 74, 94] == 0
    iso = measure_blends(images, catalog([(30, 10), (-25, -20)]), BaselineConfig(flux="iso")).catalog
    assert (iso["cen_flux"] < c["cen_flux"]).all()  # isophotal flux misses the wings


def test_overlapping_pair_is_one_detection_assigned_by_the_central_radius():
    # 2 px apart: one object; its centroid lies 0.9 px from the centre, within 0.5 x 3 px
    near = measure_blends(blend(2, 0)[None], catalog([(2, 0)], re_px=3.0), BaselineConfig()).catalog
    assert near.loc[0, "n_detected"] == 1 and near.loc[0, "outcome"] == "one_central"
    assert near.loc[0, "sep_pass"] == "hot"  # the cold pass found one object, so the hot pass ran
    assert np.isfinite(near.loc[0, "cen_flux"]) and np.isnan(near.loc[0, "comp_flux"])
    # a companion 4x brighter drags the centroid to ~3.2 px, beyond 0.5 x 3 px: the companion's
    far = measure_blends(blend(4, 0, flux=(50.0, 200.0))[None], catalog([(4, 0)], re_px=3.0), BaselineConfig())
    assert far.catalog.loc[0, "outcome"] == "one_companion"
    assert np.isnan(far.catalog.loc[0, "cen_flux"]) and far.masks[0, 0].sum() == 0 and far.masks[0, 1].sum() > 0


def test_empty_blend_gives_no_measurement():
    noise = np.random.default_rng(0).normal(0, 0.01, (1, SIZE, SIZE)).astype(np.float32)
    c = measure_blends(noise, catalog([(20, 0)]), BaselineConfig()).catalog
    assert c.loc[0, "outcome"] == "none" and c[["cen_flux", "comp_flux"]].isna().all().all()


def test_parallel_workers_give_the_same_result():
    shifts = [(20 + k % 7, -10 + k % 5) for k in range(12)]
    images = np.stack([blend(dx, dy, seed=k) for k, (dx, dy) in enumerate(shifts)])
    one = measure_blends(images, catalog(shifts), BaselineConfig(), workers=1, chunk=5)
    two = measure_blends(images, catalog(shifts), BaselineConfig(), workers=2, chunk=5)
    pd.testing.assert_frame_equal(one.catalog, two.catalog)
    assert np.array_equal(one.masks, two.masks)


def test_stage_writes_the_shared_format_and_rejects_nan_blends(tmp_path):
    from blendphot.prediction import Prediction

    images = np.stack([blend(30, 10), blend(-25, -20, seed=1)])
    np.save(tmp_path / "images.npy", images)
    catalog([(30, 10), (-25, -20)]).to_csv(tmp_path / "catalog.csv", index=False)
    run_baseline(tmp_path, tmp_path / "sep", BaselineConfig())
    pred = Prediction.load(tmp_path / "sep")
    assert list(pred.catalog["outcome"]) == ["two", "two"] and pred.masks.shape == (2, 2, SIZE, SIZE)

    images[1, 5, 5] = np.nan
    np.save(tmp_path / "images.npy", images)
    with pytest.raises(InputError, match=r"images.npy: non-finite pixels in 1 blends \(first: row 1, blend_id 1\)"):
        run_baseline(tmp_path, tmp_path / "bad", BaselineConfig())
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
    catalog([(30, 10), (-25, -20)]).drop(columns="cen_re_px").to_csv(tmp_path / "catalog.csv", index=False)
    with pytest.raises(InputError, match="cen_re_px"):
        run_baseline(tmp_path, tmp_path / "bad", BaselineConfig())


def test_config_section(default_config):
    cfg = BaselineConfig.from_config(default_config["baseline"])
    assert cfg == BaselineConfig()  # the shipped defaults are the paper's Table 3
    assert cfg.cold == SepPass(5.0, 10, 0.01, 64) and cfg.hot == SepPass(4.0, 6, 0.0001, 64)
    with pytest.raises(ConfigError, match="baseline.flux"):
        BaselineConfig(flux="auto")
