"""`blendphot predict`: a trained model over blends of one's own, checked against the training data."""
import json

import numpy as np
import pandas as pd
import pytest

from blendphot.cli import main
from blendphot.inference import run_predict, run_predict_model
from blendphot.mlflow_model import save_pyfunc
from blendphot.prediction import Prediction
from blendphot.train import TrainConfig, fit
from tests.toy import toy_blends

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, toy_config):
    """A tiny blend2flux with a σ head, trained 2 epochs on toy blends, saved where the workflow puts it."""
    root = tmp_path_factory.mktemp("predict")
    train, val = toy_blends(200, seed=1), toy_blends(60, seed=2)
    summary = fit(toy_config(data=train, flux_sigma=True), TrainConfig(epochs=2, learning_rate=1e-3, seed=3),
                  train, val, root / "state")
    model = root / "train/b2f/model.pt"
    model.parent.mkdir(parents=True)
    model.write_bytes(summary["best_path"].read_bytes())
    test = toy_blends(50, seed=9)
    test.save(root / "blends")
    return root, model, test


def test_predict_gives_the_workflows_numbers_with_magnitudes_errors_and_the_model(trained, capsys):
    root, model, test = trained
    assert main(["predict", str(model), str(root / "blends"), str(root / "mine"), "--zeropoint", "25"]) == 0
    assert "50 blends measured by b2f" in capsys.readouterr().out
    mine = Prediction.load(root / "mine").catalog
    run_predict_model(model, root / "blends", root / "workflow", name="b2f", device="cpu")
    theirs = Prediction.load(root / "workflow").catalog
    for col in ("blend_id", "cen_flux", "comp_flux", "cen_flux_err", "comp_flux_err"):
        np.testing.assert_array_equal(mine[col], theirs[col], err_msg=col)
    np.testing.assert_allclose(mine["cen_mag"], 25 - 2.5 * np.log10(mine["cen_flux"]))
    np.testing.assert_allclose(mine["comp_mag_err"], 1.0857362 * mine["comp_flux_err"] / mine["comp_flux"])
    assert (mine["model"] == "b2f").all() and mine["model_sha256"].str.len().eq(12).all()
    # the blend catalogue's own columns come along, renamed where a prediction's column has the name
    np.testing.assert_allclose(mine["catalog_cen_flux"], test.catalog["cen_flux"])
    info = json.loads((root / "mine/model.json").read_text())
    assert info["arch"] == "blend2flux" and info["zeropoint"] == 25 and info["sha256"] == mine["model_sha256"][0]


def test_a_bare_npy_array_of_blends_works(trained, tmp_path):
    _, model, test = trained
    np.save(tmp_path / "blends.npy", test.images)
    pred = run_predict(model, tmp_path / "blends.npy", tmp_path / "out", zeropoint=25.0, device="cpu",
                       show_progress=False)
    assert list(pred.catalog["blend_id"]) == list(range(50)) and (pred.catalog["cen_flux"] > 0).all()


@pytest.mark.parametrize("spoil, message", [
    (lambda im: im[:, :16, :16], "blends of 16 x 16 pixels, but .*model.pt was trained on 32 x 32"),
    (lambda im: np.where(np.arange(32)[None, :, None] == 5, np.nan, im),
     r"blends\.npy: non-finite pixels in 50 blends \(first: row 0, blend_id 0\)"),
    (lambda im: 3 * im, r"blends\.npy: background noise .* [23]\.\d\d times the .* e-/s of the blends "
                        r".*model\.pt was trained on"),
])
def test_blends_unlike_the_training_data_are_refused_with_one_clear_message(trained, tmp_path, spoil, message):
    _, model, test = trained
    np.save(tmp_path / "blends.npy", np.ascontiguousarray(spoil(test.images)).astype(np.float32))
    with pytest.raises(Exception, match=message):
        run_predict(model, tmp_path / "blends.npy", tmp_path / "out", zeropoint=25.0, device="cpu",
                    show_progress=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.tmp-*"))  # nothing partial


def test_a_folder_of_other_files_is_never_overwritten(trained, tmp_path, capsys):
    root, model, _ = trained
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["predict", str(model), str(root / "blends"), str(tmp_path)]) == 1
    assert "holds other files than a prediction's" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def _mosaic(path, *, n=3, size=200, scale_arcsec=0.06, with_wcs=True, seed=4):
    """A noisy FITS mosaic with ``n`` blends of the toy kind pasted at known places; returns
    the central galaxies' 0-based pixel positions and the stamps a 32-pixel cut gives."""
    from astropy.io import fits
    from astropy.wcs import WCS

    rng = np.random.default_rng(seed)
    image = rng.normal(0, 0.05, (size, size)).astype(np.float32)
    blends = toy_blends(n, seed=seed, noise=0.0)
    centres = [(40 + 60 * k, 50 + 45 * k) for k in range(n)]  # (x, y)
    for (x, y), blend in zip(centres, blends.images, strict=True):
        image[y - 16:y + 16, x - 16:x + 16] += blend
    header = fits.Header()
    if with_wcs:
        w = WCS(naxis=2)
        w.wcs.ctype, w.wcs.crval = ["RA---TAN", "DEC--TAN"], [53.1, -27.8]
        w.wcs.crpix, w.wcs.cdelt = [size / 2, size / 2], [-scale_arcsec / 3600, scale_arcsec / 3600]
        header = w.to_header()
    fits.PrimaryHDU(image, header=header).writeto(path)
    stamps = np.stack([image[y - 16:y + 16, x - 16:x + 16] for x, y in centres])
    return centres, stamps


