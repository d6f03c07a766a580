"""The image network (blend2image): its targets, its outputs, how they are measured and scored."""
import numpy as np
import pandas as pd
import pytest
import torch

from blendphot import evaluate as ev
from blendphot.blend import Blends, dihedral, make_blends
from blendphot.clean import CleanParams, measure_isolated
from blendphot.deblend import measure_deblended, measure_galaxy
from blendphot.errors import InputError
from blendphot.inference import predict_model, run_predict, run_predict_model
from blendphot.models import build_model
from blendphot.prediction import Prediction
from blendphot.train import TrainConfig, fit, load_model
from tests.toy import toy_blends, toy_pool

pytestmark = pytest.mark.usefixtures("one_torch_thread")
RULE = dict(rule="paper", max_mag_diff=2.0, min_shift_re=0.5, max_shift=10)


@pytest.mark.parametrize("augment", [False, True])
def test_the_central_image_and_the_rest_of_the_blend_are_the_two_isolated_galaxies(augment):
    images, masks, pool = toy_pool(40, size=32)
    blends = make_blends(images, masks, pool, 30, **RULE, pixel_scale=0.06, rng=np.random.default_rng(4),
                         augment=augment, central=True)
    plain = make_blends(images, masks, pool, 30, **RULE, pixel_scale=0.06, rng=np.random.default_rng(4),
                        augment=augment)
    assert plain.central is None and np.array_equal(plain.images, blends.images)  # nothing else changes
    iso = blends.isolated()
    np.testing.assert_array_equal(iso.sum(axis=1), blends.images)  # float32: c + (b - c) == b here
    cat = blends.catalog
    gid = pool["gid"].to_numpy()
    for k in range(len(cat)):
        j = int(np.flatnonzero(gid == cat["cen_gid"].iloc[k])[0])
        stamp = images[j]
        if augment:
            stamp = dihedral(stamp, int(cat["cen_transform"].iloc[k]))
        np.testing.assert_array_equal(blends.central[k], stamp)
        # the companion's image is its own stamp, shifted by (dx, dy)
        dx, dy = int(cat["dx"].iloc[k]), int(cat["dy"].iloc[k])
        y, x = 16 + dy, 16 + dx
        assert iso[k, 1, y, x] == pytest.approx(blends.images[k, y, x] - stamp[y, x])


def test_the_blend_stage_writes_the_central_images_and_loads_them_on_request(tmp_path):
    images, masks, pool = toy_pool(40, size=32)
    blends = make_blends(images, masks, pool, 12, **RULE, pixel_scale=0.06, rng=np.random.default_rng(1),
                         central=True)
    blends.save(tmp_path)
    assert Blends.load(tmp_path).central is None
    again = Blends.load(tmp_path, central=True)
    np.testing.assert_array_equal(again.central, blends.central)
    spoilt = blends.central.copy()
    spoilt[3, 5, 5] = np.nan
    np.save(tmp_path / "central.npy", spoilt)
    with pytest.raises(InputError, match=r"central\.npy: non-finite pixels in 1 blends \(first: row 3, blend_id 3\)"):
        Blends.load(tmp_path, central=True)
    (tmp_path / "central.npy").unlink()
    with pytest.raises(InputError, match="central.npy: file not found"):
        Blends.load(tmp_path, central=True)


def test_the_image_network_splits_the_blend_without_making_or_losing_light(toy_config):
    data = toy_blends(4)
    model = build_model(toy_config("blend2image", data=data)).eval()
    with torch.inference_mode():
        out = model(torch.from_numpy(data.images))
    assert out.fluxes is None and out.mask_logits is None and out.images.shape == (4, 2, 32, 32)
    torch.testing.assert_close(out.images.sum(dim=1), torch.from_numpy(data.images), atol=1e-5, rtol=0)
    # each galaxy gets a fraction of every pixel, between none and all of it
    fraction = (out.images[:, 0] / torch.from_numpy(data.images)).numpy()
    assert ((fraction >= 0) & (fraction <= 1)).all()


@pytest.fixture(scope="module")
def trained_image_model(tmp_path_factory, toy_config):
    root = tmp_path_factory.mktemp("deblend")
    train, val = toy_blends(1500, seed=1), toy_blends(300, seed=2)
    cfg = toy_config("blend2image", data=train, unet_centre_channel=True)
    summary = fit(cfg, TrainConfig(epochs=6, learning_rate=2e-3, seed=3), train, val, root / "state")
    return summary, val


@pytest.mark.slow
def test_the_image_network_learns_to_deblend_two_blobs(trained_image_model):
    summary, val = trained_image_model
    history = summary["history"]
    assert history[-1]["val_image_chi2"] < 0.2 * history[0]["val_image_chi2"], history
    model, _ = load_model(summary["best_path"])
    with torch.inference_mode():
        out = model(torch.from_numpy(val.images)).images.numpy()
    iso = val.isolated()
    for j in range(2):
        ratio = out[:, j].sum(axis=(1, 2)) / iso[:, j].sum(axis=(1, 2))
        assert np.median(np.abs(ratio - 1)) < 0.05, j


