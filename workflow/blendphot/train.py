"""Training: one function with visible phases, a separate evaluation, resumable checkpoints.

:func:`fit` builds a model from its :class:`~blendphot.models.ModelConfig` (seeded), resumes
from ``state_dir/last.pt`` when that checkpoint belongs to the same configuration and data,
and then, epoch by epoch: trains (Adam, bf16 autocast and channels-last on CUDA, the loss
summed on the device), evaluates on the validation blends in float32 under
``torch.inference_mode()``, reduces the learning rate on a plateau, keeps the best weights in
memory, saves ``last.pt`` (model, optimizer, scheduler, epoch, best weights and metric,
shuffling generator, history, configs) every ``checkpoint_interval_s`` seconds, and stops
early when it has not improved for ``early_stopping_patience`` epochs; ``best.pt`` is written
at the end. Checkpoints hold
only tensors and plain Python values, so they load with ``torch.load(weights_only=True)``;
the shuffling generator's state is in ``last.pt``, so a resumed run repeats exactly the
batches the killed one would have seen.

The training blends are either the blend stage's fixed files (:class:`~blendphot.blend.Blends`,
the paper) or drawn afresh every epoch from the training galaxies
(:class:`~blendphot.blend.FreshBlends`, config ``train.blends: fresh``); the next epoch's are
drawn in a background thread while the current one trains. Validation is always the fixed
files.

Losses (paper §3): MAPE on the fluxes for blend2flux (or, with ``flux_loss: log``, the mean
absolute log-flux error, ×100 so that it reads as a percentage like MAPE); binary
cross-entropy on the masks for the U-Net; ``flux_weight · flux term + mask_weight · BCE`` for
blend2mask2flux (paper 1 and 0.1; the public code used 0.1 and 1), whose U-Net can be kept
frozen for its first ``freeze_unet_epochs`` epochs. The target is the isolated galaxy's flux
(``target: isolated``, the paper) or, on the mock survey, its true flux (``target: truth``).

Tracking stays outside: :func:`fit` calls ``on_epoch(metrics, epoch)`` and returns a summary.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from blendphot import io
from blendphot.architectures import architecture
from blendphot.blend import Blends, FreshBlends, load_pool
from blendphot.config import RUNTIME_KEYS
from blendphot.data import Batches, fingerprint, noise_sigma
from blendphot.device import device_facts, resolve_device, set_determinism
from blendphot.errors import BlendphotError, InputError
from blendphot.models import ModelConfig, ModelOutput, build_model, count_parameters
from blendphot.photometry import INTERVAL_K, LAPLACE_68, log_flux_z

__all__ = [
    "TrainConfig",
    "autocast",
    "batch_loss",
    "calibrate_image_model",
    "calibrate_model",
    "calibrate_sigma",
    "evaluate",
    "fit",
    "footprints",
    "image_losses",
    "iou",
    "load_checkpoint",
    "load_model",
    "log_flux_error",
    "log_flux_nll",
    "mape",
    "mask_targets",
    "pixel_targets",
    "run_train_model",
    "save_checkpoint",
    "train_step",
    "trivial_mape",
]

log = logging.getLogger(__name__)



@dataclass
class TrainConfig:
    """Optimisation settings (config key ``train``; paper values in config/paper.yaml)."""

    epochs: int = 200
    batch_size: int = 32
    learning_rate: float = 1e-4
    lr_factor: float = 0.5
    lr_patience: int = 5
    lr_min: float = 1e-7
    early_stopping_patience: int = 10
    min_delta: float = 1e-3
    flux_weight: float = 1.0
    mask_weight: float = 0.1
    flux_loss: str = "mape"
    target: str = "isolated"
    freeze_unet_epochs: int = 0
    lr_schedule: str = "plateau"
    mask_loss: str = "bce"
    image_loss: str = "pixels"
    amp: bool = True
    channels_last: bool = True
    deterministic: bool = False
    checkpoint_interval_s: float = 300.0
    seed: int = 0

    def __post_init__(self):
        for key, known in (("flux_loss", ("mape", "log")), ("target", ("isolated", "truth")),
                           ("lr_schedule", ("plateau", "cosine")), ("mask_loss", ("bce", "bce_dice")),
                           ("image_loss", ("pixels", "footprints"))):
            if getattr(self, key) not in known:
                raise ValueError(f"train.{key} must be one of {known}, not {getattr(self, key)!r}")

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """From plain values; a key that is not a field is an error (no setting is dropped)."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"training settings {unknown} are not known to this version of blendphot")
        return cls(**data)


