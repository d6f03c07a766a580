"""Flux uncertainties: the σ head, its likelihood, its calibration, and their evaluation."""
import numpy as np
import pandas as pd
import pytest
import torch

from blendphot import evaluate as ev
from blendphot.config import load_config, model_settings
from blendphot.errors import ConfigError
from blendphot.inference import predict_model
from blendphot.models import ModelConfig, build_model
from blendphot.prediction import Prediction
from blendphot.train import calibrate_sigma, load_checkpoint, load_model, log_flux_nll, run_train_model
from tests.toy import toy_blends
from tests.workflow_helpers import ROOT

# bitwise-reproducible CPU kernels (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(**kw):
    return ModelConfig("blend2flux", image_size=32, filters=4, normalisation="linear", noise_sigma=0.05,
                       flux_scale=30.0, flux_sigma=True, **kw)


def test_the_sigma_head_gives_a_positive_flux_uncertainty_scaled_by_its_calibration():
    torch.manual_seed(0)
    model = build_model(_cfg()).eval()
    x = torch.from_numpy(toy_blends(5).images)
    with torch.inference_mode():
        out = model(x)
    assert out.uncertainties.shape == (5, 2) and (out.uncertainties > 0).all()
    scaled = build_model(_cfg(sigma_scale=2.5)).eval()
    scaled.load_state_dict(model.state_dict())  # the factor is config, not a weight
    with torch.inference_mode():
        again = scaled(x)
    torch.testing.assert_close(again.fluxes, out.fluxes)
    torch.testing.assert_close(again.uncertainties, 2.5 * out.uncertainties)
    plain = build_model(ModelConfig("blend2flux", image_size=32, filters=4)).eval()
    assert plain(x).uncertainties is None


@pytest.mark.parametrize("kw", [{"arch": "unet"}, {"flux_output": "equivariant"}])
def test_a_sigma_head_needs_fluxes_in_log_space(kw):
    base = {"arch": "blend2flux", "image_size": 32, "normalisation": "linear", "flux_sigma": True} | kw
    with pytest.raises(ValueError, match="flux_sigma"):
        ModelConfig(**base)


def test_a_sigma_head_on_a_unet_is_a_config_error():
    cfg = load_config(ROOT / "tests/config/tiny.yaml")
    cfg["train"]["models"]["unet"]["flux_sigma"] = True
    from blendphot.config import validate_config

    with pytest.raises(ConfigError, match=r"'train\.models\.unet\.flux_sigma'"):
        validate_config(cfg)


def test_the_likelihood_teaches_sigma_and_leaves_the_flux_to_the_flux_loss():
    pred = torch.tensor([[50.0, 20.0]], requires_grad=True)
    true = torch.tensor([[60.0, 18.0]])
    log_sigma = torch.zeros(1, 2, requires_grad=True)
    loss = log_flux_nll(pred, pred.detach() * log_sigma.exp(), true)  # as the σ head builds it
    loss.backward()
    assert pred.grad is None and log_sigma.grad.abs().min() > 0  # σ learns, the flux is not pulled
    # per galaxy, the Laplace likelihood is smallest where its scale b = s68 / 1.1394 equals |ln true − ln pred|
    r = np.abs(np.log([60 / 50, 18 / 20])) * 1.1394343
    grid = np.linspace(0.01, 0.5, 500)
    values = [[float(log_flux_nll(torch.tensor([[p]]), torch.tensor([[p * s]]), torch.tensor([[t]])))
               for s in grid] for p, t in ((50.0, 60.0), (20.0, 18.0))]
    np.testing.assert_allclose(grid[np.argmin(values, axis=1)], r, atol=1e-3)


def test_calibration_scales_sigma_to_the_nominal_68_percent():
    rng = np.random.default_rng(0)
    true = 10 ** rng.uniform(1, 2, (20000, 2))
    fluxes = true * np.exp(rng.laplace(0, 0.2 / 1.1394343, true.shape))  # a 68 % half-width of 0.2 in ln F
    scale, report = calibrate_sigma(fluxes, fluxes * 0.1, true)  # an uncertainty twice too small
    assert scale == pytest.approx(2.0, rel=0.03)
    assert report["val_coverage68_raw"] == pytest.approx(1 - np.exp(-0.5 * 1.1394343), abs=0.01)
    assert report["val_coverage68"] == pytest.approx(0.68, abs=0.002)
    assert report["val_coverage95"] == pytest.approx(0.95, abs=0.01)


