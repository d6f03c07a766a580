"""The registry of network architectures: what each one takes and what it produces.

Every place that needs to know what a network does (its training loss, its prediction
files, which evaluations and figures it enters, which config keys apply to it, its cost in
FLOPs) asks this registry, never the architecture's name. Adding a network means writing its
module (in :mod:`blendphot.models`), one :class:`Architecture` entry below, and its config.

This module imports no torch: the workflow reads it when it builds the DAG on a submit
host, and the evaluation stage, whose environment has no torch, reads it too. The network
class is named by its dotted path and imported only by :func:`blendphot.models.build_model`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ARCHITECTURES", "Architecture", "architecture", "has_fluxes", "has_masks"]


@dataclass(frozen=True)
class Architecture:
    """One network architecture.

    network : ``module:Class`` of the :class:`torch.nn.Module`, built from a ``ModelConfig``
    fluxes, masks, images, uncertainties : what its output holds (a ``ModelOutput``
        with these fields set): the two galaxies' fluxes, their mask logits, deblended
        images, flux uncertainties
    flux_head_channels : input channels of its blend2flux-like flux head (convolutions, then
        dense layers; config keys ``filters``, ``conv_layers``, ``dense_*``), or 0 if none
    unet : whether it has a U-Net (config keys ``unet_*``, ``overlap_channel``)
    init_from : the architecture whose checkpoint it may start from (``train.models.<m>.init_from``)
    palette : the colour family of its curves in the figures
    """

    name: str
    network: str
    fluxes: bool = False
    masks: bool = False
    images: bool = False
    uncertainties: bool = False
    flux_head_channels: int = 0
    unet: bool = False
    init_from: str | None = None
    palette: tuple[str, ...] = ("#ff7f0e", "#b35900")

    @property
    def predicts_fluxes(self) -> bool:
        """Whether its predictions hold fluxes: from a flux head, or measured on its images."""
        return self.fluxes or self.images

    @property
    def predicts_masks(self) -> bool:
        """Whether its predictions hold masks: thresholded mask logits, or its images' segments."""
        return self.masks or self.images

    def __post_init__(self):
        if not (self.fluxes or self.masks or self.images):
            raise ValueError(f"architecture {self.name!r} produces nothing")
        if self.fluxes != bool(self.flux_head_channels):
            raise ValueError(f"architecture {self.name!r}: fluxes come from a flux head and only from one")
        if (self.masks or self.images) and not self.unet:
            raise ValueError(f"architecture {self.name!r}: masks and images come from a U-Net")


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        # Fig. 3: convolutions and dense layers, blend -> the two fluxes.
        Architecture("blend2flux", "blendphot.models:Blend2Flux", fluxes=True, flux_head_channels=1,
                     palette=("#000000", "#555555", "#8c8c8c", "#b0b0b0")),
        # Fig. 4: blend -> the two galaxies' masks.
        Architecture("unet", "blendphot.models:UNet", masks=True, unet=True),
        # §3.2: the U-Net's masks and the blend into a smaller blend2flux; both outputs.
        Architecture("blend2mask2flux", "blendphot.models:Blend2Mask2Flux", fluxes=True, masks=True,
                     flux_head_channels=3, unet=True, init_from="unet",
                     palette=("#d62728", "#9b1c1c", "#f08080")),
        # Beyond the paper: blend -> the two galaxies' images (a U-Net splitting the blend's
        # light pixel by pixel), measured afterwards like any image.
        Architecture("blend2image", "blendphot.models:Blend2Image", images=True, unet=True, init_from="unet",
                     palette=("#1f77b4", "#0b3d66", "#6baed6")),
    )
}


def architecture(name: str) -> Architecture:
    """The registry entry of ``name``; a ValueError listing the known ones otherwise."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None


def has_fluxes(models: dict[str, dict]) -> list[str]:
    """Names of the ``train.models`` entries whose predictions hold fluxes (:attr:`Architecture.predicts_fluxes`)."""
    return [name for name, entry in models.items() if architecture(entry["arch"]).predicts_fluxes]


def has_masks(models: dict[str, dict]) -> list[str]:
    """Names of the ``train.models`` entries whose predictions hold masks (:attr:`Architecture.predicts_masks`)."""
    return [name for name, entry in models.items() if architecture(entry["arch"]).predicts_masks]
