"""The shared prediction format and model prediction."""
import numpy as np
import pandas as pd
import pytest
import torch

from blendphot.errors import InputError
from blendphot.inference import predict_model
from blendphot.models import ModelConfig, build_model
from blendphot.prediction import Prediction
from tests.toy import toy_blends


def test_prediction_round_trip(tmp_path):
    cat = pd.DataFrame({"blend_id": [0, 1], "cen_flux": [1.0, np.nan], "comp_flux": [2.5, 3.25], "n_detected": [2, 1]})
    masks = np.zeros((2, 2, 8, 8), np.uint8)
    masks[1, 0, 2:4, 2:4] = 1
    Prediction(cat, masks, "sep").save(tmp_path / "sep")
    back = Prediction.load(tmp_path / "sep")
    pd.testing.assert_frame_equal(back.catalog, cat)
    assert np.array_equal(back.masks, masks) and back.method == "sep"
    Prediction(cat, None, "net").save(tmp_path / "net")
    assert Prediction.load(tmp_path / "net").masks is None


def test_prediction_format_errors(tmp_path):
    with pytest.raises(InputError, match="missing column 'comp_flux'"):
        Prediction(pd.DataFrame({"blend_id": [0], "cen_flux": [1.0]}))
    with pytest.raises(InputError, match="do not match the 1 predictions"):
        Prediction(pd.DataFrame({"blend_id": [0], "cen_flux": [1.0], "comp_flux": [1.0]}), np.zeros((2, 2, 4, 4)))
    pd.DataFrame({"blend_id": [0], "cen_flux": [1.0], "comp_flux": [1.0]}).to_csv(tmp_path / "predictions.csv",
                                                                               index=False)
    np.save(tmp_path / "masks.npy", np.zeros((3, 2, 4, 4), np.uint8))
    with pytest.raises(InputError, match=r"masks.npy: masks of shape \(3, 2, 4, 4\) do not match the 1 rows"):
        Prediction.load(tmp_path)


@pytest.mark.parametrize("arch", ["blend2flux", "unet", "blend2mask2flux"])
def test_predict_model_fills_the_format_and_matches_the_model(arch):
    data = toy_blends(10)
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch, image_size=32, filters=4, unet_depth=3, unet_filters=4,
                                    flux_scale=20.0)).eval()
    pred = predict_model(model, data, device="cpu", batch_size=4, method=arch)
    assert list(pred.catalog.columns) == ["blend_id", "cen_flux", "comp_flux"]
    with torch.inference_mode():
        out = model(torch.from_numpy(data.images).unsqueeze(1))
    if out.fluxes is None:
        assert pred.catalog[["cen_flux", "comp_flux"]].isna().all().all()
    else:
        assert np.allclose(pred.catalog[["cen_flux", "comp_flux"]], out.fluxes.numpy(), rtol=1e-5)
    if out.mask_logits is None:
        assert pred.masks is None
    else:
        assert np.array_equal(pred.masks, (out.mask_logits[:, :2] > 0).numpy().astype(np.uint8))
