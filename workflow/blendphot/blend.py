"""Artificial blends (paper §2.2): a central galaxy plus a shifted companion, pixels summed.

Two rules (config ``blend.rule``):

``paper``
    companion with |mag_comp - mag_cen| < ``max_mag_diff`` (never the central itself);
    R = max(Re_cen, Re_comp); shifts dx, dy drawn independently, each uniform in
    [``min_shift_re`` R, ``max_shift``] with a random sign, rounded to whole pixels.
``candels_blender`` (the default)
    the public tool's rule: r_min = max(Re), r_max = min(4 min(Re), ``max_shift``)
    (r_min = 0.8 r_max when r_min >= r_max); integer offsets uniform in [-r_max, r_max]^2,
    redrawn until r_min <= distance <= r_max, with a new pair after 25 failures.

Shifts are whole pixels so that the noise of the stamps is not resampled. The companion
stamp is translated with zero fill (never wrapped around as ``np.roll`` would).

With ``augment`` each galaxy's stamp is first turned by one of the eight symmetries of the
square (:func:`dihedral`), about its centre pixel: a permutation of the pixels, so the noise
is not resampled either and the galaxy stays on the centre pixel. Training draws fresh,
augmented blends every epoch this way (:class:`FreshBlends`); the fixed files of the blend
stage are never augmented.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from blendphot import io
from blendphot.config import BLEND_RULE_KEYS
from blendphot.errors import InputError

__all__ = [
    "FLUX_COLUMNS",
    "TARGET_COLUMNS",
    "Blends",
    "FreshBlends",
    "compose",
    "dihedral",
    "draw_companions",
    "draw_pairs_candels_blender",
    "draw_shifts_paper",
    "load_pool",
    "make_blends",
    "run_make_blends",
    "turned_stack",
]

_MAX_TRIES = 25
FLUX_COLUMNS = ("cen_flux", "comp_flux")
# What a network may learn (config train.target): the isolated galaxy's Kron flux (the paper's
# ground truth) or, on the mock survey, the flux the galaxy was drawn with.
TARGET_COLUMNS = {"isolated": FLUX_COLUMNS, "truth": ("cen_flux_true", "comp_flux_true")}


@dataclass
class Blends:
    """The blends of one split, as the blend stage writes them in one folder.

    images : (N, S, S) float32, e-/s (``images.npy``)
    masks : (N, 2, S, S) uint8, channel 0 the central galaxy, 1 the companion (``masks.npy``);
        None when loaded without them
    catalog : one row per blend (``catalog.csv``, see :func:`make_blends`)
    source : the folder it was read from, for error messages
    central : (N, S, S) float32, e-/s: the central galaxy's isolated stamp as it lies in the
        blend (``central.npy``); the companion's is ``images - central`` (:attr:`isolated`).
        What an image network learns and is scored against; None when not loaded or unknown
        (blends to predict)
    """

    images: np.ndarray
    masks: np.ndarray | None
    catalog: pd.DataFrame
    source: str = "blends"
    central: np.ndarray | None = None

    FILES: ClassVar[dict[str, str]] = {"images": "images.npy", "masks": "masks.npy", "catalog": "catalog.csv",
                                       "central": "central.npy"}

    def __post_init__(self):
        n = len(self.catalog)
        if self.images.ndim != 3 or self.images.shape[0] != n or self.images.shape[1] != self.images.shape[2]:
            raise InputError(f"{self.source}: blend images of shape {self.images.shape} do not hold the {n} "
                             "square blends of the catalogue")
        if self.masks is not None and self.masks.shape != (n, 2, *self.images.shape[1:]):
            raise InputError(f"{self.source}: masks of shape {self.masks.shape}, expected "
                             f"{(n, 2, *self.images.shape[1:])}")
        if self.central is not None and self.central.shape != self.images.shape:
            raise InputError(f"{self.source}: central images of shape {self.central.shape}, expected "
                             f"{self.images.shape}")

    def __len__(self) -> int:
        return len(self.catalog)

    @property
    def size(self) -> int:
        """The side of a blend, pixels."""
        return self.images.shape[-1]

    @property
    def fluxes(self) -> np.ndarray:
        """(N, 2) float32: the isolated fluxes of the central galaxy and the companion (NaN when
        the catalogue has none: blends to predict, not to learn from)."""
        if not all(c in self.catalog for c in FLUX_COLUMNS):
            return np.full((len(self), 2), np.nan, np.float32)
        return self.targets("isolated")

    def isolated(self, rows=slice(None)) -> np.ndarray:
        """(n, 2, S, S) float32: the isolated images of the central galaxy and the companion in
        the blends ``rows`` (their sum is the blend, pixel for pixel)."""
        if self.central is None:
            raise InputError(f"{self.source}: the central galaxies' isolated images "
                             f"({self.FILES['central']}) are needed and were not loaded")
        cen = np.asarray(self.central[rows], np.float32)
        return np.stack([cen, np.asarray(self.images[rows], np.float32) - cen], axis=1)

    def check_finite(self, *, chunk: int = 1024, where: str | None = None) -> None:
        """Every pixel of the images (and of the central images, when loaded) finite, read
        ``chunk`` blends at a time (a memory map stays one): an error naming the file (``where``
        for the images, else the folder's images.npy or central.npy) and the first bad blend
        otherwise."""
        for kind in ("images", "central"):
            array = getattr(self, kind)
            if array is None:
                continue
            bad, first = 0, None
            for start in range(0, len(self), chunk):
                finite = np.isfinite(array[start:start + chunk]).all(axis=(1, 2))
                bad += int((~finite).sum())
                if first is None and not finite.all():
                    first = start + int(np.argmin(finite))
            if bad:
                name = where if where and kind == "images" else f"{self.source}/{self.FILES[kind]}"
                raise InputError(f"{name}: non-finite pixels in {bad} blends "
                                 f"(first: row {first}, blend_id {self.catalog['blend_id'].iloc[first]})")

    def targets(self, target: str = "isolated") -> np.ndarray:
        """(N, 2) float32 training targets of the central galaxy and the companion:
        ``target`` is a key of :data:`TARGET_COLUMNS`."""
        return self.catalog[list(TARGET_COLUMNS[target])].to_numpy(np.float32)

    def require_fluxes(self, target: str = "isolated") -> None:
        """Training targets must be finite and positive: an error naming the first bad blend."""
        columns = TARGET_COLUMNS[target]
        if target == "truth" and not all(c in self.catalog for c in columns):
            raise InputError(f"{self.source}/catalog.csv: train.target 'truth' needs the survey's true fluxes "
                             f"(columns {', '.join(columns)}), which only the mock survey has")
        io.require_columns(self.catalog, columns, f"{self.source}/catalog.csv")
        flux = self.catalog[list(columns)].to_numpy(np.float64)
        bad = ~(np.isfinite(flux) & (flux > 0))
        if bad.any():
            row, col = map(int, np.argwhere(bad)[0])
            raise InputError(f"{self.source}/catalog.csv: column '{columns[col]}' must be finite and positive; "
                             f"row {row} (blend_id {self.catalog['blend_id'].iloc[row]}) has {flux[row, col]}")

    @staticmethod
    @contextlib.contextmanager
    def allocate(directory: str | Path, n: int, size: int):
        """Memory-mapped ``images.npy``, ``masks.npy`` and ``central.npy`` of ``n`` blends,
        written in place chunk by chunk; the files appear only if the block succeeds."""
        d = Path(directory)
        with io.create_array(d / Blends.FILES["images"], (n, size, size), np.float32) as images, \
                io.create_array(d / Blends.FILES["masks"], (n, 2, size, size), np.uint8) as masks, \
                io.create_array(d / Blends.FILES["central"], (n, size, size), np.float32) as central:
            yield images, masks, central

    def save(self, directory: str | Path, *, arrays: bool = True) -> None:
        """Write the three files (``arrays=False``: the catalogue only, the arrays having been
        written through :meth:`allocate`)."""
        d = Path(directory)
        if arrays:
            io.save_array(d / self.FILES["images"], np.asarray(self.images, np.float32))
            if self.masks is not None:
                io.save_array(d / self.FILES["masks"], np.asarray(self.masks, np.uint8))
            if self.central is not None:
                io.save_array(d / self.FILES["central"], np.asarray(self.central, np.float32))
        io.write_csv(d / self.FILES["catalog"], self.catalog)

    @classmethod
    def load(cls, directory: str | Path, *, masks: bool = True, in_memory: bool = True,
             central: bool = False) -> Blends:
        """Read one split. ``in_memory`` reads the arrays into private ones and checks every
        pixel is finite (what training needs); otherwise they stay memory-mapped. ``central``
        reads the central galaxies' isolated images too (an error naming the file if absent)."""
        d = Path(directory)
        catalog = io.read_csv(d / cls.FILES["catalog"], required=("blend_id",))
        images = io.load_array(d / cls.FILES["images"])
        m = io.load_array(d / cls.FILES["masks"]) if masks else None
        c = io.load_array(d / cls.FILES["central"]) if central else None
        if in_memory:
            images = np.array(images, dtype=np.float32)
            m = np.array(m, dtype=np.uint8) if m is not None else None
            c = np.array(c, dtype=np.float32) if c is not None else None
        blends = cls(images=images, masks=m, catalog=catalog, source=str(d), central=c)
        if in_memory:
            blends.check_finite()
        return blends


def _eligible(mag: np.ndarray, max_mag_diff: float):
    """Sorted order of the pool and, per galaxy, its companion window [lo, hi) in that order."""
    order = np.argsort(mag, kind="stable")
    sorted_mag = mag[order]
    lo = np.searchsorted(sorted_mag, mag - max_mag_diff, side="right")
    hi = np.searchsorted(sorted_mag, mag + max_mag_diff, side="left")
    rank = np.empty(len(mag), dtype=np.int64)
    rank[order] = np.arange(len(mag))
    return order, lo, hi, rank


def draw_companions(rng: np.random.Generator, mag: np.ndarray, centrals: np.ndarray, max_mag_diff: float) -> np.ndarray:
    """For each central, a uniformly drawn companion with |mag_diff| < ``max_mag_diff``, never itself.

    Centrals without any eligible companion must have been excluded by the caller.
    """
    order, lo, hi, rank = _eligible(mag, max_mag_diff)
    n_choices = hi[centrals] - lo[centrals] - 1  # the central itself lies inside its window
    if (n_choices < 1).any():
        raise ValueError("a central galaxy has no companion within max_mag_diff")
    pos = lo[centrals] + rng.integers(0, n_choices)
    pos += pos >= rank[centrals]  # skip the central's own position
    return order[pos]


def draw_shifts_paper(rng: np.random.Generator, r_px: np.ndarray, *, min_shift_re: float, max_shift: int):
    """Paper rule: |dx|, |dy| each uniform in [min_shift_re R, max_shift], random signs."""
    lo = np.minimum(min_shift_re * r_px, max_shift)
    mag = rng.uniform(lo[:, None], max_shift, size=(len(r_px), 2))
    sign = rng.choice(np.array([-1, 1]), size=(len(r_px), 2))
    shifts = np.rint(mag).astype(np.int64) * sign
    return shifts[:, 0], shifts[:, 1]


def draw_pairs_candels_blender(rng, mag, re_px, n, *, max_mag_diff, max_shift, candidates):
    """candels-blender rule: pairs and integer offsets by rejection on the distance."""
    cen = np.empty(0, np.int64)
    comp = np.empty(0, np.int64)
    dx = np.empty(0, np.int64)
    dy = np.empty(0, np.int64)
    while len(cen) < n:
        m = n - len(cen)
        c = rng.choice(candidates, m)
        k = draw_companions(rng, mag, c, max_mag_diff)
        r_min = np.maximum(re_px[c], re_px[k])
        r_max = np.minimum(4 * np.minimum(re_px[c], re_px[k]), max_shift)
        r_min = np.where(r_min >= r_max, 0.8 * r_max, r_min)
        ox = np.zeros(m, np.int64)
        oy = np.zeros(m, np.int64)
        ok = np.zeros(m, bool)
        for _ in range(_MAX_TRIES):
            todo = np.flatnonzero(~ok)
            if not len(todo):
                break
            lim = np.floor(r_max[todo]).astype(np.int64)
            tx = rng.integers(-lim, lim + 1)
            ty = rng.integers(-lim, lim + 1)
            d = np.hypot(tx, ty)
            good = (d >= r_min[todo]) & (d <= r_max[todo])
            ox[todo[good]], oy[todo[good]] = tx[good], ty[good]
            ok[todo[good]] = True
        cen, comp = np.concatenate([cen, c[ok]]), np.concatenate([comp, k[ok]])
        dx, dy = np.concatenate([dx, ox[ok]]), np.concatenate([dy, oy[ok]])
    return cen, comp, dx, dy


def dihedral(a: np.ndarray, t: int) -> np.ndarray:
    """``a[..., S, S]`` under symmetry ``t`` (0-7) of the square, about pixel (S//2, S//2).

    Bit 4 transposes, bit 1 reflects the rows and bit 2 the columns; a reflection maps pixel
    i to (2 (S//2) - i) mod S, so the centre pixel stays where it is (for an even S the one
    row or column that the reflection cannot pair, index 0, maps to itself). Every pixel is
    kept: a permutation, returned as a view where NumPy allows.
    """
    s = a.shape[-1]
    r = (2 * (s // 2) - np.arange(s)) % s
    if t & 4:
        a = np.swapaxes(a, -1, -2)
    if t & 1:
        a = a[..., r, :]
    if t & 2:
        a = a[..., :, r]
    return a


def turned_stack(a: np.ndarray) -> np.ndarray:
    """(G, S, S) stamps → (8 G, S, S): all of them under symmetry 0, then 1, ... 7
    (:func:`dihedral`); stamp ``j`` turned by ``t`` is row ``t G + j``."""
    return np.concatenate([dihedral(a, t) for t in range(8)])


def compose(images: np.ndarray, masks: np.ndarray, cen: np.ndarray, comp: np.ndarray, dx: np.ndarray,
            dy: np.ndarray, *, out_images: np.ndarray | None = None, out_masks: np.ndarray | None = None,
            out_central: np.ndarray | None = None, chunk: int = 512):
    """Sum each central stamp and its companion translated by (dx, dy) pixels (zero fill).

    Parameters
    ----------
    images : (G, S, S) float32 pool of isolated galaxies
    masks : (G, S, S) uint8 central-galaxy masks of the pool
    cen, comp, dx, dy : (N,) int arrays
    out_images, out_masks : optional preallocated (N, S, S) float32 and (N, 2, S, S) uint8
        outputs (e.g. ``.npy`` memmaps), filled chunk by chunk
    out_central : optional (N, S, S) float32 output, filled with each blend's central stamp

    Returns
    -------
    blends : (N, S, S) float32 ; blend_masks : (N, 2, S, S) uint8
    """
    n, size = len(cen), images.shape[-1]
    if (np.abs(dx) >= size).any() or (np.abs(dy) >= size).any():
        raise ValueError("a shift is as large as the stamp")
    if out_images is None:
        out_images = np.empty((n, size, size), dtype=np.float32)
    if out_masks is None:
        out_masks = np.empty((n, 2, size, size), dtype=np.uint8)
    # Destination window of the translated companion, per blend (source = destination - shift).
    ys0, ys1 = np.maximum(dy, 0), size + np.minimum(dy, 0)
    xs0, xs1 = np.maximum(dx, 0), size + np.minimum(dx, 0)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        img, msk = out_images[start:stop], out_masks[start:stop]  # contiguous views
        np.take(images, cen[start:stop], axis=0, out=img)
        if out_central is not None:
            out_central[start:stop] = img
        msk[:] = 0
        # Python ints make the per-blend slicing several times cheaper than NumPy scalars.
        rows = zip(*(v[start:stop].tolist() for v in (cen, comp, dy, dx, ys0, ys1, xs0, xs1)), strict=True)
        for i, (j, k, sy, sx, a, b, c, d) in enumerate(rows):
            msk[i, 0] = masks[j]
            img[i, a:b, c:d] += images[k, a - sy:b - sy, c - sx:d - sx]
            msk[i, 1, a:b, c:d] = masks[k, a - sy:b - sy, c - sx:d - sx]
    return out_images, out_masks


def make_blends(images: np.ndarray, masks: np.ndarray, pool: pd.DataFrame, n: int, *, rule: str,
                max_mag_diff: float, min_shift_re: float, max_shift: int, pixel_scale: float,
                rng: np.random.Generator, split: str = "", out_images: np.ndarray | None = None,
                out_masks: np.ndarray | None = None, augment: bool = False,
                turned: tuple[np.ndarray, np.ndarray] | None = None, central: bool = False,
                out_central: np.ndarray | None = None) -> Blends:
    """Draw ``n`` blends from one split's pool of isolated galaxies.

    ``pool`` rows align with ``images``/``masks`` and need the columns gid, cls, mag_auto,
    flux_auto and re_arcsec (and flux_true when the survey's truth is known).

    The catalogue has: blend_id, split, cen_gid, comp_gid, dx, dy (pixels, companion
    relative to the centre), distance_px, distance_re (distance / max(Re)), cen_/comp_ mag,
    flux, re_px, cls (and flux_true), and mag_diff = cen_mag - comp_mag (the central's
    magnitude minus the other's, as in the evaluation's galaxy table). ``out_images`` and
    ``out_masks`` are passed to :func:`compose`. ``augment`` turns each stamp by a random
    symmetry of the square (columns cen_/comp_transform), drawn after everything else, so the
    pairs and shifts are those of the same ``rng`` without it; ``turned`` holds the pool's
    images and masks under every symmetry (:func:`turned_stack`) when the caller keeps them.
    ``central`` (or an ``out_central`` to fill) keeps each blend's central stamp
    (:attr:`Blends.central`); it changes nothing else.
    """
    images = np.asarray(images, dtype=np.float32)
    masks = np.asarray(masks, dtype=np.uint8)
    mag = pool["mag_auto"].to_numpy(float)
    re_px = pool["re_arcsec"].to_numpy(float) / pixel_scale
    _, lo, hi, _ = _eligible(mag, max_mag_diff)
    candidates = np.flatnonzero(hi - lo - 1 >= 1)
    if n and not len(candidates):
        raise InputError(f"split {split!r}: no galaxy has a companion within {max_mag_diff} mag "
                         f"(pool of {len(pool)} galaxies)")
    if rule == "paper":
        cen = rng.choice(candidates, n)
        comp = draw_companions(rng, mag, cen, max_mag_diff)
        dx, dy = draw_shifts_paper(rng, np.maximum(re_px[cen], re_px[comp]), min_shift_re=min_shift_re,
                                   max_shift=max_shift)
    elif rule == "candels_blender":
        cen, comp, dx, dy = draw_pairs_candels_blender(rng, mag, re_px, n, max_mag_diff=max_mag_diff,
                                                       max_shift=max_shift, candidates=candidates)
    else:
        raise ValueError(f"unknown blending rule {rule!r}")
    if central and out_central is None:
        out_central = np.empty((n, images.shape[-1], images.shape[-1]), np.float32)
    if augment:
        cen_t, comp_t = rng.integers(0, 8, size=(2, n))
        stack_images, stack_masks = turned if turned is not None else (turned_stack(images), turned_stack(masks))
        g = len(images)
        blends, blend_masks = compose(stack_images, stack_masks, cen + g * cen_t, comp + g * comp_t, dx, dy,
                                      out_images=out_images, out_masks=out_masks, out_central=out_central)
    else:
        blends, blend_masks = compose(images, masks, cen, comp, dx, dy, out_images=out_images, out_masks=out_masks,
                                      out_central=out_central)

    dist = np.hypot(dx, dy)
    cat = pd.DataFrame({"blend_id": np.arange(n), "split": split,
                        "cen_gid": pool["gid"].to_numpy()[cen], "comp_gid": pool["gid"].to_numpy()[comp],
                        "dx": dx, "dy": dy, "distance_px": dist,
                        "distance_re": dist / np.maximum(re_px[cen], re_px[comp])})
    for role, idx in (("cen", cen), ("comp", comp)):
        cat[f"{role}_mag"] = mag[idx]
        cat[f"{role}_flux"] = pool["flux_auto"].to_numpy(float)[idx]
        cat[f"{role}_re_px"] = re_px[idx]
        cat[f"{role}_cls"] = pool["cls"].to_numpy()[idx]
        if "flux_true" in pool:
            cat[f"{role}_flux_true"] = pool["flux_true"].to_numpy(float)[idx]
    cat["mag_diff"] = cat["cen_mag"] - cat["comp_mag"]
    if augment:
        cat["cen_transform"], cat["comp_transform"] = cen_t, comp_t
    return Blends(images=blends, masks=blend_masks, catalog=cat, source=f"blends of split {split!r}",
                  central=out_central)


def load_pool(clean_dir: str | Path, galaxies_path: str | Path, split: str):
    """One split's accepted galaxies: (images, masks, catalogue rows), read from the clean
    stage's folder and the split table (only that split's stamps are read)."""
    from blendphot.clean import CleanedStamps

    clean = CleanedStamps.load(clean_dir)
    io.require_columns(clean.catalog, ["gid", "cls", "mag_auto", "flux_auto", "re_arcsec"],
                       Path(clean_dir) / CleanedStamps.FILES["catalog"])
    galaxies = io.read_csv(galaxies_path, required=["gid", "split"])
    rows = np.flatnonzero(clean.catalog["gid"].isin(galaxies.loc[galaxies["split"] == split, "gid"]).to_numpy())
    pool = clean.catalog.iloc[rows].reset_index(drop=True)
    return np.asarray(clean.images[rows], np.float32), np.asarray(clean.masks[rows], np.uint8), pool


def _rule_settings(settings: dict) -> dict:
    return {k: settings[k] for k in BLEND_RULE_KEYS}


def run_make_blends(clean_dir: str | Path, galaxies_path: str | Path, out_dir: str | Path, *, split: str,
                    settings: dict, seed: int, pixel_scale: float) -> Blends:
    """The make_blends stage: draw one split's blends from its accepted galaxies and write
    them, chunk by chunk, into memory-mapped files (``settings``: the config's ``blend``)."""
    from blendphot.config import child_seed

    images, masks, pool = load_pool(clean_dir, galaxies_path, split)
    if len(pool) < 2:
        raise InputError(f"{galaxies_path}: the {split} split has {len(pool)} galaxies with a cleaned stamp; "
                         "a blend needs two")
    n = settings["n_blends"][split]
    with Blends.allocate(out_dir, n, images.shape[-1]) as (out_images, out_masks, out_central):
        blends = make_blends(images, masks, pool, n, **_rule_settings(settings), pixel_scale=pixel_scale,
                             rng=np.random.default_rng(child_seed(seed, f"blend_{split}")),
                             split=split, out_images=out_images, out_masks=out_masks, out_central=out_central)
    blends.save(out_dir, arrays=False)
    return blends


class FreshBlends:
    """Training blends drawn afresh for every epoch from one split's galaxies.

    Epoch ``k`` holds ``n`` blends made by :func:`make_blends` with the blend stage's rule
    (config ``blend``), each stamp turned by a random symmetry of the square when
    ``augment``, from a generator seeded by (``seed``, ``k``) alone: the same seed gives the
    same blends bit for bit, and a run resumed at epoch ``k`` sees exactly the blends the
    killed one would have. Only the pool's galaxies appear, so a galaxy of another split can
    never enter a batch. The pool is kept under all eight symmetries (8 times its memory: about
    1 GB for the paper's 1500 training galaxies), so that drawing an epoch only copies pixels.
    ``central`` keeps each blend's central stamp, the target of an image network.
    """

    def __init__(self, images: np.ndarray, masks: np.ndarray, pool: pd.DataFrame, n: int, *, settings: dict,
                 pixel_scale: float, seed: np.random.SeedSequence | int, augment: bool = True, split: str = "train",
                 central: bool = False):
        if n < 1:
            raise InputError(f"fresh training blends need blend.n_blends.{split} >= 1 (blends per epoch)")
        self.images, self.masks, self.pool, self.n = images, masks, pool, n
        self.rule = _rule_settings(settings)
        self.pixel_scale, self.augment, self.split, self.central = pixel_scale, augment, split, central
        self.seed = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self.source = f"fresh blends of split {split!r}"
        self.turned = (turned_stack(images), turned_stack(masks)) if augment else None
        self._last: tuple[int, Blends] | None = None  # the epoch drawn last, asked for again by fit
        self.draw_s: dict[int, float] = {}  # seconds each epoch took to draw (fit's history reports them)

    def __len__(self) -> int:
        return self.n

    @property
    def size(self) -> int:
        return self.images.shape[-1]

    def epoch(self, k: int) -> Blends:
        """The blends of epoch ``k`` (a function of the seed and ``k`` only)."""
        if self._last is not None and self._last[0] == k:
            return self._last[1]
        t0 = time.perf_counter()
        ss = np.random.SeedSequence(self.seed.entropy, spawn_key=(*self.seed.spawn_key, k))
        blends = make_blends(self.images, self.masks, self.pool, self.n, **self.rule, pixel_scale=self.pixel_scale,
                             rng=np.random.default_rng(ss), split=self.split, augment=self.augment,
                             turned=self.turned, central=self.central)
        blends.source = f"{self.source}, epoch {k}"
        self.draw_s[k] = time.perf_counter() - t0
        self._last = (k, blends)
        return blends

    def fingerprint(self) -> str:
        """SHA-256 of the pool, the rule and the seed: what the epochs are drawn from."""
        h = hashlib.sha256()
        for array in (self.images, self.masks):
            h.update(np.ascontiguousarray(array).data)
        h.update(pd.util.hash_pandas_object(self.pool, index=False).to_numpy().tobytes())
        h.update(json.dumps([self.rule, self.n, self.pixel_scale, self.augment, self.seed.entropy,
                             list(self.seed.spawn_key)], sort_keys=True, default=str).encode())
        return h.hexdigest()
