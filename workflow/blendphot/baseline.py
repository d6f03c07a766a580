"""The SExtractor baseline (paper §3.3, Table 3), with sep.

Every blend is segmented in a *cold* mode (high threshold, coarse deblending); blends where
the cold pass finds exactly one object are segmented again in a *hot* mode (lower threshold,
fine deblending), and the hot result replaces the cold one when it finds anything. Then the
detections are matched to the two galaxies (paper §3.3):

- 0 detections: no measurement (``outcome = "none"``);
- 1 detection: the central galaxy when its centroid lies within ``central_radius`` x R_cen of
  the stamp centre, else the companion (``one_central`` / ``one_companion``);
- 2 detections: each galaxy gets a distinct detection, the assignment with the smaller total
  distance to the true positions (``two``);
- more than 2: the two brightest detections, then as for two (``more``). The public code took
  the companion's index from the subset of faint objects and applied it to the full list; here
  indices always refer to the full detection list.

Fluxes are ``kron`` (FLUX_AUTO, the paper's text, measured by :mod:`blendphot.photometry` exactly
as the isolated galaxies' ground truth: the blend's background level subtracted, the pixels of
the other detected objects corrected by symmetry as SExtractor does) or ``iso`` (sep's
isophotal flux, the public code). The matched objects' segments
are the method's masks, so sep's segmentation of the blend can be scored like the U-Net's.

The true positions: the central galaxy on pixel (S // 2, S // 2), the companion shifted by
(dx, dy) pixels (:mod:`blendphot.blend`).
"""

from __future__ import annotations

import concurrent.futures as cf
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from blendphot import io
from blendphot.blend import Blends
from blendphot.errors import ConfigError
from blendphot.photometry import background_level, kron_photometry
from blendphot.prediction import Prediction

__all__ = [
    "OUTCOMES",
    "BaselineConfig",
    "SepPass",
    "detect",
    "match_detections",
    "measure_blends",
    "object_fluxes",
    "run_baseline",
]

# Detection outcome per blend, in the paper's order (its public catalogue codes 0-3 are
# one_central, one_companion, two, more).
OUTCOMES = ("none", "one_central", "one_companion", "two", "more")


@dataclass(frozen=True)
class SepPass:
    """One sep detection mode (Table 3): threshold in units of the global background rms."""

    thresh: float
    minarea: int
    deblend_cont: float
    deblend_nthresh: int = 64


@dataclass(frozen=True)
class BaselineConfig:
    """The baseline's settings (config section ``baseline``; defaults are the paper's)."""

    cold: SepPass = field(default_factory=lambda: SepPass(5.0, 10, 0.01, 64))
    hot: SepPass = field(default_factory=lambda: SepPass(4.0, 6, 0.0001, 64))
    flux: str = "kron"
    subtract_background: bool = False
    central_radius: float = 0.5

    def __post_init__(self):
        if self.flux not in ("kron", "iso"):
            raise ConfigError(f"baseline.flux: {self.flux!r} is not one of kron, iso")

    @classmethod
    def from_config(cls, section: dict) -> BaselineConfig:
        return cls(cold=SepPass(**section["cold"]), hot=SepPass(**section["hot"]), flux=section["flux"],
                   subtract_background=section["subtract_background"], central_radius=section["central_radius"])


def detect(image: np.ndarray, mode: SepPass, *, subtract_background: bool = False):
    """Segment one blend. Returns (data, objects, seg): the image that was measured
    (background-subtracted or not), sep's object array and its segmentation map (int32, 0 for
    the background, k + 1 for object k)."""
    import sep

    data = np.array(image, dtype=np.float32, order="C")  # a private, writable, native copy
    bkg = sep.Background(data)
    if subtract_background:
        data -= bkg.back()
    objects, seg = sep.extract(data, mode.thresh, err=bkg.globalrms, minarea=mode.minarea,
                               deblend_cont=mode.deblend_cont, deblend_nthresh=mode.deblend_nthresh,
                               segmentation_map=True)
    return data, objects, seg


