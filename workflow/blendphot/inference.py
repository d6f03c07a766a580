"""Running a trained network over blends, into the shared prediction format: the workflow's
predict stage (:func:`run_predict_model`) and ``blendphot predict`` on blends of one's own
(:func:`run_predict`)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from blendphot import io
from blendphot.architectures import architecture
from blendphot.blend import Blends
from blendphot.data import Batches, noise_sigma
from blendphot.device import resolve_device
from blendphot.errors import InputError
from blendphot.models import count_parameters
from blendphot.photometry import flux_to_mag
from blendphot.prediction import Prediction
from blendphot.train import autocast

__all__ = ["predict_model", "run_predict", "run_predict_model"]

# Magnitude error of a 1σ-equivalent relative flux error: 2.5 / ln 10.
MAG_PER_LN_FLUX = 1.0857362


@torch.inference_mode()
def predict_model(model, data: Blends, *, device, batch_size: int = 256, amp: bool = True,
                  channels_last: bool = True, masks_out: np.ndarray | None = None,
                  images_out: np.ndarray | None = None, clean_params=None, method: str = "",
                  progress=None, uncertainties: bool = True) -> Prediction:
    """Run a trained model (built by :func:`blendphot.models.build_model`) over a split of blends.

    Flux models fill ``cen_flux``/``comp_flux`` (and ``cen_flux_err``/``comp_flux_err`` with a
    σ head, ``flux_sigma``); mask models write thresholded (p > 0.5)
    central and companion masks into ``masks_out`` (an (N, 2, S, S) uint8 array, e.g. a
    memmap from :func:`blendphot.io.create_array`) or a new array. Image models write the
    deblended images into ``images_out`` ((N, 2, S, S) float32) or a new array; their fluxes
    (Kron, and the plain sums ``cen_flux_sum``/``comp_flux_sum``) and masks are measured on
    those images by :func:`blendphot.deblend.measure_deblended` with ``clean_params`` (the
    clean stage's detection settings; its defaults when None), the companion at the
    catalogue's ``dx``, ``dy`` when it has them. Batches are served as in training
    (:class:`blendphot.data.Batches`), in order; ``progress(n)`` is called with the number of
    blends of each batch done, and of each blend measured. An image network's uncertainties
    come from its calibrated table (``flux_sigma``); ``uncertainties=False`` leaves them out
    (while the table is being made).
    """
    device = torch.device(device)
    spec = architecture(model.cfg.arch)
    model = model.to(device).eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    n, shape = len(data), data.images.shape[1:]
    fluxes = np.full((n, 2), np.nan)
    sigmas = np.full((n, 2), np.nan) if model.cfg.flux_sigma else None
    if spec.predicts_masks and masks_out is None:
        masks_out = np.zeros((n, 2, *shape), dtype=np.uint8)
    if spec.images and images_out is None:
        images_out = np.zeros((n, 2, *shape), dtype=np.float32)
    start = 0
    for x, *_ in Batches(data, batch_size, device, shuffle=False, channels_last=channels_last):
        with autocast(device, amp):
            out = model(x)
        rows = slice(start, start + len(x))
        if out.fluxes is not None:
            fluxes[rows] = out.fluxes.float().cpu().numpy()
        if out.uncertainties is not None:
            sigmas[rows] = out.uncertainties.float().cpu().numpy()
        if out.mask_logits is not None:
            masks_out[rows] = (out.mask_logits[:, :2] > 0).cpu().numpy()
        if out.images is not None:
            images_out[rows] = out.images.float().cpu().numpy()
        start += len(x)
        if progress is not None:
            progress(len(x))
    catalog = pd.DataFrame({"blend_id": data.catalog["blend_id"].to_numpy(), "cen_flux": fluxes[:, 0],
                            "comp_flux": fluxes[:, 1]})
    if sigmas is not None:  # 1σ-equivalent: ln F ± err / flux is the central 68 % interval
        catalog["cen_flux_err"], catalog["comp_flux_err"] = sigmas[:, 0], sigmas[:, 1]
    if spec.images:
        from blendphot.deblend import measure_deblended

        shift = [data.catalog[k].to_numpy(float) if k in data.catalog else np.full(n, np.nan) for k in ("dx", "dy")]
        measured = measure_deblended(images_out, *shift, clean_params, masks_out=masks_out, progress=progress)
        for key in ("cen_flux", "comp_flux", "cen_flux_sum", "comp_flux_sum"):
            catalog[key] = measured[key]
        if model.cfg.flux_sigma and uncertainties:  # looked up in the table calibrated after training
            if not model.cfg.sigma_s68:
                raise InputError(f"{method or model.cfg.arch}: the model has flux_sigma but no calibrated "
                                 "uncertainty table (sigma_s68): was its training cut short?")
            from blendphot.photometry import binned_s68

            errs = binned_s68(catalog[["cen_flux", "comp_flux"]].to_numpy(), model.cfg.sigma_edges,
                              model.cfg.sigma_s68)
            catalog["cen_flux_err"], catalog["comp_flux_err"] = errs[:, 0], errs[:, 1]
    return Prediction(catalog=catalog, masks=masks_out if spec.predicts_masks else None, method=method,
                      images=images_out if spec.images else None)


def run_predict_model(model_path: str | Path, blends_dir: str | Path, out_dir: str | Path, *, name: str,
                      device: str | torch.device = "auto", amp: bool = True, channels_last: bool = True,
                      clean: dict | None = None) -> dict:
    """The predict_model stage: one trained network over a split of blends, written as a
    :class:`~blendphot.prediction.Prediction` folder with the network's ``model.json``
    (architecture, size). ``device``, ``amp`` and ``channels_last`` are runtime choices;
    ``clean`` (the config's ``clean``) sets how an image network's outputs are measured.
    Returns the throughput figures."""
    from blendphot.clean import CleanParams
    from blendphot.train import load_model

    device = resolve_device(device, what=f"prediction of {name}")
    model, cfg = load_model(model_path, device)
    blends = Blends.load(blends_dir, masks=False)
    spec = architecture(cfg.arch)
    size = blends.size
    masks = Prediction.allocate_masks(out_dir, len(blends), size) if spec.predicts_masks else contextlib.nullcontext()
    images = Prediction.allocate_images(out_dir, len(blends), size) if spec.images else contextlib.nullcontext()
    params = CleanParams(**clean) if clean else None
    start = time.perf_counter()
    with masks as masks_out, images as images_out:
        pred = predict_model(model, blends, device=device, amp=amp, channels_last=channels_last, masks_out=masks_out,
                             images_out=images_out, clean_params=params, method=name)
    elapsed = time.perf_counter() - start
    pred.save(out_dir, masks=False)
    io.write_json(Path(out_dir) / "model.json", {"name": name, "n_parameters": count_parameters(model),
                                                 **dataclasses.asdict(cfg)})
    return {"blends": len(blends), "blends_per_s": len(blends) / max(elapsed, 1e-9)}


PREDICT_FILES = ("predictions.csv", "masks.npy", "masks.fits", "images.npy", "images.fits", "model.json",
                 "skipped.csv")


def _user_blends(path: Path) -> Blends:
    """A blend folder of the project's format, or one ``.npy`` array of (N, S, S) blends."""
    if path.is_dir():
        return Blends.load(path, masks=False)
    if path.suffix != ".npy":
        raise InputError(f"{path}: give a blend folder (images.npy, catalog.csv) or one .npy array of blends")
    images = np.asarray(io.load_array(path, mmap=False), dtype=np.float32)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise InputError(f"{path}: blends must be an (N, S, S) array of square images, got shape {images.shape}")
    blends = Blends(images, None, pd.DataFrame({"blend_id": np.arange(len(images))}), source=str(path))
    blends.check_finite(where=str(path))
    return blends


def _blends_from_mosaic(image_path: Path, pairs_path: Path, weight_path: Path | None, *, size: int,
                        pixel_scale: float, skip: bool = False) -> tuple[Blends, object, pd.DataFrame]:
    """Stamps of ``size`` pixels centred on each pair's central galaxy (``ra``/``dec`` in
    degrees, or 0-based pixel ``x``/``y``; ``id`` optional) cut from a FITS mosaic, with its
    weight map when given (weight 0: no data). Returns the blends (catalogue: blend_id, id, x,
    y, crpix1, crpix2 and the table's other columns), the mosaic's WCS and the pairs left out
    (``skip``; without it, a pair that cannot be measured is an error naming it)."""
    from astropy.wcs.utils import proj_plane_pixel_scales

    from blendphot.stamps import cut_stamps, open_mosaic

    pairs = io.read_csv(pairs_path)
    pixels = {"x", "y"} <= set(pairs.columns)
    if not pixels and not {"ra", "dec"} <= set(pairs.columns):
        raise InputError(f"{pairs_path}: the pairs table needs the central galaxy's ra and dec (degrees) or its "
                         f"0-based pixel x and y; it has {', '.join(pairs.columns)}")
    if len(pairs) == 0:
        raise InputError(f"{pairs_path}: no pairs")
    pairs = pairs.assign(gid=pairs["id"] if "id" in pairs else np.arange(len(pairs)))
    handle, data, wcs = open_mosaic(image_path)
    with handle:
        if not wcs.has_celestial:
            raise InputError(f"{image_path}: no celestial WCS in the header, so its pixel scale cannot be checked "
                             "against the model's training data")
        scale = float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600)  # the header's degrees, in arcsec
        if abs(scale / pixel_scale - 1) > 0.01:
            raise InputError(f"{image_path}: {scale:.4g} arcsec per pixel, but the model was trained at "
                             f"{pixel_scale:g} (--pixel-scale): resample the image first")
        if weight_path is not None:
            whandle, weight, _ = open_mosaic(weight_path)
        else:
            whandle, weight = contextlib.nullcontext(), np.ones(data.shape, np.float32)
        with whandle:
            stamps = cut_stamps(data, weight, wcs, pairs, size=size, image_name=str(image_path),
                                weight_name=str(weight_path or "weight"), pixels=pixels)
    why = {"mosaic_edge": f"within {size // 2} px of the edge or off it", "missing_data": "no data in its stamp"}
    skipped = pd.DataFrame({"id": stamps.dropped["gid"], "reason": stamps.dropped["reason"].map(why)})
    if len(skipped) and (not skip or len(skipped) == len(pairs)):
        listed = ", ".join(f"{i} ({r})" for i, r in zip(skipped["id"][:5], skipped["reason"][:5], strict=True))
        raise InputError(f"{pairs_path}: {len(skipped)} of {len(pairs)} pairs cannot be measured, each needs a "
                         f"{size}-pixel stamp of data around its central galaxy: id {listed}"
                         + ("" if skip else "; --skip leaves them out"))
    catalog = stamps.catalog.drop(columns=["id"], errors="ignore").rename(columns={"gid": "id"})
    catalog.insert(0, "blend_id", np.arange(len(catalog)))
    return Blends(stamps.images, None, catalog, source=str(image_path)), wcs, skipped


def _write_stamp_fits(path: Path, cubes: np.ndarray, catalog: pd.DataFrame, wcs, *, kind: str) -> None:
    """One image extension per pair, (2, S, S) (central, companion): uint8 masks (``kind``
    "mask") or float32 deblended images in e-/s ("image"), with the stamp's WCS."""
    from astropy.io import fits

    dtype = np.uint8 if kind == "mask" else np.float32
    hdus = [fits.PrimaryHDU()]
    for row, cube in zip(catalog.itertuples(), cubes, strict=True):
        w = wcs.deepcopy()
        w.wcs.crpix = [row.crpix1, row.crpix2]
        hdu = fits.ImageHDU(data=np.asarray(cube, dtype), header=w.to_header(), name=f"PAIR_{row.id}")
        hdu.header["PLANE1"], hdu.header["PLANE2"] = f"central galaxy {kind}", f"companion galaxy {kind}"
        if kind == "image":
            hdu.header["BUNIT"] = "electron/s"
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(path)


def fetch_model(model: str | Path, dst: str | Path, tracking_uri: str | None = None) -> Path:
    """A model checkpoint's local path: ``model`` itself, or for an MLflow artifact URI of a
    training run (``runs:/<run_id>/model``, as the train stage logs it, or any URI MLflow can
    download) the ``model.pt`` downloaded into the folder ``dst``, from ``tracking_uri``
    (MLflow's default otherwise)."""
    text = str(model)
    if ":/" not in text:
        return Path(model)
    import mlflow.artifacts

    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=text, tracking_uri=tracking_uri,
                                                         dst_path=str(dst)))
    except Exception as exc:
        raise InputError(f"{text}: cannot download the model from MLflow (tracking URI "
                         f"{tracking_uri or 'MLflow default'}): {type(exc).__name__}: {exc}") from exc
    found = [local] if local.is_file() else sorted(local.rglob("model.pt"))
    if len(found) != 1:
        raise InputError(f"{text}: expected one model.pt in the MLflow artifact, found {len(found)}")
    return found[0]


