"""The paper's three networks (§3), built from small named parts.

blend2flux (Fig. 3)
    ``conv_layers`` 3×3 ReLU convolutions with 2×2 max-pooling (``pooling: avg``:
    average-pooling, which keeps the sums of the light a flux is made of) between them; the first has
    ``filters`` kernels and the count doubles every other layer (f, f, 2f, 2f, 4f); flatten;
    ``dense_layers`` hidden dense layers of ``dense_units`` (default: ``filters``) and a
    dense layer with the two fluxes (central, companion). At f = 64 / 256 / 512 this has
    1.6 / 25.7 / 102.7 million parameters, as in Table 2.
U-Net (Fig. 4)
    ``depth`` levels of two 3×3 ReLU convolutions, max-pooling down, 2×2 up-convolution
    and skip concatenation up; ``filters`` kernels at the top level, doubling per level;
    a 1×1 convolution to one channel per galaxy (central, companion[, overlap]). It returns
    logits: the sigmoid of the paper's last layer is applied by :func:`mask_probabilities`
    and, during training, inside the numerically stable ``BCEWithLogits`` loss. With
    ``unet_centre_channel`` a second input channel holds each pixel's distance to the centre
    pixel, where the central galaxy is: convolutions alone do not know where they are, and
    "central" and "companion" are defined by position.
blend2mask2flux
    the U-Net, whose mask probabilities are concatenated with the blend (3 channels) into
    a smaller blend2flux. It returns both the fluxes and the mask logits.
blend2image (beyond the paper)
    the U-Net with one output channel: the fraction of each pixel's light that belongs to
    the central galaxy, which splits the blend into the two galaxies' images.

Every model starts with :class:`InputNorm` (raw pixels in e-/s → network scale) and ends,
for fluxes, with :class:`FluxOutput`. Both are part of the model, so a checkpoint maps raw
pixels to fluxes in catalogue units with nothing else. Two flux outputs (``flux_output``):

``log``
    ``flux_scale · exp(x)``: positive fluxes, a target scale near 1 and an initial
    prediction equal to the training median.
``equivariant``
    ``flux_scale · |x|`` from a flux head without biases. With the linear input
    normalisation, every layer (convolution, ReLU, max-pooling, dense) is then positively
    homogeneous, so the network is exactly flux-equivariant: a blend k times brighter gives
    fluxes k times larger, as any photometric measurement does, and the network never has
    to approximate a logarithm over the two decades of flux the galaxies span.
    For blend2mask2flux the head sees the blend and the blend times each mask (degree 1),
    not the masks themselves (degree 0).
"""

from __future__ import annotations

import importlib
import itertools
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
from torch import nn

from blendphot.architectures import ARCHITECTURES, architecture

__all__ = ["ARCHITECTURES", "Blend2Flux", "Blend2Image", "Blend2Mask2Flux", "ConvPool", "DenseStack", "DoubleConv",
           "Down", "FluxOutput", "InputNorm", "ModelConfig", "ModelOutput", "UNet", "Up", "build_model",
           "count_parameters", "mask_probabilities"]

