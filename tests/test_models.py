"""Architectures: the paper's parameter counts (Table 2, §3.2), shapes and output ranges."""
import importlib

import pytest
import torch

from blendphot.architectures import ARCHITECTURES, Architecture, architecture, has_fluxes, has_masks
from blendphot.models import (
    ConvPool,
    FluxOutput,
    InputNorm,
    ModelConfig,
    ModelOutput,
    build_model,
    count_parameters,
    mask_probabilities,
)


@pytest.mark.parametrize("filters, millions", [(64, 1.6), (256, 25.7), (512, 102.7)])
def test_blend2flux_parameter_counts_match_table2(filters, millions):
    n = count_parameters(build_model(ModelConfig("blend2flux", filters=filters)))
    assert n / 1e6 == pytest.approx(millions, rel=0.02)


def test_blend2mask2flux_has_about_18_5_million_parameters():
    cfg = ModelConfig("blend2mask2flux", filters=128, dense_units=256)  # config/paper.yaml
    assert count_parameters(build_model(cfg)) / 1e6 == pytest.approx(18.5, rel=0.02)


def test_paper_config_models_have_the_paper_sizes(tmp_path):
    from blendphot.config import load_config, model_settings

    config = load_config("config/paper.yaml")
    sizes = {name: count_parameters(build_model(ModelConfig(**model_settings(config, name)["model"]))) / 1e6
             for name in config["train"]["models"]}
    assert sizes["blend2flux_f64"] == pytest.approx(1.6, rel=0.02)
    assert sizes["blend2flux"] == pytest.approx(25.7, rel=0.02)
    assert sizes["blend2flux_f512"] == pytest.approx(102.7, rel=0.02)
    assert sizes["blend2mask2flux"] == pytest.approx(18.5, rel=0.02)


def test_filters_double_every_other_layer():
    convs = [m for m in ConvPool(1, 8, 5).net if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 8, 16, 16, 32]


@pytest.mark.parametrize("overlap, centre", [(False, False), (True, True)])
def test_shapes_of_every_architecture(overlap, centre):
    x = torch.rand(3, 64, 64)
    small = dict(image_size=64, filters=4, unet_depth=3, unet_filters=4, overlap_channel=overlap, flux_scale=20.0,
                 unet_centre_channel=centre)
    channels = 3 if overlap else 2
    for arch, spec in ARCHITECTURES.items():
        out = build_model(ModelConfig(arch, **small))(x)
        assert isinstance(out, ModelOutput)
        # the output holds exactly what the registry says the architecture produces
        assert (out.fluxes is not None) == spec.fluxes and (out.mask_logits is not None) == spec.masks
        assert (out.images is not None) == spec.images and out.uncertainties is None
        if spec.images:
            assert out.images.shape == (3, 2, 64, 64)
        if spec.fluxes:
            assert out.fluxes.shape == (3, 2)
        if spec.masks:
            assert out.mask_logits.shape == (3, channels, 64, 64)


def test_fluxes_are_positive_and_start_at_the_flux_scale():
    # The last layer's bias is zero, so an all-zero input predicts exactly flux_scale.
    model = build_model(ModelConfig("blend2flux", image_size=32, filters=4, flux_scale=37.5))
    with torch.no_grad():
        for p in model.head.dense.net[-1].parameters():
            p.zero_()
        assert torch.allclose(model(torch.zeros(2, 32, 32)).fluxes, torch.full((2, 2), 37.5))
    assert (FluxOutput(10.0)(torch.tensor([-100.0, 0.0, 100.0])) > 0).all()


def test_input_normalisations():
    x = torch.tensor([[[-2.0, 0.0, 2.0, 200.0]]])
    assert torch.allclose(InputNorm(2.0, "linear")(x), x.unsqueeze(1) / 2)
    assert torch.allclose(InputNorm(2.0, "arcsinh")(x), torch.asinh(x.unsqueeze(1) / 2))


def test_mask_probabilities_are_the_sigmoid():
    logits = torch.tensor([-50.0, 0.0, 50.0])
    assert torch.allclose(mask_probabilities(logits), torch.tensor([0.0, 0.5, 1.0]))


def test_model_config_round_trip_and_errors():
    cfg = ModelConfig("unet", unet_depth=4, noise_sigma=0.01)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        ModelConfig("resnet")
    with pytest.raises(ValueError, match="not divisible"):
        ModelConfig("blend2flux", image_size=100)
    with pytest.raises(ValueError, match=r"model config keys \['depth'\] are not known"):
        ModelConfig.from_dict({**cfg.to_dict(), "depth": 3})


def test_the_registry_is_consistent():
    for name, spec in ARCHITECTURES.items():
        assert spec.name == name and architecture(name) is spec
        module, cls = spec.network.split(":")
        assert hasattr(importlib.import_module(module), cls)
        assert spec.init_from is None or spec.init_from in ARCHITECTURES
    with pytest.raises(ValueError, match="produces nothing"):
        Architecture("empty", "x:Y")
    with pytest.raises(ValueError, match="masks and images come from a U-Net"):
        Architecture("bad", "x:Y", masks=True)
    assert has_fluxes({"a": {"arch": "unet"}, "b": {"arch": "blend2mask2flux"}}) == ["b"]
    assert has_masks({"a": {"arch": "blend2flux"}, "b": {"arch": "blend2mask2flux"}}) == ["b"]
    # an image network's predictions hold fluxes and masks, both measured on its images
    assert has_fluxes({"i": {"arch": "blend2image"}}) == has_masks({"i": {"arch": "blend2image"}}) == ["i"]


@pytest.mark.parametrize("arch", ["blend2flux", "blend2mask2flux"])
def test_an_equivariant_flux_output_scales_with_the_blend(arch):
    cfg = ModelConfig(arch, image_size=32, filters=4, unet_depth=2, unet_filters=4, normalisation="linear",
                      flux_output="equivariant", noise_sigma=0.05, flux_scale=20.0)
    model = build_model(cfg).eval()
    if arch == "blend2flux":
        assert not any(name.endswith("bias") for name, _ in model.head.named_parameters())
    x = torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.05
    x[:, 14:18, 14:18] += 2.0
    with torch.no_grad():
        a, b = model(x).fluxes, model(4 * x).fluxes
    assert (a > 0).all()
    if arch == "blend2flux":  # exactly homogeneous; blend2mask2flux's U-Net masks are not
        assert torch.allclose(b, 4 * a, rtol=1e-5)
    with pytest.raises(ValueError, match="equivariant flux output needs normalisation: linear"):
        ModelConfig(arch, normalisation="arcsinh", flux_output="equivariant")


def test_the_unet_centre_channel_is_the_distance_to_the_centre_pixel():
    unet = build_model(ModelConfig("unet", image_size=16, unet_depth=2, unet_filters=4, unet_centre_channel=True))
    centre = unet.centre[0, 0]
    assert centre[8, 8] == 0 and centre[8, 0] == pytest.approx(1.0) and centre[0, 0] == pytest.approx(2 ** 0.5)
    assert unet.inc[0].in_channels == 2