def test_a_fits_mosaic_with_a_table_of_pairs_gives_the_numbers_of_its_stamps(trained, tmp_path):
    from astropy.io import fits
    from astropy.wcs import WCS

    _, model, _ = trained
    centres, stamps = _mosaic(tmp_path / "mosaic.fits")
    np.save(tmp_path / "stamps.npy", stamps)
    wcs = WCS(fits.getheader(tmp_path / "mosaic.fits"))
    ra, dec = wcs.all_pix2world([c[0] for c in centres], [c[1] for c in centres], 0)
    pd.DataFrame({"id": ["a", "b", "c"], "ra": ra, "dec": dec}).to_csv(tmp_path / "pairs.csv", index=False)
    pd.DataFrame({"x": [c[0] for c in centres], "y": [c[1] for c in centres]}).to_csv(tmp_path / "xy.csv", index=False)
    kw = {"zeropoint": 25.0, "device": "cpu", "show_progress": False}
    sky = run_predict(model, tmp_path / "mosaic.fits", tmp_path / "sky", pairs=tmp_path / "pairs.csv", **kw).catalog
    pix = run_predict(model, tmp_path / "mosaic.fits", tmp_path / "pix", pairs=tmp_path / "xy.csv", **kw).catalog
    ref = run_predict(model, tmp_path / "stamps.npy", tmp_path / "ref", **kw).catalog
    for col in ("cen_flux", "comp_flux", "cen_flux_err"):
        np.testing.assert_array_equal(sky[col], ref[col], err_msg=col)
        np.testing.assert_array_equal(pix[col], ref[col], err_msg=col)
    assert list(sky["id"]) == ["a", "b", "c"] and np.allclose(sky["x"], [c[0] for c in centres])


@pytest.mark.parametrize("case, message", [
    ("edge", r"pairs\.csv: 1 of 2 pairs cannot be measured, each needs a 32-pixel stamp of data around its central "
             r"galaxy: id edge \(within 16 px of the edge or off it\)"),
    ("no_wcs", r"mosaic\.fits: no celestial WCS in the header"),
    ("scale", r"mosaic\.fits: 0\.1 arcsec per pixel, but the model was trained at 0\.06"),
    ("no_pairs", r"mosaic\.fits: a FITS image needs a table of pairs \(--pairs\)"),
    ("columns", r"pairs\.csv: the pairs table needs the central galaxy's ra and dec"),
])
def test_a_mosaic_that_cannot_be_measured_says_why(trained, tmp_path, case, message):
    _, model, _ = trained
    centres, _ = _mosaic(tmp_path / "mosaic.fits", n=1, with_wcs=case != "no_wcs",
                         scale_arcsec=0.1 if case == "scale" else 0.06)
    table = pd.DataFrame({"id": ["ok", "edge"], "x": [centres[0][0], 5], "y": [centres[0][1], 100]})
    if case == "columns":
        table = table.rename(columns={"x": "col", "y": "row"})
    table.to_csv(tmp_path / "pairs.csv", index=False)
    with pytest.raises(Exception, match=message):
        run_predict(model, tmp_path / "mosaic.fits", tmp_path / "out", zeropoint=25.0, device="cpu",
                    show_progress=False, pairs=None if case == "no_pairs" else tmp_path / "pairs.csv")
    assert not (tmp_path / "out").exists()
    if case == "edge":  # --skip measures the others and lists the one left out
        pred = run_predict(model, tmp_path / "mosaic.fits", tmp_path / "out", zeropoint=25.0, device="cpu",
                           show_progress=False, pairs=tmp_path / "pairs.csv", skip=True)
        assert list(pred.catalog["id"]) == ["ok"]
        skipped = pd.read_csv(tmp_path / "out/skipped.csv")
        assert list(skipped["id"]) == ["edge"] and "edge" in skipped["reason"][0]


