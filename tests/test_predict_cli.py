"""`blendphot predict`: a trained model over blends of one's own, checked against the training data."""
import json

import numpy as np
import pytest

from blendphot.cli import main
from blendphot.inference import run_predict, run_predict_model
from blendphot.prediction import Prediction
from blendphot.train import TrainConfig, fit
from tests.test_train import toy_config
from tests.toy import toy_blends

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
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
     r"blends\.npy: non-finite pixels in 50 blends \(first: index 0\)"),
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