def mape(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean absolute percentage error, 100/n Σ |true − pred| / true (paper eq. 1), float32."""
    return 100.0 * ((true.float() - pred.float()).abs() / true.float()).mean()


def log_flux_error(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """100/n Σ |ln pred − ln true|, float32: MAPE's log-space twin (equal to first order), which
    weighs an overestimate and an underestimate by the same factor alike."""
    return 100.0 * (pred.float().log() - true.float().log()).abs().mean()


def log_flux_nll(pred: torch.Tensor, sigma: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Laplace negative log-likelihood of the true log-flux, mean over galaxies (constant
    dropped): |ln true − ln pred| / b + ln b, with b = s68 / ln(1/0.32) the scale whose 68 %
    half-width is s68 = ``sigma`` / ``pred``. The predicted flux is detached: the likelihood
    teaches the uncertainty, the flux loss the flux."""
    pred = pred.detach().float()
    scale = sigma.float() / pred / LAPLACE_68
    return ((true.float().log() - pred.log()).abs() / scale + scale.log()).mean()


def calibrate_sigma(fluxes: np.ndarray, sigmas: np.ndarray, true: np.ndarray) -> tuple[float, dict]:
    """The factor s by which the predicted uncertainties must be multiplied for the central
    68 % interval (ln F ± s · flux_err / flux) to hold 68 % of the galaxies, from (N, 2) fluxes,
    their uncertainties and the true fluxes; and the coverages of the 68 % and 95 % intervals
    before and after."""
    z = np.abs(log_flux_z(fluxes, sigmas, true))
    z = z[np.isfinite(z)]
    if z.size == 0:
        raise BlendphotError("no finite flux uncertainty to calibrate on the validation blends")
    scale = float(np.quantile(z, 0.68) / INTERVAL_K[68])
    report = {f"val_coverage{p}_raw": float(np.mean(z <= k)) for p, k in INTERVAL_K.items()}
    report |= {f"val_coverage{p}": float(np.mean(z <= k * scale)) for p, k in INTERVAL_K.items()}
    return scale, report


def calibrate_model(model, val: Blends, *, target: str = "isolated", device="cpu") -> tuple[float, dict]:
    """:func:`calibrate_sigma` of a model with a σ head on the validation blends ``val``."""
    from blendphot.inference import predict_model

    cat = predict_model(model, val, device=device, amp=False, channels_last=False).catalog
    return calibrate_sigma(cat[["cen_flux", "comp_flux"]].to_numpy(), cat[["cen_flux_err", "comp_flux_err"]].to_numpy(),
                           val.targets(target))


def calibrate_image_model(model, val: Blends, *, target: str = "isolated", clean: dict | None = None,
                          device="cpu", n_bins: int = 5) -> tuple[list[float], list[float], dict]:
    """The uncertainty table of an image network (:func:`blendphot.photometry.fit_binned_s68`):
    its fluxes measured on its deblended validation blends (``clean``: the clean stage's
    settings), against the truth; and the 68 % and 95 % coverage on those blends."""
    from blendphot.clean import CleanParams
    from blendphot.inference import predict_model
    from blendphot.photometry import binned_s68, fit_binned_s68

    params = CleanParams(**clean) if clean else None
    cat = predict_model(model, val, device=device, amp=False, channels_last=False, clean_params=params,
                        uncertainties=False).catalog
    fluxes, true = cat[["cen_flux", "comp_flux"]].to_numpy(), val.targets(target)
    try:
        edges, s68 = fit_binned_s68(fluxes, true, n_bins=n_bins)
    except ValueError as exc:
        raise BlendphotError(f"flux uncertainties of the validation blends: {exc}") from None
    z = np.abs(log_flux_z(fluxes, binned_s68(fluxes, edges, s68), true))
    z = z[np.isfinite(z)]
    report = {f"val_coverage{p}": float(np.mean(z <= k)) for p, k in INTERVAL_K.items()}
    return edges, s68, report


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − soft Dice of (B, C, S, S) mask logits against {0, 1} targets, per image and channel,
    averaged: an overlap loss that a galaxy covering 2 % of the stamp cannot win by
    predicting background, as it nearly can under BCE."""
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(-2, -1))
    total = p.sum(dim=(-2, -1)) + target.sum(dim=(-2, -1))
    return 1.0 - ((2 * inter + 1.0) / (total + 1.0)).mean()


def mask_targets(masks: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, 2, S, S) central/companion masks → (B, channels, S, S), the overlap third."""
    if channels == 2:
        return masks
    return torch.cat([masks, masks[:, :1] * masks[:, 1:2]], dim=1)


def iou(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Per-image, per-channel intersection over union of binary masks (B, C, S, S) → (B, C).

    The convention of :func:`blendphot.evaluate.iou`: NaN where both masks are empty (there is
    nothing to overlap), left out of every mean.
    """
    p, t = pred.bool(), true.bool()
    inter = (p & t).sum(dim=(-2, -1)).float()
    union = (p | t).sum(dim=(-2, -1)).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(union, math.nan))


def median_flux(fluxes: np.ndarray) -> float:
    """The median of all training fluxes (the lower middle value for an even count)."""
    return float(torch.from_numpy(np.array(fluxes, np.float32)).median())


def trivial_mape(train_fluxes: np.ndarray, fluxes: np.ndarray) -> float:
    """MAPE of the trivial predictor: every flux is the training median."""
    target = torch.from_numpy(np.array(fluxes, np.float32))
    return float(mape(torch.full_like(target, median_flux(train_fluxes)), target))


FOOTPRINT_GROW = 4  # px: a galaxy's footprint is its mask grown by this (the clean stage's dilate_neighbours)


def footprints(masks: torch.Tensor, grow: int = FOOTPRINT_GROW) -> torch.Tensor:
    """(B, 1, S, S) float {0, 1}: the pixels within ``grow`` px (a square) of either galaxy's
    mask, from (B, 2, S, S) masks."""
    union = masks[:, :2].amax(dim=1, keepdim=True).float()
    return F.max_pool2d(union, 2 * grow + 1, stride=1, padding=grow) if grow > 0 else union


def image_losses(images: torch.Tensor, central: torch.Tensor, noise_sigma: float,
                 footprint: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The losses of deblended images (B, 2, S, S) against the central galaxy's isolated image
    (B, S, S), whose companion is the rest of the blend (the images sum to it):

    ``image_asinh``, the training loss: the mean squared difference of arcsinh(image / σ) over
        both images, the network's own input scale: linear in the noise, the relative error
        of each pixel well above it, so faint galaxies and outskirts count as much as cores;
        over every pixel, or over the ``footprint`` pixels ((B, 1, S, S) {0, 1}) only;
    ``image_chi2``: the mean squared residual of the central image in units of the blend's
        noise σ (the companion's residual is the same with the other sign), reported only.
    """
    inv = 1.0 / noise_sigma
    pred = images.float()
    true = torch.stack([central.float(), pred.sum(dim=1) - central.float()], dim=1)
    err = (torch.asinh(pred * inv) - torch.asinh(true * inv)).square()
    if footprint is None:
        asinh = err.mean()
    else:
        asinh = (err * footprint).sum() / (2 * footprint.sum()).clamp(min=1)
    return {"image_asinh": asinh, "image_chi2": ((pred[:, 0] - true[:, 0]) * inv).square().mean()}


def pixel_targets(arch: str, image_loss: str) -> tuple[bool, bool]:
    """Which per-pixel targets training ``arch`` reads: (the blend masks, the central images).
    Masks for a mask network, and for an image network whose loss is over the footprints."""
    spec = architecture(arch)
    return spec.masks or (spec.images and image_loss == "footprints"), spec.images


def batch_loss(model_cfg: ModelConfig, train_cfg: TrainConfig, out: ModelOutput, fluxes, masks, central=None, *,
               with_sigma: bool = True):
    """(total loss, {part: value}) of one batch of model outputs. The σ head's likelihood
    (``flux_nll``) enters the total only ``with_sigma``: it trains, but the validation loss
    that picks the best epoch and steers the learning rate is the fluxes' and masks' alone.
    Deblended images are scored against ``central`` (:func:`image_losses`)."""
    parts, terms = {}, []
    if out.images is not None:
        if central is None:
            raise ValueError("an image network's loss needs the central galaxies' isolated images")
        where = footprints(masks) if train_cfg.image_loss == "footprints" else None
        parts |= image_losses(out.images, central, model_cfg.noise_sigma, where)
        terms.append((1.0, parts["image_asinh"]))
    if out.fluxes is not None:
        parts["flux_mape"] = mape(out.fluxes, fluxes)
        if train_cfg.flux_loss == "log":
            parts["flux_log"] = log_flux_error(out.fluxes, fluxes)
        flux_term = parts["flux_log" if train_cfg.flux_loss == "log" else "flux_mape"]
        if out.uncertainties is not None:
            parts["flux_nll"] = log_flux_nll(out.fluxes, out.uncertainties, fluxes)
            if with_sigma:
                flux_term = flux_term + parts["flux_nll"]
        terms.append((train_cfg.flux_weight, flux_term))
    if out.mask_logits is not None:
        logits, target = out.mask_logits.float(), mask_targets(masks, model_cfg.mask_channels)
        parts["mask_bce"] = F.binary_cross_entropy_with_logits(logits, target)
        mask_term = parts["mask_bce"]
        if train_cfg.mask_loss == "bce_dice":
            parts["mask_dice"] = soft_dice_loss(logits, target)
            mask_term = mask_term + parts["mask_dice"]
        terms.append((train_cfg.mask_weight, mask_term))
    if len(terms) == 1:  # one output: its own loss, unweighted
        return terms[0][1], parts
    return sum(w * t for w, t in terms), parts


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when ``enabled``; a no-op elsewhere."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def train_step(model, optimizer, model_cfg: ModelConfig, train_cfg: TrainConfig, x, y, m, c=None) -> torch.Tensor:
    """One optimisation step on a batch (autocast as configured); returns the detached loss,
    still on the device."""
    with autocast(x.device, train_cfg.amp):
        out = model(x)
    loss, _ = batch_loss(model_cfg, train_cfg, out, y, m, c)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


@torch.inference_mode()
def evaluate(model, batches: Batches, model_cfg: ModelConfig, train_cfg: TrainConfig) -> dict:
    """Validation metrics: loss, its parts, per-galaxy flux MAPE and mask IoU (threshold 0.5).

    In float32 (no autocast): the numbers that select the best epoch are not rounded to bf16.
    Sums stay on the device; the host reads them once, at the end.
    """
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    n = 0
    abs_pct, ious, covered = [], [], []
    for x, y, m, c in batches:
        out = model(x)
        loss, parts = batch_loss(model_cfg, train_cfg, out, y, m, c, with_sigma=False)
        b = x.shape[0]
        n += b
        for key, value in {"loss": loss, **parts}.items():
            sums[key] = sums.get(key, 0.0) + value.detach().float() * b
        if out.fluxes is not None:
            abs_pct.append(100 * (out.fluxes.float() - y).abs() / y)
        if out.uncertainties is not None:  # the 68 % interval, before calibration
            s68 = out.uncertainties.float() / out.fluxes.float()
            covered.append(((y.float().log() - out.fluxes.float().log()).abs() <= INTERVAL_K[68] * s68).float())
        if out.mask_logits is not None:
            ious.append(iou(out.mask_logits[:, :2] > 0, m))
    metrics = {k: float(v) / max(n, 1) for k, v in sums.items()}
    if abs_pct:
        metrics["mape_central"], metrics["mape_companion"] = torch.cat(abs_pct).mean(dim=0).tolist()
    if ious:
        metrics["iou"] = float(torch.cat(ious).nanmean())
    if covered:
        metrics["coverage68"] = float(torch.cat(covered).mean())
    return metrics


def save_checkpoint(path: str | Path, *, model, model_cfg: ModelConfig, train_cfg: TrainConfig | None = None,
                    weights: dict | None = None, **extra) -> None:
    """Save ``model``'s weights (or ``weights``, a state dict), its config and any extra state,
    atomically."""
    state = {"model": weights if weights is not None else model.state_dict(), "model_config": model_cfg.to_dict(),
             "train_config": asdict(train_cfg) if train_cfg else None, **extra}
    with io.atomic_path(path, ".pt") as tmp:
        write_torch(state, tmp)


def write_torch(state: dict, path: Path) -> None:
    """``torch.save`` through a file handle: the archive's inner folder is then always named
    ``archive`` (given a path, torch names it after the temporary file), so that the same
    weights give the same bytes and checksums of outputs mean something."""
    with open(path, "wb") as fh:
        torch.save(state, fh)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: checkpoint not found") from None
    except Exception as exc:
        if "weights_only" in str(exc):  # torch refused a pickled object: code, never to be run
            raise InputError(f"{path}: not a blendphot checkpoint (it holds objects other than tensors and plain "
                             "values, which could run code); it was not loaded") from None
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InputError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {first})") from exc


def load_model(path: str | Path | dict, device="cpu"):
    """(model in eval mode, ModelConfig) from a checkpoint written by :func:`fit`, or from one
    already read by :func:`load_checkpoint`."""
    state = path if isinstance(path, dict) else load_checkpoint(path)
    cfg = ModelConfig.from_dict(state["model_config"])
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg


def _identity(model_cfg: ModelConfig, train_cfg: TrainConfig, data_id: str) -> dict:
    """What a checkpoint must match to be resumed (not the runtime switches)."""
    tc = asdict(train_cfg)
    for k in RUNTIME_KEYS:
        tc.pop(k)
    return {"model_config": model_cfg.to_dict(), "train_config": tc, "data": data_id}


def _init_from_unet(model, path: str | Path, model_cfg: ModelConfig) -> None:
    state = load_checkpoint(path)
    ucfg = ModelConfig.from_dict(state["model_config"])
    wanted = architecture(model_cfg.arch).init_from
    if wanted is None or ucfg.arch != wanted:
        raise InputError(f"{path}: a {model_cfg.arch} starts from a {wanted} checkpoint, found {ucfg.arch!r}")
    for key in ("unet_depth", "unet_filters", "overlap_channel", "unet_centre_channel", "image_size", "normalisation"):
        if getattr(ucfg, key) != getattr(model_cfg, key):
            raise InputError(f"{path}: the U-Net was trained with {key}={getattr(ucfg, key)!r} but this "
                             f"model asks for {getattr(model_cfg, key)!r}")
    # Every U-Net weight is taken; only its input scale (norm.*) is this model's own (measured
    # on the same blends, so equal unless the blends changed).
    weights = {k: v for k, v in state["model"].items() if not k.startswith("norm.")}
    if architecture(model_cfg.arch).images:
        # An image network's one output, the logit of the central galaxy's share of a pixel,
        # starts as the U-Net's central logit minus its companion logit (a two-class softmax).
        w, b = weights.pop("outc.weight"), weights.pop("outc.bias")
        weights["outc.weight"], weights["outc.bias"] = w[:1] - w[1:2], b[:1] - b[1:2]
    missing, unexpected = model.unet.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.startswith("norm.")]
    if missing or unexpected:
        raise InputError(f"{path}: the U-Net checkpoint does not fit this model's U-Net (missing "
                         f"{missing[:5]}, unexpected {unexpected[:5]})")