_MASK_PRIOR_LOGIT = -2.944  # logit(0.05)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; saved inside every checkpoint.

    ``filters``/``conv_layers``/``dense_*`` describe the flux network (for blend2mask2flux,
    its head); ``unet_depth``/``unet_filters``/``overlap_channel`` the U-Net.
    ``normalisation`` is ``"arcsinh"`` (arcsinh(F/σ)) or ``"linear"`` (F/σ, i.e. raw pixels
    up to a constant); ``noise_sigma`` (e-/s) and ``flux_scale`` (catalogue flux units) are
    measured on the training set. ``flux_sigma`` adds a second output per galaxy, the
    half-width of the 68 % interval of its log-flux (a heteroscedastic Laplace), multiplied
    by ``sigma_scale``, the factor that calibrates it on the validation blends after training.
    An image network's fluxes are measured on its images: with ``flux_sigma`` their uncertainty
    is looked up in ``sigma_edges``/``sigma_s68``, the table of
    :func:`blendphot.photometry.fit_binned_s68` made on the validation blends after training.
    """

    arch: str
    image_size: int = 128
    filters: int = 256
    conv_layers: int = 5
    dense_units: int | None = None
    dense_layers: int = 2
    dense_activation: str = "relu"
    unet_depth: int = 5
    unet_filters: int = 32
    overlap_channel: bool = False
    normalisation: str = "arcsinh"
    flux_output: str = "log"
    pooling: str = "max"
    unet_centre_channel: bool = False
    flux_sigma: bool = False
    noise_sigma: float = 1.0
    flux_scale: float = 1.0
    sigma_scale: float = 1.0
    sigma_edges: tuple[float, ...] = ()
    sigma_s68: tuple[float, ...] = ()

    def __post_init__(self):
        architecture(self.arch)  # a ValueError naming the known ones
        if self.normalisation not in ("arcsinh", "linear"):
            raise ValueError(f"unknown normalisation {self.normalisation!r}")
        if self.pooling not in ("max", "avg"):
            raise ValueError(f"unknown pooling {self.pooling!r}")
        if self.flux_output not in ("log", "equivariant"):
            raise ValueError(f"unknown flux output {self.flux_output!r}")
        if self.flux_output == "equivariant" and (self.normalisation != "linear" or self.dense_activation != "relu"):
            raise ValueError("an equivariant flux output needs normalisation: linear and dense_activation: relu "
                             "(arcsinh and SELU are not homogeneous)")
        if self.dense_activation not in ("relu", "selu"):
            raise ValueError(f"unknown dense activation {self.dense_activation!r}")
        if self.image_size % 2 ** (self.conv_layers - 1) or self.image_size % 2 ** (self.unet_depth - 1):
            raise ValueError(f"image size {self.image_size} is not divisible by the networks' pooling")
        if not self.noise_sigma > 0 or not self.flux_scale > 0 or not self.sigma_scale > 0:
            raise ValueError("noise_sigma, flux_scale and sigma_scale must be positive")
        spec = architecture(self.arch)
        if self.flux_sigma and not spec.images and (not spec.fluxes or self.flux_output != "log"):
            raise ValueError("flux_sigma needs an architecture with fluxes and flux_output: log, or an image network")
        if self.sigma_s68 and len(self.sigma_s68) != len(self.sigma_edges) + 2:
            raise ValueError("sigma_s68 needs one value per bin of sigma_edges and one for all galaxies")

    @property
    def mask_channels(self) -> int:
        return 3 if self.overlap_channel else 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """The config saved in a checkpoint; a key this version does not know is an error."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"model config keys {unknown} are not known to this version of blendphot")
        return cls(**data)


class ModelOutput(NamedTuple):
    """What a network returns; the fields its architecture does not produce are None.

    fluxes : (N, 2) float32, central and companion, in catalogue flux units
    mask_logits : (N, C, S, S), central, companion[, overlap]; :func:`mask_probabilities`
    images : (N, 2, S, S) deblended images of the two galaxies (e-/s)
    uncertainties : (N, 2) flux uncertainties, in the units of ``fluxes``
    """

    fluxes: torch.Tensor | None = None
    mask_logits: torch.Tensor | None = None
    images: torch.Tensor | None = None
    uncertainties: torch.Tensor | None = None