def test_a_mask_model_on_a_mosaic_writes_masks_with_each_stamps_wcs(tmp_path, toy_config):
    from astropy.io import fits
    from astropy.wcs import WCS

    train, val = toy_blends(60, seed=1), toy_blends(20, seed=2)
    summary = fit(toy_config("unet", data=train), TrainConfig(epochs=1, seed=3), train, val, tmp_path / "state")
    model = tmp_path / "train/unet/model.pt"
    model.parent.mkdir(parents=True)
    model.write_bytes(summary["best_path"].read_bytes())
    centres, _ = _mosaic(tmp_path / "mosaic.fits", n=2)
    pd.DataFrame({"x": [c[0] for c in centres], "y": [c[1] for c in centres]}).to_csv(tmp_path / "p.csv", index=False)
    run_predict(model, tmp_path / "mosaic.fits", tmp_path / "out", zeropoint=25.0, device="cpu",
                show_progress=False, pairs=tmp_path / "p.csv")
    mosaic = WCS(fits.getheader(tmp_path / "mosaic.fits"))
    with fits.open(tmp_path / "out/masks.fits") as hdul:
        assert len(hdul) == 3 and hdul[1].data.shape == (2, 32, 32)
        for (x, y), hdu in zip(centres, hdul[1:], strict=True):
            stamp = WCS(hdu.header).celestial  # the stamp's pixel (16, 16) is the central galaxy's place on the sky
            np.testing.assert_allclose(stamp.all_pix2world(16, 16, 0), mosaic.all_pix2world(x, y, 0))


def test_a_model_logged_by_a_training_run_predicts_from_its_mlflow_uri(trained, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    root, model, test = trained
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("t", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    # as the train stage logs it: in MLflow's model format, the checkpoint among its artifacts
    client.log_artifacts(run.info.run_id, str(save_pyfunc(model, tmp_path / "pyfunc")), "model")
    client.set_terminated(run.info.run_id)
    args = ["predict", f"runs:/{run.info.run_id}/model", str(root / "blends"), str(tmp_path / "out"),
            "--tracking-uri", uri, "--name", "b2f"]
    assert main(args) == 0
    assert json.loads((tmp_path / "out/model.json").read_text())["path"] == f"runs:/{run.info.run_id}/model"
    run_predict(model, root / "blends", tmp_path / "local", zeropoint=25.9463, device="cpu", show_progress=False)
    np.testing.assert_array_equal(Prediction.load(tmp_path / "out").catalog["cen_flux"],
                                  Prediction.load(tmp_path / "local").catalog["cen_flux"])
    # MLflow's own tools load and run it, with the same numbers
    import mlflow.pyfunc

    mlflow.set_tracking_uri(uri)
    try:
        table = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict(test.images)
    finally:
        mlflow.set_tracking_uri(None)
    workflow = Prediction.load(tmp_path / "local").catalog  # a CSV: its numbers to the digits it prints
    for col in ("cen_flux", "comp_flux", "cen_flux_err", "comp_flux_err"):
        np.testing.assert_allclose(table[col], workflow[col], rtol=1e-8, err_msg=col)
    flat = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc")).predict(pd.DataFrame(test.images.reshape(len(test), -1)))
    np.testing.assert_array_equal(flat["cen_flux"], table["cen_flux"])  # rows of pixels, as `mlflow models serve`
    assert main(["predict", "runs:/0123456789abcdef/model", str(root / "blends"), str(tmp_path / "x"),
                 "--tracking-uri", uri]) == 1
    assert "runs:/0123456789abcdef/model: cannot download the model from MLflow" in capsys.readouterr().err