def fit(model_cfg: ModelConfig, train_cfg: TrainConfig, train: Blends | FreshBlends, val: Blends,
        state_dir: str | Path,
        *, device: torch.device | str = "cpu", data_id: str = "", init_from: str | Path | None = None,
        on_epoch: Callable[[dict, int], None] | None = None) -> dict:
    """Train (or resume) one model; return a summary with the best checkpoint's path.

    ``state_dir`` holds ``last.pt``, the resumable state, written after the first epoch of a
    (re)start, then whenever ``checkpoint_interval_s`` has passed since the last one, and at
    the end; the best weights are kept in memory (and in ``last.pt``) and written to
    ``best.pt`` at the end. The loop reads nothing back from the device within an epoch.
    ``train`` is a fixed set of blends or a :class:`~blendphot.blend.FreshBlends` that draws
    each epoch's own.
    """
    device = resolve_device(device)
    set_determinism(device, train_cfg.deterministic)
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = state_dir / "last.pt", state_dir / "best.pt"
    identity = _identity(model_cfg, train_cfg, data_id)
    needs_masks, needs_central = pixel_targets(model_cfg.arch, train_cfg.image_loss)
    fresh = isinstance(train, FreshBlends)
    if needs_masks and ((not fresh and train.masks is None) or val.masks is None):
        raise InputError(f"{model_cfg.arch} needs the blend masks, which were not loaded")

    # --- build (seeded) -------------------------------------------------------------------
    torch.manual_seed(train_cfg.seed)
    model = build_model(model_cfg)
    if init_from is not None:
        _init_from_unet(model, init_from, model_cfg)
    model.to(device)
    if train_cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_cfg.learning_rate)
    if train_cfg.lr_schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train_cfg.epochs,
                                                               eta_min=train_cfg.lr_min)
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=train_cfg.lr_factor, patience=train_cfg.lr_patience,
            threshold=train_cfg.min_delta, threshold_mode="rel", min_lr=train_cfg.lr_min)
    generator = torch.Generator().manual_seed(train_cfg.seed + 1)
    start_epoch, best, best_epoch, bad_epochs, history = 0, math.inf, -1, 0, []
    best_weights, best_metrics = None, None

    # --- resume ---------------------------------------------------------------------------
    resumed = False
    if last_path.exists():
        state = load_checkpoint(last_path)
        if state.get("identity") == identity:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            generator.set_state(state["generator"])
            start_epoch, best, best_epoch = state["epoch"] + 1, state["best_metric"], state["best_epoch"]
            bad_epochs, history, resumed = state["bad_epochs"], state["history"], True
            best_weights, best_metrics = state["best_model"], state["best_val_metrics"]
            log.info("resumed from %s at epoch %d (best val loss %.4g at epoch %d)", last_path, start_epoch,
                     best, best_epoch)
        else:
            log.info("ignoring %s: it belongs to another configuration or data set", last_path)
            best_path.unlink(missing_ok=True)

    def batches(data: Blends) -> Batches:
        return Batches(data, train_cfg.batch_size, device, shuffle=True, generator=generator,
                       channels_last=train_cfg.channels_last, with_masks=needs_masks, target=train_cfg.target,
                       with_central=needs_central)

    train_batches = None if fresh else batches(train)
    val_batches = Batches(val, max(train_cfg.batch_size, 64), device, shuffle=False,
                          channels_last=train_cfg.channels_last, with_masks=needs_masks, target=train_cfg.target,
                          with_central=needs_central)
    log.info("%s: %d parameters, %d %s training blends%s and %d validation blends, device %s", model_cfg.arch,
             count_parameters(model), len(train), "fresh" if fresh else "fixed", " per epoch" if fresh else "",
             len(val), device)
    # Fresh blends: the next epoch's are drawn in a thread while this one trains.
    drawer = ThreadPoolExecutor(1, thread_name_prefix="fresh-blends") if fresh else None
    upcoming = drawer.submit(train.epoch, start_epoch) if fresh and start_epoch < train_cfg.epochs else None
    spec = architecture(model_cfg.arch)
    frozen_unet = spec.unet and spec.flux_head_channels > 0  # a U-Net under a flux head: freeze_unet_epochs

    stopped_early = best_epoch >= 0 and bad_epochs >= train_cfg.early_stopping_patience
    saved_at = time.monotonic()
    try:
        for epoch in range(start_epoch, train_cfg.epochs):
            if stopped_early:
                break
            t_data = time.perf_counter()
            if fresh:  # blocks only if the draw in the background is slower than an epoch
                train_batches = batches(upcoming.result())
                upcoming = drawer.submit(train.epoch, epoch + 1) if epoch + 1 < train_cfg.epochs else None
            if frozen_unet:
                model.unet.requires_grad_(epoch >= train_cfg.freeze_unet_epochs)
            # --- train one epoch ----------------------------------------------------------------
            model.train()
            t0 = time.perf_counter()
            epoch_data_s = t0 - t_data  # waiting for this epoch's blends and moving them to the device
            wait = 0.0
            total, seen = torch.zeros((), device=device), 0
            batch_iter = iter(train_batches)
            while True:
                tw = time.perf_counter()
                try:
                    x, y, m, c = next(batch_iter)
                except StopIteration:
                    break
                wait += time.perf_counter() - tw
                loss = train_step(model, optimizer, model_cfg, train_cfg, x, y, m, c)
                total += loss.float() * x.shape[0]  # summed on the device: no sync per step
                seen += x.shape[0]
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            train_time = time.perf_counter() - t0
            train_loss = float(total) / max(seen, 1)
            if not math.isfinite(train_loss):
                raise BlendphotError(f"training of {model_cfg.arch} diverged at epoch {epoch}: loss {train_loss}; "
                                     "lower train.learning_rate")

            # --- evaluate -----------------------------------------------------------------------
            val_metrics = evaluate(model, val_batches, model_cfg, train_cfg)
            val_loss = val_metrics["loss"]
            lr = optimizer.param_groups[0]["lr"]
            if train_cfg.lr_schedule == "plateau":
                scheduler.step(val_loss)
            else:
                scheduler.step()

            # --- bookkeeping and checkpoints ----------------------------------------------------
            improved = val_loss < best * (1 - train_cfg.min_delta)
            if improved:
                best, best_epoch, bad_epochs = val_loss, epoch, 0
            else:
                bad_epochs += 1
            record = {"epoch": epoch, "train_loss": train_loss, "lr": lr, "samples_per_s": seen / train_time,
                      "loader_wait_fraction": wait / train_time, "epoch_data_s": epoch_data_s,
                      "epoch_time_s": train_time,
                      **({"draw_s": train.draw_s.get(epoch, math.nan)} if fresh else {}),
                      **{f"val_{k}": v for k, v in val_metrics.items()}}
            history.append(record)
            if improved:  # kept in memory; written at the end and with the resumable state
                best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best_metrics = val_metrics
            stopped_early = bad_epochs >= train_cfg.early_stopping_patience
            last_epoch = stopped_early or epoch == train_cfg.epochs - 1
            if epoch == start_epoch or last_epoch or time.monotonic() - saved_at >= train_cfg.checkpoint_interval_s:
                save_checkpoint(last_path, model=model, model_cfg=model_cfg, train_cfg=train_cfg, identity=identity,
                                optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                generator=generator.get_state(), epoch=epoch, best_metric=best, best_epoch=best_epoch,
                                bad_epochs=bad_epochs, history=history, best_model=best_weights,
                                best_val_metrics=best_metrics)
                saved_at = time.monotonic()
            log.info("epoch %d: train %.4g, val %.4g%s, lr %.2g, %.0f samples/s", epoch, train_loss, val_loss,
                     " (best)" if improved else "", lr, seen / train_time)
            if on_epoch is not None:
                on_epoch(record, epoch)

        if best_weights is not None:
            save_checkpoint(best_path, model=model, weights=best_weights, model_cfg=model_cfg, train_cfg=train_cfg,
                            epoch=best_epoch, val_metrics=best_metrics)
        return {"best_path": best_path, "last_path": last_path, "best_epoch": best_epoch, "best_val_loss": best,
                "epochs_run": len(history), "resumed": resumed, "stopped_early": stopped_early,
                "history": history, "parameters": count_parameters(model), "device": str(device)}
    finally:
        if drawer is not None:
            drawer.shutdown(wait=False, cancel_futures=True)