class InputNorm(nn.Module):
    """(N, S, S) or (N, 1, S, S) raw pixels → (N, 1, S, S) arcsinh(F/σ) or F/σ."""

    def __init__(self, noise_sigma: float, kind: str):
        super().__init__()
        self.kind = kind
        self.register_buffer("inv_sigma", torch.tensor(1.0 / noise_sigma, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        x = x * self.inv_sigma
        return torch.asinh(x) if self.kind == "arcsinh" else x


class FluxOutput(nn.Module):
    """Network output x → fluxes ``flux_scale · exp(x)`` (``log``) or ``flux_scale · |x|``
    (``equivariant``), in float32 whatever the autocast."""

    def __init__(self, flux_scale: float, kind: str = "log"):
        super().__init__()
        self.kind = kind
        self.register_buffer("log_scale", torch.tensor(float(torch.log(torch.tensor(flux_scale)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "equivariant":
            # |x| keeps a gradient on both sides; the floor keeps the log-loss finite.
            return (x.float().abs() * self.log_scale.exp()).clamp(min=1e-30)
        return torch.exp(x.float().clamp(-30.0, 30.0) + self.log_scale)


class ConvPool(nn.Module):
    """The convolutional part of blend2flux: 3×3 ReLU convolutions, max-pooling between."""

    def __init__(self, in_channels: int, filters: int, layers: int, bias: bool = True, pooling: str = "max"):
        super().__init__()
        pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
        parts, c_in = [], in_channels
        for i in range(layers):
            c_out = filters * 2 ** (i // 2)
            parts += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias), nn.ReLU(inplace=True)]
            if i < layers - 1:
                parts.append(pool(2))
            c_in = c_out
        self.net = nn.Sequential(*parts)
        self.out_channels = c_in

    def forward(self, x):
        return self.net(x)


class DenseStack(nn.Module):
    """Flatten, ``layers`` hidden dense layers, and a linear layer to ``outputs`` values.

    The output layer always runs in float32, also under bf16 autocast: its outputs are
    log-fluxes, and bf16's 8-bit mantissa would round them to 0.2-0.8 % in flux.
    """

    def __init__(self, in_features: int, units: int, layers: int, outputs: int, activation: str, bias: bool = True):
        super().__init__()
        act = nn.ReLU if activation == "relu" else nn.SELU
        parts, n_in = [nn.Flatten()], in_features
        for _ in range(layers):
            parts += [nn.Linear(n_in, units, bias=bias), act(inplace=True)]
            n_in = units
        last = nn.Linear(n_in, outputs, bias=bias)
        if bias:
            nn.init.zeros_(last.bias)
        parts.append(last)
        self.net = nn.Sequential(*parts)

    @property
    def hidden_features(self) -> int:
        return self.net[-1].in_features

    def forward(self, x, *, with_hidden: bool = False):
        """The outputs (float32), and with ``with_hidden`` the last hidden layer's (float32)."""
        hidden = self.net[:-1](x).float()
        kind = hidden.device.type
        if kind in ("cpu", "cuda") and torch.is_autocast_enabled(kind):
            with torch.autocast(device_type=kind, enabled=False):
                out = self.net[-1](hidden)
        else:
            out = self.net[-1](hidden)
        return (out, hidden) if with_hidden else out


class _FluxHead(nn.Module):
    """ConvPool → DenseStack → FluxOutput on an already normalised (N, C, S, S) input.

    Returns (fluxes, uncertainties). With ``flux_sigma`` a linear layer reads the last hidden
    layer, detached, into the log of s68, the half-width of the 68 % interval of each galaxy's
    log-flux: it is learnt on the features the fluxes are made of, and its loss never moves the
    fluxes. The uncertainty is F·s68·``sigma_scale``, the flux's 1σ-equivalent error (None
    without ``flux_sigma``).
    """

    def __init__(self, cfg: ModelConfig, in_channels: int):
        super().__init__()
        bias = cfg.flux_output != "equivariant"
        self.features = ConvPool(in_channels, cfg.filters, cfg.conv_layers, bias=bias, pooling=cfg.pooling)
        side = cfg.image_size // 2 ** (cfg.conv_layers - 1)
        self.dense = DenseStack(self.features.out_channels * side * side, cfg.dense_units or cfg.filters,
                                cfg.dense_layers, 2, cfg.dense_activation, bias=bias)
        self.flux = FluxOutput(cfg.flux_scale, cfg.flux_output)
        self.sigma = nn.Linear(self.dense.hidden_features, 2) if cfg.flux_sigma else None
        self.sigma_scale = float(cfg.sigma_scale)  # set by calibration: a config value, not a weight

    def forward(self, x):
        if self.sigma is None:
            return self.flux(self.dense(self.features(x))), None
        out, hidden = self.dense(self.features(x), with_hidden=True)
        fluxes = self.flux(out)
        log_sigma = self.sigma(hidden.detach()).float().clamp(-9.0, 3.0)  # s68 of ln F within [1e-4, 20]
        return fluxes, fluxes.detach() * log_sigma.exp() * self.sigma_scale


class Blend2Flux(nn.Module):
    """Blend image (N, S, S) in e-/s → fluxes (N, 2): central, companion."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.norm = InputNorm(cfg.noise_sigma, cfg.normalisation)
        self.head = _FluxHead(cfg, in_channels=1)

    def forward(self, blend: torch.Tensor) -> ModelOutput:
        fluxes, uncertainties = self.head(self.norm(blend))
        return ModelOutput(fluxes=fluxes, uncertainties=uncertainties)


class DoubleConv(nn.Sequential):
    """Two 3×3 ReLU convolutions: one U-Net block."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))


class Down(nn.Sequential):
    """Max-pool, then a block."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))


class Up(nn.Module):
    """2×2 up-convolution, concatenation with the skip connection, then a block."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x, skip):
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """Blend (N, S, S) → mask logits (N, C, S, S), channels central, companion[, overlap]."""

    def __init__(self, cfg: ModelConfig, out_channels: int | None = None, prior_logit: float = _MASK_PRIOR_LOGIT):
        super().__init__()
        self.cfg = cfg
        widths = [cfg.unet_filters * 2 ** i for i in range(cfg.unet_depth)]
        self.norm = InputNorm(cfg.noise_sigma, cfg.normalisation)
        self.inc = DoubleConv(2 if cfg.unet_centre_channel else 1, widths[0])
        if cfg.unet_centre_channel:  # distance to the centre pixel, in units of the stamp's half-side
            c, half = cfg.image_size // 2, cfg.image_size / 2
            yy, xx = torch.meshgrid(torch.arange(cfg.image_size), torch.arange(cfg.image_size), indexing="ij")
            self.register_buffer("centre", (torch.hypot((yy - c).float(), (xx - c).float()) / half)[None, None])
        self.downs = nn.ModuleList(Down(a, b) for a, b in itertools.pairwise(widths))
        self.ups = nn.ModuleList(Up(b, a) for a, b in zip(reversed(widths[:-1]), reversed(widths[1:]), strict=True))
        self.outc = nn.Conv2d(widths[0], out_channels or cfg.mask_channels, 1)
        # Masks start from "mostly background" (p = 5 %), not p = 50 %: galaxies cover a few
        # per cent of a stamp, and an unbiased start spends its first epochs learning just that.
        nn.init.constant_(self.outc.bias, prior_logit)

    def forward(self, blend: torch.Tensor) -> ModelOutput:
        return ModelOutput(mask_logits=self.decode(self.norm(blend)))

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Mask logits from an already normalised (N, 1, S, S) input."""
        if self.cfg.unet_centre_channel:
            x = torch.cat([x, self.centre.to(x.dtype).expand(x.shape[0], 1, -1, -1)], dim=1)
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)


class Blend2Mask2Flux(nn.Module):
    """Blend (N, S, S) → (fluxes (N, 2), mask logits (N, C, S, S)).

    The head sees the normalised blend with the central and companion mask probabilities.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.unet = UNet(cfg)  # its InputNorm normalises the blend for both parts
        self.head = _FluxHead(cfg, in_channels=3)

    def forward(self, blend: torch.Tensor) -> ModelOutput:
        x = self.unet.norm(blend)
        logits = self.unet.decode(x)
        masks = torch.sigmoid(logits[:, :2].float()).to(x.dtype)
        if self.cfg.flux_output == "equivariant":
            masks = masks * x  # each galaxy's masked light: degree 1 in the blend, like x
        fluxes, uncertainties = self.head(torch.cat([x, masks], dim=1))
        return ModelOutput(fluxes=fluxes, mask_logits=logits, uncertainties=uncertainties)


class Blend2Image(nn.Module):
    """Blend (N, S, S) → the two galaxies' images (N, 2, S, S), e-/s: central, companion.

    A U-Net gives, per pixel, the logit of the fraction α of the blend's light that is the
    central galaxy's; the central image is α × blend and the companion's (1 − α) × blend. The
    two images add up to the blend pixel for pixel, noise included (no light is made or lost,
    as in scarlet's flux re-distribution), and α ∈ [0, 1] is a bounded target that a network
    learns like a mask. Fluxes are measured on the images afterwards
    (:func:`blendphot.deblend.measure_deblended`), the way the isolated galaxies were.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.unet = UNet(cfg, out_channels=1, prior_logit=0.0)  # no prior for either galaxy

    def forward(self, blend: torch.Tensor) -> ModelOutput:
        x = self.unet.norm(blend)
        alpha = torch.sigmoid(self.unet.decode(x).float())
        raw = (blend if blend.ndim == 4 else blend.unsqueeze(1)).float()
        central = alpha * raw
        return ModelOutput(images=torch.cat([central, raw - central], dim=1))


def build_model(cfg: ModelConfig) -> nn.Module:
    """The network of ``cfg.arch``, as its registry entry names it."""
    module, name = architecture(cfg.arch).network.split(":")
    return getattr(importlib.import_module(module), name)(cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def mask_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """The paper's sigmoid output: per-pixel probability of each galaxy."""
    return torch.sigmoid(logits.float())