def test_a_deblended_galaxy_is_measured_as_an_isolated_one_wherever_it_lies():
    images, _, _ = toy_pool(6, size=64, noise=0.02)
    params = CleanParams()
    for stamp in images:
        flux, total, mask = measure_galaxy(stamp, 32, 32, params)
        assert total == pytest.approx(float(stamp.sum(dtype=np.float64)))
        # the clean stage's measurement of an isolated galaxy (its background level is ~0 here)
        isolated = measure_isolated(stamp, np.ones(stamp.shape, bool), params, level=0.0)
        assert mask[32, 32] == 1 and flux == pytest.approx(isolated["flux_auto"], rel=0.01, abs=0.05)
        moved = np.roll(stamp, 7, axis=1)  # the same galaxy 7 px to the right, as a companion lies
        flux_moved, _, mask_moved = measure_galaxy(moved, 39, 32, params)
        assert mask_moved[32, 39] == 1 and flux_moved == pytest.approx(flux, rel=0.03)
    # nothing at the position: no flux, an empty mask, the sum all the same
    empty = np.random.default_rng(1).normal(0, 0.02, (64, 64)).astype(np.float32)
    flux, total, mask = measure_galaxy(empty, 32, 32, params)
    assert np.isnan(flux) and not mask.any() and np.isfinite(total)


def test_measure_deblended_finds_the_companion_at_its_shift_or_as_the_brightest_other_source():
    images, _, _ = toy_pool(2, size=64, noise=0.02)
    pair = np.zeros((1, 2, 64, 64), np.float32)
    pair[0, 0] = images[0]
    pair[0, 1, :, 10:] = images[1][:, :-10]  # companion at dx = +10, dy = 0
    known = measure_deblended(pair, [10], [0])
    unknown = measure_deblended(pair, [np.nan], [np.nan])
    assert known["comp_flux"][0] == pytest.approx(unknown["comp_flux"][0])
    assert known["masks"][0, 1, 32, 42] == 1 and known["masks"][0, 0, 32, 32] == 1
    np.testing.assert_allclose(known["cen_flux_sum"], pair[0, 0].sum(dtype=np.float64))


def test_ssim_is_scikit_images():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    true = rng.normal(size=(3, 40, 40)).cumsum(axis=1)
    pred = true + rng.normal(scale=0.5, size=true.shape)
    ours = ev.ssim(pred, true)
    for k in range(3):
        theirs = structural_similarity(true[k], pred[k], data_range=float(true[k].max() - true[k].min()))
        assert ours[k] == pytest.approx(theirs, rel=1e-6)


def test_image_metrics_of_a_perfect_and_an_imperfect_deblending():
    data = toy_blends(5)
    iso = data.isolated()
    perfect = ev.image_metrics(iso, data, noise_sigma=0.05)
    np.testing.assert_allclose(perfect["chi2"], 0, atol=1e-12)
    np.testing.assert_allclose(perfect["residual"], 0, atol=1e-12)
    np.testing.assert_allclose(perfect["ssim"], 1, atol=1e-12)
    swapped = ev.image_metrics(iso[:, ::-1], data, noise_sigma=0.05)  # each galaxy given the other's image
    assert (swapped["chi2"] > 5).all() and (swapped["residual"] > 0.5).all() and (swapped["ssim"] < 0.9).all()


@pytest.mark.slow
def test_predictions_of_an_image_network_hold_images_fluxes_and_masks(trained_image_model, tmp_path):
    summary, val = trained_image_model
    model, _ = load_model(summary["best_path"])
    val.catalog = val.catalog.assign(dx=np.nan, dy=np.nan)
    pred = predict_model(model, val, device="cpu")
    assert pred.images.shape == (len(val), 2, 32, 32) and pred.masks.shape == (len(val), 2, 32, 32)
    cat = pred.catalog
    for role in ("cen", "comp"):
        measured = cat[f"{role}_flux"] / val.catalog[f"{role}_flux"]
        assert measured.notna().mean() > 0.9 and np.nanmedian(np.abs(measured - 1)) < 0.15, role
        assert (cat[f"{role}_flux_sum"] > 0).all()
    # the workflow's predict stage writes the same in its folder
    model_path = tmp_path / "train/b2i/model.pt"
    model_path.parent.mkdir(parents=True)
    model_path.write_bytes(summary["best_path"].read_bytes())
    val.save(tmp_path / "blends")
    run_predict_model(model_path, tmp_path / "blends", tmp_path / "predict", name="b2i", device="cpu")
    saved = Prediction.load(tmp_path / "predict", images=True)
    np.testing.assert_array_equal(saved.images, pred.images)
    np.testing.assert_array_equal(saved.masks, pred.masks)
    pd.testing.assert_frame_equal(saved.catalog, cat, check_dtype=False)
    # and `blendphot predict` too, for blends of one's own
    mine = run_predict(model_path, tmp_path / "blends", tmp_path / "mine", zeropoint=25.0, device="cpu",
                       show_progress=False)
    np.testing.assert_array_equal(mine.catalog["cen_flux"], cat["cen_flux"])
    assert (tmp_path / "mine/images.npy").exists() and (tmp_path / "mine/masks.npy").exists()


@pytest.mark.slow
def test_an_image_networks_fluxes_get_uncertainties_from_its_validation_errors(trained_image_model):
    from blendphot.photometry import binned_s68
    from blendphot.train import calibrate_image_model, load_checkpoint

    summary, val = trained_image_model
    state = load_checkpoint(summary["best_path"])
    state["model_config"]["flux_sigma"] = True
    model, _ = load_model(state)
    with pytest.raises(InputError, match="no calibrated uncertainty table"):
        predict_model(model, val, device="cpu")
    edges, s68, report = calibrate_image_model(model, val)
    assert len(edges) == 4 and len(s68) == 6 and all(s > 0 for s in s68)
    assert abs(report["val_coverage68"] - 0.68) < 0.03  # the blends it was made on
    state["model_config"].update(sigma_edges=edges, sigma_s68=s68)
    model, cfg = load_model(state)
    assert cfg.sigma_s68 == s68
    cat = predict_model(model, val, device="cpu").catalog
    fluxes = cat[["cen_flux", "comp_flux"]].to_numpy()
    np.testing.assert_allclose(cat[["cen_flux_err", "comp_flux_err"]].to_numpy(), binned_s68(fluxes, edges, s68))