def object_fluxes(data: np.ndarray, objects: np.ndarray, seg: np.ndarray, method: str) -> np.ndarray:
    """Flux of every detected object (e-/s): ``iso`` (sep's isophotal flux) or ``kron``
    (FLUX_AUTO by :func:`blendphot.photometry.kron_photometry`, as the ground truth is
    measured: the blend's background level subtracted, the other objects corrected by symmetry)."""
    if method == "iso" or len(objects) == 0:
        return np.asarray(objects["flux"], dtype=float)
    labels = np.arange(1, len(objects) + 1)
    return kron_photometry(data, seg, objects, labels, background=background_level(data, seg))["flux"]


def match_detections(xy: np.ndarray, fluxes: np.ndarray, centre: tuple[float, float],
                     companion: tuple[float, float], r_cen: float, central_radius: float = 0.5):
    """Assign detections to the central galaxy and the companion (paper §3.3).

    Parameters
    ----------
    xy : (n, 2) float, detection centroids (x, y) in pixels
    fluxes : (n,) float, used only to keep the two brightest of more than two detections
    centre, companion : true (x, y) positions of the two galaxies
    r_cen : effective radius of the central galaxy, pixels

    Returns
    -------
    (i_cen, i_comp, outcome): indices into ``xy`` (-1 where the galaxy gets no detection) and
    one of :data:`OUTCOMES`.
    """
    n = len(xy)
    if n == 0:
        return -1, -1, "none"
    if n == 1:
        near_centre = np.hypot(*(np.asarray(xy[0]) - centre)) <= central_radius * r_cen
        return (0, -1, "one_central") if near_centre else (-1, 0, "one_companion")
    keep = np.argsort(-np.asarray(fluxes), kind="stable")[:2] if n > 2 else np.array([0, 1])
    p, q = (np.asarray(xy[k], dtype=float) for k in keep)
    centre, companion = np.asarray(centre, float), np.asarray(companion, float)
    straight = np.hypot(*(p - centre)) + np.hypot(*(q - companion))
    crossed = np.hypot(*(q - centre)) + np.hypot(*(p - companion))
    i_cen, i_comp = (keep[0], keep[1]) if straight <= crossed else (keep[1], keep[0])
    return int(i_cen), int(i_comp), "two" if n == 2 else "more"