def run_predict(model_path: str | Path, blends_path: str | Path, out_dir: str | Path, *, zeropoint: float,
                device: str | torch.device = "auto", batch_size: int = 256, noise_tolerance: float = 1.5,
                show_progress: bool = True, pairs: str | Path | None = None, weight: str | Path | None = None,
                pixel_scale: float = 0.06, skip: bool = False, name: str | None = None,
                source: str | None = None) -> Prediction:
    """``blendphot predict``: a trained model (``results/train/<m>/model.pt``) over blends of
    one's own, in e-/s per pixel, into a prediction folder ``out_dir``. ``blends_path`` is a
    blend folder, a ``.npy`` array of blends, or a FITS mosaic with ``pairs`` (a CSV table of
    the central galaxies' positions) and optionally its ``weight`` map: the stamps are then cut
    around each central galaxy, the mosaic's pixel scale must be ``pixel_scale``, and mask
    models also write ``masks.fits``, one extension per pair with the stamp's WCS.

    The blends are checked against what the model was trained on: the stamp size, finite
    pixels, and the background noise (the training stage's estimator), which must be within a
    factor ``noise_tolerance`` of the training blends' (other units, another zero point or
    another depth would otherwise give wrong fluxes without a word). ``predictions.csv`` holds
    blend_id, the blend catalogue's other columns when it has them (``catalog_<name>`` where a
    name is taken, e.g. ``catalog_cen_flux``, the isolated flux), cen/comp flux, their AB
    magnitudes at ``zeropoint``, their 1σ-equivalent errors with a σ head, ``model`` (``name``,
    by default the checkpoint's folder) and ``model_sha256`` (the first 12 hex digits of the
    checkpoint's); mask models add ``masks.npy``, image models ``images.npy`` (and, for a
    mosaic, ``images.fits`` with each stamp's WCS) with fluxes and masks measured on the images
    (:func:`predict_model`); pairs left out (``skip``) are listed in
    ``skipped.csv``; ``model.json`` records the model's ``source`` (a URI it was downloaded
    from) or path. Written to a temporary folder and renamed: nothing partial.
    """
    from tqdm import tqdm

    from blendphot.train import load_model

    model_path, blends_path, out = Path(model_path), Path(blends_path), Path(out_dir)
    name = name or model_path.parent.name
    if out.exists() and (not out.is_dir() or any(f.name not in PREDICT_FILES for f in out.iterdir())):
        raise InputError(f"{out}: exists and holds other files than a prediction's; give a new folder")
    device = resolve_device(device, what="prediction")
    model, cfg = load_model(model_path, device)
    wcs, skipped = None, None
    if blends_path.name.endswith((".fits", ".fits.gz", ".fit")):
        if pairs is None:
            raise InputError(f"{blends_path}: a FITS image needs a table of pairs (--pairs) saying where the central "
                             "galaxies are")
        blends, wcs, skipped = _blends_from_mosaic(blends_path, Path(pairs), Path(weight) if weight else None,
                                                   size=cfg.image_size, pixel_scale=pixel_scale, skip=skip)
    else:
        blends = _user_blends(blends_path)
    if blends.size != cfg.image_size:
        raise InputError(f"{blends_path}: blends of {blends.size} x {blends.size} pixels, but {model_path} was "
                         f"trained on {cfg.image_size} x {cfg.image_size}")
    sigma = noise_sigma(blends.images)
    ratio = sigma / cfg.noise_sigma
    if not 1 / noise_tolerance <= ratio <= noise_tolerance:
        raise InputError(f"{blends_path}: background noise {sigma:.4g} per pixel, {ratio:.2f} times the "
                         f"{cfg.noise_sigma:.4g} e-/s of the blends {model_path} was trained on: other units, "
                         "another zero point or another depth; give the blends in e-/s at the training data's "
                         f"depth, or accept the difference with a larger noise tolerance (now {noise_tolerance})")
    spec = architecture(cfg.arch)
    total = len(blends) * (2 if spec.images else 1)  # image models: inference, then measurement
    with tqdm(total=total, unit="blend", desc=f"predict {name}", disable=not show_progress) as bar:
        pred = predict_model(model, blends, device=device, batch_size=batch_size, amp=device.type == "cuda",
                             channels_last=True, method=name, progress=bar.update)
    cat = pred.catalog
    given = blends.catalog.drop(columns="blend_id").reset_index(drop=True)
    given.columns = [f"catalog_{c}" if c in cat.columns else c for c in given.columns]  # e.g. catalog_cen_flux
    cat = pd.concat([cat, given], axis=1)
    for role in ("cen", "comp"):
        cat[f"{role}_mag"] = flux_to_mag(cat[f"{role}_flux"], zeropoint)
        if f"{role}_flux_err" in cat:
            cat[f"{role}_mag_err"] = MAG_PER_LN_FLUX * cat[f"{role}_flux_err"] / cat[f"{role}_flux"]
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()[:12]
    cat["model"], cat["model_sha256"] = name, digest
    pred = Prediction(cat, masks=pred.masks, method=pred.method, images=pred.images)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        tmp.mkdir(parents=True)
        pred.save(tmp)
        if wcs is not None and pred.masks is not None:
            _write_stamp_fits(tmp / "masks.fits", pred.masks, cat, wcs, kind="mask")
        if wcs is not None and pred.images is not None:
            _write_stamp_fits(tmp / "images.fits", pred.images, cat, wcs, kind="image")
        if skipped is not None and len(skipped):
            io.write_csv(tmp / "skipped.csv", skipped)
        io.write_json(tmp / "model.json", {"name": name, "path": source or str(model_path),
                                           "sha256": digest, "n_parameters": count_parameters(model),
                                           "zeropoint": zeropoint, "noise_sigma_blends": sigma,
                                           **dataclasses.asdict(cfg)})
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return pred