def run_train_model(settings: dict, *, seed: int, val_dir: str | Path, state_dir: str | Path,
                    model_out: str | Path, history_out: str | Path, train_dir: str | Path | None = None,
                    pool: tuple[str | Path, str | Path] | None = None, data_seed: int | None = None,
                    init_from: str | Path | None = None, device: str | torch.device = "auto",
                    gpu_requested: bool = False, amp: bool = True, channels_last: bool = True,
                    deterministic: bool = False, checkpoint_interval_s: float = 300.0,
                    on_epoch: Callable[[dict, int], None] | None = None) -> dict:
    """The train_model stage: read the blends, measure the input scales, fit, write outputs.

    ``settings`` is :func:`blendphot.config.model_settings` (the science: what reruns the
    stage when it changes); ``device`` (with ``gpu_requested``: a GPU job, which must get one),
    ``amp``, ``channels_last``, ``deterministic`` and ``checkpoint_interval_s`` are runtime
    choices that change the speed, not what is learnt, and a run resumes across them.
    ``val_dir`` is the blend stage's validation folder; the training blends are its
    ``train_dir`` (``train.blends: fixed``) or drawn every epoch from ``pool`` = (clean stage
    folder, split table) with the seed stream of ``data_seed`` (``fresh``). Writes the
    best-validation checkpoint to ``model_out`` and the per-epoch history (CSV) to
    ``history_out``, then removes the resumable state. Returns the summary of :func:`fit` plus
    the trivial predictor's validation MAPE and the input scales.
    """
    from blendphot.config import child_seed

    what = f"training of {settings['model']['arch']}"
    device = resolve_device(device, gpu_requested=gpu_requested, what=what)
    log.info("device: %s", device_facts(device))
    with_masks, with_central = pixel_targets(settings["model"]["arch"], settings["train"]["image_loss"])
    t = dict(settings["train"])
    target = t["target"]
    t.pop("blends")  # which training blends: the data passed to fit, not a setting of it
    augment = t.pop("augment")
    per_pixel = 4 + (2 if with_masks else 0) + (4 if with_central else 0)
    held = [io.load_array(Path(val_dir) / Blends.FILES["images"]).shape]  # memory-mapped: only the shape is read
    if settings.get("fresh"):  # an epoch of fresh blends, and the next one drawn in the background
        held += [(settings["fresh"]["n_blends"], *held[0][1:])] * 2
    else:
        held.append(io.load_array(Path(train_dir) / Blends.FILES["images"]).shape)
    io.require_memory(sum(math.prod(shape) for shape in held) * per_pixel,
                      f"{what} holding its validation and training blends", "blend.n_blends")
    val = Blends.load(val_dir, masks=with_masks, central=with_central)
    val.require_fluxes(target)
    if settings.get("fresh"):
        fresh = settings["fresh"]
        images, masks, galaxies = load_pool(*pool, "train")
        if len(galaxies) < 2:
            raise InputError(f"{pool[1]}: fresh training blends need at least 2 training galaxies, "
                             f"found {len(galaxies)}")
        train = FreshBlends(images, masks, galaxies, fresh["n_blends"], settings=fresh,
                            pixel_scale=fresh["pixel_scale"], seed=child_seed(data_seed, "fresh_blends"),
                            augment=augment, central=with_central)
        first, data_id = train.epoch(0), train.fingerprint() + fingerprint(val)  # fit reuses epoch 0
    else:
        train = first = Blends.load(train_dir, masks=with_masks, central=with_central)
        data_id = fingerprint(train, val)
    first.require_fluxes(target)
    if len(train) == 0 or len(val) == 0:
        raise InputError(f"training needs blends in both splits; got {len(train)} train and {len(val)} val "
                         "(blend.n_blends)")
    weights = t.pop("loss_weights")
    train_targets = first.targets(target)
    model_cfg = ModelConfig(**settings["model"], image_size=first.size, normalisation=t.pop("normalisation"),
                            noise_sigma=noise_sigma(first.images), flux_scale=median_flux(train_targets))
    del first  # fresh blends: not held through training
    train_cfg = TrainConfig.from_dict({**t, "flux_weight": weights["flux"], "mask_weight": weights["mask"],
                                       "seed": seed, "amp": amp, "channels_last": channels_last,
                                       "deterministic": deterministic, "checkpoint_interval_s": checkpoint_interval_s})
    summary = fit(model_cfg, train_cfg, train, val, state_dir, device=device, data_id=data_id,
                  init_from=init_from, on_epoch=on_epoch)
    if summary["best_epoch"] < 0:
        raise BlendphotError("training ended before the first epoch finished")
    calibration = {}
    if model_cfg.flux_sigma:  # calibrated on the validation blends
        state = load_checkpoint(summary["best_path"])
        model = load_model(state, device)[0]
        if architecture(model_cfg.arch).images:  # a table of its measured fluxes' errors
            edges, s68, calibration = calibrate_image_model(model, val, target=target, clean=settings.get("measure"),
                                                            device=device)
            state["model_config"].update(sigma_edges=edges, sigma_s68=s68)
            log.info("flux uncertainties: s68 %s in bins of mag_self - mag_other with inner edges %s; 68/95 %% "
                     "coverage %.3f/%.3f on the validation blends", np.round(s68, 3).tolist(),
                     np.round(edges, 2).tolist(), calibration["val_coverage68"], calibration["val_coverage95"])
        else:  # one factor on the σ head
            scale, calibration = calibrate_model(model, val, target=target, device=device)
            state["model_config"]["sigma_scale"] = calibration["sigma_scale"] = scale
            log.info("flux uncertainties: calibration factor %.3f on the validation blends; 68/95 %% coverage "
                     "%.3f/%.3f before, %.3f/%.3f after", scale, calibration["val_coverage68_raw"],
                     calibration["val_coverage95_raw"], calibration["val_coverage68"], calibration["val_coverage95"])
        with io.atomic_path(model_out, ".pt") as tmp:
            write_torch(state, tmp)
    else:
        with io.atomic_path(model_out, ".pt") as tmp:
            shutil.copyfile(summary["best_path"], tmp)
    io.write_csv(history_out, pd.DataFrame(summary["history"]))
    for path in (summary["best_path"], summary["last_path"]):
        Path(path).unlink(missing_ok=True)
    best = next(h for h in summary["history"] if h["epoch"] == summary["best_epoch"])
    summary.update(trivial_val_mape=trivial_mape(train_targets, val.targets(target)),
                   noise_sigma=model_cfg.noise_sigma, flux_scale=model_cfg.flux_scale, best=best,
                   calibration=calibration)
    return summary