def test_a_trained_sigma_head_is_calibrated_on_validation_and_predicts_flux_errors(tmp_path):
    train, val = toy_blends(400, seed=1), toy_blends(300, seed=2)
    train.save(tmp_path / "train"), val.save(tmp_path / "val")
    cfg = load_config(ROOT / "tests/config/tiny.yaml")
    cfg["train"]["models"]["blend2flux"] |= {"flux_sigma": True, "blends": "fixed", "epochs": 4}
    settings = model_settings(cfg, "blend2flux")
    summary = run_train_model(settings, seed=1, train_dir=tmp_path / "train", val_dir=tmp_path / "val",
                              state_dir=tmp_path / "state", model_out=tmp_path / "model.pt",
                              history_out=tmp_path / "history.csv", device="cpu")
    state = load_checkpoint(tmp_path / "model.pt")
    scale = state["model_config"]["sigma_scale"]
    assert scale == pytest.approx(summary["calibration"]["sigma_scale"]) and scale != 1.0
    assert summary["calibration"]["val_coverage68"] == pytest.approx(0.68, abs=0.01)
    history = pd.read_csv(tmp_path / "history.csv")
    assert {"val_flux_nll", "val_coverage68"} <= set(history.columns)
    model, mcfg = load_model(tmp_path / "model.pt")
    assert mcfg.sigma_scale == scale
    pred = predict_model(model, val, device="cpu", amp=False, channels_last=False, method="b2f")
    assert {"cen_flux_err", "comp_flux_err"} <= set(pred.catalog.columns)
    # the evaluation's coverage of the validation blends is the calibration's, by one definition
    stats = ev.uncertainty_stats(pred.catalog[["cen_flux", "comp_flux"]].to_numpy().ravel(),
                                 pred.catalog[["cen_flux_err", "comp_flux_err"]].to_numpy().ravel(),
                                 val.fluxes.ravel())
    assert stats["coverage68"] == pytest.approx(summary["calibration"]["val_coverage68"], abs=1e-3)


def test_the_evaluation_reports_coverage_and_warns_when_it_is_off():
    rng = np.random.default_rng(3)
    n = 4000
    cat = pd.DataFrame({"blend_id": np.arange(n), "distance_px": rng.uniform(3, 40, n)})
    for role in ("cen", "comp"):
        cat[f"{role}_flux"] = 10 ** rng.uniform(1, 2, n)
        cat[f"{role}_mag"] = 25 - 2.5 * np.log10(cat[f"{role}_flux"])
        cat[f"{role}_re_px"], cat[f"{role}_cls"] = 3.0, "disk"
    preds = {}
    for name, claimed in (("good", 0.1), ("overconfident", 0.03)):
        table = {"blend_id": cat["blend_id"]}
        for role in ("cen", "comp"):
            table[f"{role}_flux"] = cat[f"{role}_flux"] * np.exp(rng.laplace(0, 0.1 / 1.1394343, n))
            table[f"{role}_flux_err"] = claimed * table[f"{role}_flux"]
        preds[name] = Prediction(pd.DataFrame(table), method=name)
    galaxies = ev.galaxy_table(cat, preds, zeropoint=25.0)
    metrics = ev.summarise(galaxies, zeropoint=25.0)
    both = metrics[(metrics["group_by"] == "all") & (metrics["role"] == "both")].set_index("method")
    assert both.loc["good", "coverage68"] == pytest.approx(0.68, abs=0.02)
    assert both.loc["good", "coverage95"] == pytest.approx(0.95, abs=0.01)
    assert both.loc["good", "pit_ks"] < 0.03 and both.loc["overconfident", "pit_ks"] > 0.2
    assert both.loc["overconfident", "coverage68"] < 0.35
    assert metrics[metrics["group_by"] == "distance_px"]["coverage68"].notna().all()  # per bin too
    text = ev.summary_markdown(metrics, None, ev.iou_by_pair(galaxies), deep_methods=["good", "overconfident"])
    assert "## Flux uncertainties" in text
    assert "**Warning: overconfident" in text and "**Warning: good" not in text

    from blendphot import figures as fg

    fig = fg.figure_calibration(galaxies, metrics, ["good", "overconfident"], {"good": "C0", "overconfident": "C1"})
    pit, rel, by_d, by_m = fig.axes
    good, over = rel.get_lines()[:2]
    at = np.argmin(np.abs(good.get_xdata() - 0.68))
    assert good.get_ydata()[at] == pytest.approx(0.68, abs=0.03) and over.get_ydata()[at] < 0.3
    # one bar per method and bin, the evaluation's own coverage (summarise's default bins: 5 and 6 filled)
    for ax, group_by in ((by_d, "distance_px"), (by_m, "mag_diff")):
        cells = metrics[(metrics["group_by"] == group_by) & (metrics["role"] == "both")
                        & (metrics["reference"] == "isolated")]
        assert [b.get_height() for b in ax.patches] == list(cells["coverage68"])
        assert [t.get_text() for t in ax.get_xticklabels()] == list(cells.loc[cells["method"] == "good", "group"])
    assert len(by_d.patches) == 2 * 5 and len(by_m.patches) == 2 * 6
    assert pit.get_legend().get_texts()[0].get_text() == "good (8000 galaxies)"  # both galaxies of 4000 blends