def _measure_chunk(images: np.ndarray, r_cen: np.ndarray, shifts: np.ndarray, cfg: BaselineConfig):
    """Measure a chunk of blends; returns (table columns, masks (n, 2, S, S) uint8)."""
    n, size = len(images), images.shape[-1]
    c = float(size // 2)
    out = {"cen_flux": np.full(n, np.nan), "comp_flux": np.full(n, np.nan), "n_detected": np.zeros(n, int),
           "outcome": np.empty(n, object), "sep_pass": np.empty(n, object),
           "cen_x": np.full(n, np.nan), "cen_y": np.full(n, np.nan),
           "comp_x": np.full(n, np.nan), "comp_y": np.full(n, np.nan)}
    masks = np.zeros((n, 2, size, size), dtype=np.uint8)
    for k in range(n):
        data, objects, seg = detect(images[k], cfg.cold, subtract_background=cfg.subtract_background)
        sep_pass = "cold"
        if len(objects) == 1:
            hot = detect(images[k], cfg.hot, subtract_background=cfg.subtract_background)
            if len(hot[1]):
                (data, objects, seg), sep_pass = hot, "hot"
        fluxes = object_fluxes(data, objects, seg, cfg.flux)
        xy = np.column_stack([objects["x"], objects["y"]]) if len(objects) else np.empty((0, 2))
        i_cen, i_comp, outcome = match_detections(xy, fluxes, (c, c), (c + shifts[k, 0], c + shifts[k, 1]),
                                                  r_cen[k], cfg.central_radius)
        out["n_detected"][k], out["outcome"][k], out["sep_pass"][k] = len(objects), outcome, sep_pass
        for channel, (role, i) in enumerate((("cen", i_cen), ("comp", i_comp))):
            if i >= 0:
                out[f"{role}_flux"][k] = fluxes[i]
                out[f"{role}_x"][k], out[f"{role}_y"][k] = xy[i]
                masks[k, channel] = seg == i + 1
    return out, masks


def measure_blends(images: np.ndarray, catalog: pd.DataFrame, cfg: BaselineConfig, *, workers: int = 1,
                   chunk: int = 256, masks_out: np.ndarray | None = None, progress=None) -> Prediction:
    """Run the baseline over blends, in parallel processes over chunks of ``chunk`` blends.

    Parameters
    ----------
    images : (N, S, S) float32 blends (e-/s), e.g. a read-only memmap
    catalog : the blend catalogue: ``blend_id``, ``dx``, ``dy`` (companion shift, pixels) and
        ``cen_re_px`` (central effective radius, pixels), one row per image
    masks_out : optional (N, 2, S, S) uint8 array that receives the matched segments
    progress : optional callable(n) called with the number of blends of each finished chunk

    Returns
    -------
    :class:`~blendphot.prediction.Prediction` with method ``sep`` and the extra columns
    ``n_detected``, ``outcome``, ``sep_pass`` (cold / hot) and the matched centroids.
    """
    io.require_columns(catalog, ["blend_id", "dx", "dy", "cen_re_px"], "the blend catalogue")
    n = len(catalog)
    if images.shape[0] != n:
        raise ValueError(f"{images.shape[0]} blend images for {n} catalogue rows")
    masks = masks_out if masks_out is not None else np.zeros((n, 2, *images.shape[1:]), np.uint8)
    r_cen = catalog["cen_re_px"].to_numpy(float)
    shifts = catalog[["dx", "dy"]].to_numpy(float)
    columns: dict[int, dict] = {}
    starts = range(0, n, chunk)

    def store(start, result):
        columns[start], masks[start:start + chunk] = result
        if progress is not None:
            progress(len(result[1]))

    if workers <= 1:
        for s in starts:
            store(s, _measure_chunk(images[s:s + chunk], r_cen[s:s + chunk], shifts[s:s + chunk], cfg))
    else:
        with cf.ProcessPoolExecutor(max_workers=workers) as pool:
            pending: dict[cf.Future, int] = {}
            for s in starts:  # at most 2 chunks per worker in flight: bounded memory
                if len(pending) >= 2 * workers:
                    done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                    for f in done:
                        store(pending.pop(f), f.result())
                pending[pool.submit(_measure_chunk, np.array(images[s:s + chunk]), r_cen[s:s + chunk],
                                    shifts[s:s + chunk], cfg)] = s
            for f in cf.as_completed(pending):
                store(pending[f], f.result())
    table = pd.concat([pd.DataFrame(columns[s]) for s in starts], ignore_index=True) if n else \
        pd.DataFrame(columns=["cen_flux", "comp_flux", "n_detected", "outcome", "sep_pass"])
    table.insert(0, "blend_id", catalog["blend_id"].to_numpy())
    return Prediction(catalog=table, masks=masks, method="sep")


def run_baseline(blends_dir: str | Path, out_dir: str | Path, cfg: BaselineConfig, *, workers: int = 1,
                 progress=None) -> Prediction:
    """The run_baseline stage: read a split of blends (:class:`~blendphot.blend.Blends`),
    measure them, write the :class:`~blendphot.prediction.Prediction` folder."""
    blends = Blends.load(blends_dir, masks=False, in_memory=False)
    io.require_columns(blends.catalog, ["blend_id", "dx", "dy", "cen_re_px"], Path(blends_dir) / "catalog.csv")
    blends.check_finite()
    with Prediction.allocate_masks(out_dir, len(blends), blends.size) as masks:
        pred = measure_blends(blends.images, blends.catalog, cfg, workers=workers, masks_out=masks, progress=progress)
    pred.save(out_dir, masks=False)
    return pred