def test_the_coverage_interval_counts_galaxies_not_blends():
    """20 galaxies in 50 blends each, every galaxy measured alike in all of them: the coverage
    is known to the precision of 20 galaxies, not of 1000 rows."""
    galaxy = np.repeat(np.arange(20), 50)
    true = np.full(galaxy.size, 100.0)
    flux = true * np.where(galaxy < 13, 1.05, 1.5)  # 13 of 20 galaxies within their interval
    err = 0.1 * flux
    stats = ev.uncertainty_stats(flux, err, true, galaxy)
    assert stats["n_sigma"] == 1000 and stats["n_galaxies"] == 20 and stats["coverage68"] == 0.65
    assert stats["coverage68_lo"] < 0.5 and stats["coverage68_hi"] > 0.8  # about ±0.2, binomial with n = 20
    rows = ev.uncertainty_stats(flux, err, true, np.arange(galaxy.size))  # as if every row were a new galaxy
    assert rows["coverage68_hi"] - rows["coverage68_lo"] < 0.07
    assert ev.uncertainty_stats(flux, err, true, galaxy) == stats  # seeded
    assert np.isnan(ev.uncertainty_stats(flux, err, true)["coverage68_lo"])  # no ids, no interval


def test_the_sigma_loss_reaches_only_the_sigma_layer():
    torch.manual_seed(0)
    model = build_model(_cfg())
    data = toy_blends(8)
    out = model(torch.from_numpy(data.images))
    log_flux_nll(out.fluxes, out.uncertainties, torch.tensor(data.fluxes)).backward()
    for name, param in model.named_parameters():
        moved = param.grad is not None and bool(param.grad.abs().sum() > 0)
        assert moved == name.startswith("head.sigma."), name


def test_a_sigma_head_leaves_the_trained_fluxes_exactly_as_without_it(tmp_path):
    from blendphot.train import TrainConfig, fit

    train, val = toy_blends(200, seed=1), toy_blends(100, seed=2)
    fluxes = {}
    for with_sigma in (False, True):
        cfg = ModelConfig("blend2flux", image_size=32, filters=4, normalisation="linear", noise_sigma=0.05,
                          flux_scale=30.0, flux_sigma=with_sigma)
        tcfg = TrainConfig(epochs=3, learning_rate=1e-3, seed=4, flux_loss="log", lr_patience=0)
        summary = fit(cfg, tcfg, train, val, tmp_path / str(with_sigma))
        model, _ = load_model(summary["best_path"])
        with torch.inference_mode():
            fluxes[with_sigma] = model(torch.from_numpy(val.images)).fluxes
    torch.testing.assert_close(fluxes[True], fluxes[False], rtol=0, atol=0)


def _laplace_errors(n: int, seed: int):
    """Pairs whose flux errors widen as a galaxy gets fainter than its companion."""
    from blendphot.photometry import LAPLACE_68, pair_mag_diff

    rng = np.random.default_rng(seed)
    true = 10 ** rng.uniform(0, 2, size=(n, 2))
    width = 0.05 + 0.1 * np.clip(pair_mag_diff(true) + 2.5, 0, 5)  # s68 from 0.05 to 0.55
    return true * np.exp(rng.laplace(scale=width / LAPLACE_68)), true


def test_an_image_networks_table_of_errors_covers_68_and_95_percent_in_every_bin():
    from blendphot.photometry import binned_s68, fit_binned_s68, log_flux_z, pair_mag_diff

    edges, s68 = fit_binned_s68(*_laplace_errors(6000, seed=1))
    assert len(edges) == 4 and len(s68) == 6 and np.all(np.diff(s68[:5]) > 0)  # fainter, wider
    fluxes, true = _laplace_errors(6000, seed=2)  # new galaxies, as the test blends are
    z = np.abs(log_flux_z(fluxes, binned_s68(fluxes, edges, s68), true)).ravel()
    bins = np.digitize(pair_mag_diff(fluxes).ravel(), edges)
    for b in range(5):
        assert abs(np.mean(z[bins == b] <= 1.0) - 0.68) < 0.04, b
        # a bin mixes widths: heavier tails than one Laplace, so the 95 % interval holds a little less
        assert abs(np.mean(z[bins == b] <= 2.629) - 0.95) < 0.05, b
    # ... and one plain width for all (the last entry) is worse in the extreme bins
    flat = np.abs(np.log(true / fluxes)).ravel() / s68[-1]
    assert np.mean(flat[bins == 0] <= 1.0) > 0.9 and np.mean(flat[bins == 4] <= 1.0) < 0.45


def test_a_galaxy_whose_companion_has_no_flux_gets_the_plain_width_and_no_flux_no_width():
    from blendphot.photometry import binned_s68

    errs = binned_s68(np.array([[10.0, np.nan], [np.nan, 5.0], [10.0, 10.0]]), [0.0], [0.1, 0.2, 0.3])
    assert errs[0, 0] == pytest.approx(3.0) and np.isnan(errs[0, 1])
    assert np.isnan(errs[1, 0]) and errs[1, 1] == pytest.approx(1.5)
    assert errs[2].tolist() == pytest.approx([2.0, 2.0])  # mag_self - mag_other = 0: the upper bin


def test_too_few_fluxes_to_calibrate_is_an_error():
    from blendphot.photometry import fit_binned_s68

    with pytest.raises(ValueError, match="too few"):
        fit_binned_s68(np.ones((20, 2)), np.ones((20, 2)))
    with pytest.raises(ValueError, match="sigma_s68"):
        ModelConfig("blend2image", image_size=32, flux_sigma=True, sigma_edges=(0.0,), sigma_s68=(0.1, 0.2))
