"""The paper's figures 1, 2 and 5-12, from the workflow's files (matplotlib, no display).

Each ``figureN`` function takes arrays and tables and returns a :class:`matplotlib.figure.Figure`;
:func:`render` reads a figure's input files and calls it; :func:`save` writes the formats.
Images use an asinh stretch; each method keeps one colour in every figure
(:func:`method_colours`); panels print the paper's statistics (mean Δmag, σ, outlier
fraction, MAPE on magnitude), computed by :func:`blendphot.evaluate.photometry_stats`.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from blendphot import io
from blendphot.architectures import architecture
from blendphot.blend import Blends
from blendphot.evaluate import PAPER_DISTANCE_PX, PAPER_SEP_OUTCOMES, photometry_stats
from blendphot.photometry import flux_to_mag, interval_halfwidth, laplace_pit, log_flux_z
from blendphot.prediction import Prediction

__all__ = [
    "FIGURES",
    "figure1",
    "figure2",
    "figure5",
    "figure6",
    "figure7",
    "figure8",
    "figure9",
    "figure10",
    "figure11",
    "figure12",
    "figure_calibration",
    "figure_deblend",
    "figure_sample",
    "method_colours",
    "method_label",
    "render",
    "run_plot_figure",
    "save",
]

FIGURES = ("figure1", "figure2", "figure5", "figure6", "figure7", "figure8", "figure9", "figure10", "figure11",
           "figure12", "sample", "calibration", "deblend")
CLASSES = ("bulge", "bulge_disk", "disk", "irregular")
CLASS_COLOURS = {"bulge": "#e6b800", "bulge_disk": "#3b75af", "disk": "#c0392b", "irregular": "#8fd175",
                 "all": "#0b1f4b"}
ROLE_TITLES = {"cen": "central", "comp": "companion"}


def method_label(method: str) -> str:
    return "SExtractor (sep)" if method == "sep" else method


def method_colours(archs: dict[str, str]) -> dict[str, str]:
    """One colour per method, the paper's where it has one: sep blue, and each network the
    next colour of its architecture's palette (blendphot/architectures.py: blend2flux black
    and greys, blend2mask2flux red, the U-Net orange)."""
    colours, palettes = {"sep": "#1f77b4"}, {}
    for name, arch in archs.items():
        palette = palettes.setdefault(arch, itertools.cycle(architecture(arch).palette))
        colours[name] = next(palette)
    return colours


def _stretch(image: np.ndarray):
    from astropy.visualization import simple_norm

    return simple_norm(image, "asinh", percent=99.7)


def _show(ax, image, title=None):
    ax.imshow(image, origin="lower", cmap="gray_r" if image.ndim == 2 else None,
              norm=_stretch(image) if image.ndim == 2 else None, interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def _mask_rgb(masks: np.ndarray) -> np.ndarray:
    """(2, S, S) masks as an RGB image: central red, companion blue, overlap magenta."""
    rgb = np.ones((*masks.shape[1:], 3))
    cen, comp = masks[0].astype(bool), masks[1].astype(bool)
    rgb[cen] = (0.85, 0.2, 0.2)
    rgb[comp] = (0.2, 0.35, 0.85)
    rgb[cen & comp] = (0.7, 0.2, 0.7)
    return rgb


def _stats_text(rows: pd.DataFrame, outlier_dmag: float) -> str:
    # the zero point is implied by the rows' own magnitudes and fluxes
    zp = float((rows["mag_iso"] - flux_to_mag(rows["flux_iso"], 0.0)).iloc[0]) if len(rows) else 0.0
    s = photometry_stats(rows["flux"].to_numpy(), rows["flux_iso"].to_numpy(), zeropoint=zp,
                         outlier_dmag=outlier_dmag)
    return (f"$\\overline{{\\Delta m}}$ = {s['bias']:.3f}\n$\\sigma$ = {s['sigma']:.3f}\n"
            f"outliers = {100 * s['outlier_fraction']:.1f} %\nMAPE = {s['mape_mag']:.2f} %\nN = {s['n_measured']}")


def figure1(originals: np.ndarray, cleaned: np.ndarray, masks: np.ndarray, catalog: pd.DataFrame) -> plt.Figure:
    """One accepted galaxy per class (the median magnitude of its class): original stamp,
    after neighbour removal, and its segmentation mask."""
    classes = [c for c in CLASSES if (catalog["cls"] == c).any()]
    fig, axes = plt.subplots(len(classes), 3, figsize=(6.6, 2.25 * len(classes)), squeeze=False)
    for r, cls in enumerate(classes):
        rows = catalog[catalog["cls"] == cls].sort_values("mag")
        k = int(rows.index[len(rows) // 2])
        for c, (image, title) in enumerate(((originals[k], "original"), (cleaned[k], "neighbours removed"),
                                            (masks[k].astype(float), "segmentation"))):
            _show(axes[r, c], image, title if r == 0 else None)
        axes[r, 0].set_ylabel(f"{cls}\nmag {rows.loc[k, 'mag']:.2f}", fontsize=9)
    fig.tight_layout()
    return fig


def figure2(images: np.ndarray, catalog: pd.DataFrame, *, distance_edges, mag_diff_edges) -> plt.Figure:
    """Blends by centre distance (rows, pixels) and |mag_cen - mag_comp| (columns)."""
    nr, nc = len(distance_edges) - 1, len(mag_diff_edges) - 1
    fig, axes = plt.subplots(nr, nc, figsize=(1.9 * nc + 0.6, 1.9 * nr + 0.4), squeeze=False)
    d, m = catalog["distance_px"].to_numpy(), np.abs(catalog["mag_diff"].to_numpy())
    for r in range(nr):
        for c in range(nc):
            ax = axes[r, c]
            hit = np.flatnonzero((d >= distance_edges[r]) & (d < distance_edges[r + 1])
                                 & (m >= mag_diff_edges[c]) & (m < mag_diff_edges[c + 1]))
            if len(hit):
                _show(ax, images[hit[0]])
            else:
                ax.set_xticks([]), ax.set_yticks([])
                ax.text(0.5, 0.5, "no blend", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            if r == 0:
                ax.set_title(f"|Δmag| {mag_diff_edges[c]:g}–{mag_diff_edges[c + 1]:g}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"d {distance_edges[r]:g}–{distance_edges[r + 1]:g} px", fontsize=9)
    fig.tight_layout()
    return fig


def _mag_panel(ax, rows: pd.DataFrame, colour: str, title: str, lims, outlier_dmag: float):
    mag_blend = rows["mag_iso"] + rows["dmag"]
    ax.plot(lims, lims, ls="--", lw=1, color="grey")
    ax.scatter(rows["mag_iso"], mag_blend, s=3, color=colour, alpha=0.35, linewidths=0, rasterized=True)
    ax.set_xlim(lims), ax.set_ylim(lims)
    ax.set_title(title, fontsize=10, fontstyle="italic")
    ax.text(0.04, 0.96, _stats_text(rows, outlier_dmag), transform=ax.transAxes, va="top", fontsize=8)
    inset = ax.inset_axes([0.58, 0.08, 0.38, 0.3])
    d = rows["dmag"].to_numpy()
    inset.hist(np.clip(d[np.isfinite(d)], -2, 2), bins=40, range=(-2, 2), color=colour, alpha=0.8)
    inset.set_xlim(-2, 2), inset.set_yticks([]), inset.set_xticks([-1, 0, 1])
    inset.tick_params(labelsize=7)
    inset.set_title("Δmag", fontsize=8, pad=2)


def _mag_limits(galaxies: pd.DataFrame):
    lo, hi = np.nanpercentile(galaxies["mag_iso"], [0.5, 99.5])
    return (np.floor(lo * 2) / 2 - 0.25, np.ceil(hi * 2) / 2 + 0.25)


def _grid(nrows: int, ncols: int, width=3.2, height=3.2):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                             sharex=True, sharey=True)
    return fig, axes


def figure5(galaxies: pd.DataFrame, methods: list[str], colours: dict, *, outlier_dmag: float = 0.75) -> plt.Figure:
    """Blend vs isolated magnitude per method; rows: the central galaxy on blends where sep
    found it, the companion likewise (the paper's selection)."""
    lims = _mag_limits(galaxies)
    fig, axes = _grid(2, len(methods))
    for r, role in enumerate(("cen", "comp")):
        for c, method in enumerate(methods):
            rows = galaxies[(galaxies["method"] == method) & (galaxies["role"] == role) & galaxies["sep_found"]]
            _mag_panel(axes[r, c], rows, colours[method], f"{method_label(method)} ({ROLE_TITLES[role]})", lims,
                       outlier_dmag)
    _label_mag_axes(axes)
    fig.tight_layout()
    return fig


def figure6(galaxies: pd.DataFrame, methods: list[str], colours: dict, *, outlier_dmag: float = 0.75) -> plt.Figure:
    """As figure 5, both galaxies together; rows: blends where sep found exactly two objects,
    and blends where it found one, none or more than two."""
    lims = _mag_limits(galaxies)
    fig, axes = _grid(2, len(methods))
    for r, (two, what) in enumerate(((True, "sep found 2"), (False, "sep found 0, 1 or >2"))):
        for c, method in enumerate(methods):
            rows = galaxies[(galaxies["method"] == method) & ((galaxies["sep_outcome"] == "two") == two)]
            rows = rows[rows["measured"]]
            _mag_panel(axes[r, c], rows, colours[method], f"{method_label(method)} ({what})", lims, outlier_dmag)
    _label_mag_axes(axes)
    fig.tight_layout()
    return fig


def _label_mag_axes(axes):
    for ax in axes[-1]:
        ax.set_xlabel("isolated magnitude (F160W, AB)")
    for ax in axes[:, 0]:
        ax.set_ylabel("blend magnitude recovered (AB)")


def _bin_centres(edges) -> np.ndarray:
    edges = np.asarray(edges, float)
    return (edges[:-1] + edges[1:]) / 2


def figure7(galaxies: pd.DataFrame, methods: list[str], *, mag_diff_bins) -> plt.Figure:
    """Δmag against mag_self - mag_other, boxplots per bin (whiskers 5-95 %), points coloured
    by the distance in units of the galaxy's own Re; rows central / companion (sep-found)."""
    edges = np.asarray(mag_diff_bins, float)
    centres, width = _bin_centres(edges), 0.6 * np.diff(edges).min()
    fig, axes = plt.subplots(2, len(methods), figsize=(3.4 * len(methods) + 0.8, 6.8), squeeze=False,
                             layout="constrained")
    for r, role in enumerate(("cen", "comp")):
        cmap = "Reds" if role == "cen" else "Blues"
        for c, method in enumerate(methods):
            ax = axes[r, c]
            rows = galaxies[(galaxies["method"] == method) & (galaxies["role"] == role) & galaxies["sep_found"]
                            & np.isfinite(galaxies["dmag"])]
            x, y = rows["mag_diff"].to_numpy(), rows["dmag"].to_numpy()
            points = ax.scatter(x, y, c=rows["distance_own_re"], cmap=cmap, vmin=0, vmax=8, s=3, linewidths=0,
                                rasterized=True, zorder=1)
            which = np.digitize(x, edges) - 1
            data = [y[which == k] for k in range(len(centres))]
            keep = [k for k, v in enumerate(data) if len(v)]
            if keep:
                ax.boxplot([data[k] for k in keep], positions=centres[keep], widths=width, whis=(5, 95),
                           showfliers=False, manage_ticks=False, zorder=2,
                           medianprops={"color": "black"}, boxprops={"alpha": 0.8}, whiskerprops={"alpha": 0.8})
            ax.axhline(0, ls="--", lw=1, color="grey")
            lim = max(0.3, float(np.nanpercentile(np.abs(y), 98))) if len(y) else 1.0
            ax.set_ylim(-lim, lim), ax.set_xlim(edges[0], edges[-1])
            ax.set_title(f"{method_label(method)} ({ROLE_TITLES[role]})", fontsize=10, fontstyle="italic")
            ax.set_xlabel("mag$_{central}$ − mag$_{companion}$" if role == "cen"
                          else "mag$_{companion}$ − mag$_{central}$")
            if c == 0:
                ax.set_ylabel("Δmag = mag$_{blend}$ − mag$_{isolated}$")
        fig.colorbar(points, ax=list(axes[r]), label="distance / R$_e$", pad=0.01)
    return fig


def _binned(x: np.ndarray, y: np.ndarray, edges, stat) -> np.ndarray:
    which = np.digitize(x, edges) - 1
    return np.array([stat(y[which == k]) if (which == k).sum() >= 3 else np.nan for k in range(len(edges) - 1)])


def figure8(galaxies: pd.DataFrame, methods: list[str], colours: dict, *, mag_diff_bins) -> plt.Figure:
    """Bias (mean Δmag, solid, left axis) and scatter (σ, dotted, right axis) of the central
    galaxy per bin of mag_central - mag_companion, one line per method."""
    edges = np.asarray(mag_diff_bins, float)
    centres = _bin_centres(edges)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax2 = ax.twinx()
    for method in methods:
        rows = galaxies[(galaxies["method"] == method) & (galaxies["role"] == "cen") & np.isfinite(galaxies["dmag"])]
        x, y = rows["mag_diff"].to_numpy(), rows["dmag"].to_numpy()
        ax.plot(centres, _binned(x, y, edges, np.mean), "-o", color=colours[method], label=method_label(method))
        ax2.plot(centres, _binned(x, y, edges, np.std), ":s", color=colours[method])
    ax.axhline(0, lw=0.8, color="grey")
    ax.set_xlabel("mag$_{central}$ − mag$_{companion}$")
    ax.set_ylabel("bias: mean Δmag (solid)")
    ax2.set_ylabel("scatter: σ(Δmag) (dotted)")
    ax2.set_ylim(bottom=0)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    fig.tight_layout()
    return fig


def figure9(galaxies: pd.DataFrame, methods: list[str], *, mag_diff_bins) -> plt.Figure:
    """Median Δmag (top) and scatter (bottom) of the central galaxy per bin of
    mag_central - mag_companion, one line per morphology of the central galaxy and for all."""
    edges = np.asarray(mag_diff_bins, float)
    centres = _bin_centres(edges)
    fig, axes = plt.subplots(2, len(methods), figsize=(3.4 * len(methods), 6.2), squeeze=False, sharex=True)
    for c, method in enumerate(methods):
        rows = galaxies[(galaxies["method"] == method) & (galaxies["role"] == "cen") & np.isfinite(galaxies["dmag"])]
        for cls in (*CLASSES, "all"):
            part = rows if cls == "all" else rows[rows["cls"] == cls]
            if part.empty:
                continue
            x, y = part["mag_diff"].to_numpy(), part["dmag"].to_numpy()
            style = {"color": CLASS_COLOURS[cls], "lw": 2.5 if cls == "all" else 1.5}
            axes[0, c].plot(centres, _binned(x, y, edges, np.median), "-d", label=cls.replace("_", "+"), **style)
            axes[1, c].plot(centres, _binned(x, y, edges, np.std), ":p", **style)
        axes[0, c].set_title(method_label(method), fontsize=10, fontstyle="italic")
        axes[0, c].axhline(0, lw=0.8, color="grey")
        axes[1, c].set_xlabel("mag$_{central}$ − mag$_{companion}$")
        axes[1, c].set_ylim(bottom=0)
    axes[0, 0].set_ylabel("median Δmag")
    axes[1, 0].set_ylabel("σ(Δmag)")
    axes[0, 0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def example_blends(catalog: pd.DataFrame, n: int) -> np.ndarray:
    """``n`` test blends spread over the distance distribution (at its (k + 0.5)/n quantiles)."""
    order = np.argsort(catalog["distance_px"].to_numpy(), kind="stable")
    picks = ((np.arange(n) + 0.5) / n * len(order)).astype(int)
    return order[np.minimum(picks, len(order) - 1)]


def _iou_label(ax, ious):
    ax.text(0.97, 0.03, f"IoU {ious[0]:.2f} / {ious[1]:.2f}", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=7, bbox={"facecolor": "white", "alpha": 0.7, "lw": 0})


def figure10(images, true_masks, pred_masks, catalog: pd.DataFrame, galaxies: pd.DataFrame, method: str, *,
             examples: int = 4) -> plt.Figure:
    """Per example blend: the isolated galaxies' masks (left), the blend (centre) and the masks
    ``method`` recovers from the blend (right). Central red, companion blue."""
    picks = example_blends(catalog, examples)
    fig, axes = plt.subplots(examples, 3, figsize=(6.6, 2.2 * examples), squeeze=False)
    for r, k in enumerate(picks):
        _show(axes[r, 0], _mask_rgb(true_masks[k]), "isolated masks" if r == 0 else None)
        _show(axes[r, 1], images[k], "blend" if r == 0 else None)
        _show(axes[r, 2], _mask_rgb(pred_masks[k]), f"{method_label(method)}" if r == 0 else None)
        _iou_label(axes[r, 2], _ious(galaxies, method, catalog["blend_id"].iloc[k]))
        axes[r, 0].set_ylabel(f"d = {catalog['distance_px'].iloc[k]:.1f} px", fontsize=8)
    fig.tight_layout()
    return fig


def figure_deblend(blends: Blends, deblended: np.ndarray, galaxies: pd.DataFrame, method: str,
                   noise_sigma: float, *, examples: int = 4) -> plt.Figure:
    """Per example blend (rows, spread over the centre distance): the blend, then for the
    central galaxy and the companion the isolated stamp, ``method``'s deblended image (same
    stretch) and their residual in units of the blend's noise σ (±5 σ), with the galaxy's
    Δmag (Kron on the deblended image against the isolated photometry) and SSIM.

    ``blends`` holds the central images (:meth:`Blends.isolated`); ``deblended`` is (N, 2, S, S),
    rows those of ``blends``.
    """
    catalog = blends.catalog
    picks = example_blends(catalog, examples)
    fig, axes = plt.subplots(examples, 7, figsize=(14, 2.1 * examples), squeeze=False)
    titles = ["blend", "isolated central", f"{method_label(method)}", "residual / σ", "isolated companion",
              f"{method_label(method)}", "residual / σ"]
    for r, k in enumerate(picks):
        _show(axes[r, 0], np.asarray(blends.images[k]), titles[0] if r == 0 else None)
        isolated = blends.isolated(slice(k, k + 1))[0]
        axes[r, 0].set_ylabel(f"d = {catalog['distance_px'].iloc[k]:.1f} px", fontsize=8)
        rows = galaxies[(galaxies["method"] == method) & (galaxies["blend_id"] == catalog["blend_id"].iloc[k])]
        rows = rows.set_index("role")
        for j, role in enumerate(("cen", "comp")):
            true, pred = isolated[j], np.asarray(deblended[k, j])
            norm = _stretch(true)
            for c, (image, title) in enumerate(((true, titles[1 + 3 * j]), (pred, titles[2 + 3 * j])), start=1 + 3 * j):
                ax = axes[r, c]
                ax.imshow(image, origin="lower", cmap="gray_r", norm=norm, interpolation="nearest")
                ax.set_xticks([]), ax.set_yticks([])
                if r == 0:
                    ax.set_title(title, fontsize=9)
            ax = axes[r, 3 + 3 * j]
            ax.imshow((pred - true) / noise_sigma, origin="lower", cmap="RdBu_r", vmin=-5, vmax=5,
                      interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[3 + 3 * j], fontsize=9)
            if role in rows.index:
                g = rows.loc[role]
                axes[r, 2 + 3 * j].text(0.97, 0.03, f"Δmag {g['dmag']:+.2f}\nSSIM {g['img_ssim']:.2f}",
                                        transform=axes[r, 2 + 3 * j].transAxes, ha="right", va="bottom", fontsize=7,
                                        bbox={"facecolor": "white", "alpha": 0.7, "lw": 0})
    fig.tight_layout()
    return fig


def _ious(galaxies: pd.DataFrame, method: str, blend_id) -> tuple[float, float]:
    rows = galaxies[(galaxies["method"] == method) & (galaxies["blend_id"] == blend_id)].set_index("role")
    return float(rows.loc["cen", "iou"]), float(rows.loc["comp", "iou"])


def figure11(true_masks, predictions: dict[str, np.ndarray], catalog: pd.DataFrame, galaxies: pd.DataFrame, *,
             examples: int = 4) -> plt.Figure:
    """The blends of figure 10: isolated masks, then each mask method's, with the IoU of the
    central / companion galaxy in the corner."""
    picks = example_blends(catalog, examples)
    ncol = 1 + len(predictions)
    fig, axes = plt.subplots(examples, ncol, figsize=(2.2 * ncol, 2.2 * examples), squeeze=False)
    for r, k in enumerate(picks):
        _show(axes[r, 0], _mask_rgb(true_masks[k]), "isolated masks" if r == 0 else None)
        for c, (method, masks) in enumerate(predictions.items(), start=1):
            _show(axes[r, c], _mask_rgb(masks[k]), method_label(method) if r == 0 else None)
            _iou_label(axes[r, c], _ious(galaxies, method, catalog["blend_id"].iloc[k]))
    fig.tight_layout()
    return fig


def figure12(galaxies: pd.DataFrame, methods: list[str], colours: dict) -> plt.Figure:
    """IoU of every galaxy per mask method (left) and mean IoU per morphology pair (right)."""
    g = galaxies[galaxies["method"].isin(methods) & galaxies["iou"].notna()]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [1, 1.3]})
    for method in methods:
        v = g.loc[g["method"] == method, "iou"]
        left.hist(v, bins=40, range=(0, 1), histtype="stepfilled", alpha=0.45, color=colours[method],
                  label=f"{method_label(method)} (mean {v.mean():.2f})")
    left.set_xlabel("IoU"), left.set_ylabel("galaxies"), left.legend(fontsize=8, frameon=False, loc="upper left")
    pairs = sorted(g["pair"].unique())
    means = g.groupby(["pair", "method"])["iou"].mean()
    height = 0.8 / max(len(methods), 1)
    for j, method in enumerate(methods):
        vals = [means.get((p, method), np.nan) for p in pairs]
        right.barh(np.arange(len(pairs)) + j * height, vals, height=height, color=colours[method],
                   label=method_label(method))
    right.set_yticks(np.arange(len(pairs)) + 0.4 - height / 2)
    right.set_yticklabels([p.replace("_", "+") for p in pairs], fontsize=8)
    right.set_xlim(0, 1), right.set_xlabel("mean IoU")
    right.legend(fontsize=8, frameon=False, loc="lower right")
    fig.tight_layout()
    return fig


def _structure_panels(axes, mock: pd.DataFrame, catalog: pd.DataFrame, ks: pd.DataFrame, bins: pd.DataFrame) -> None:
    """Size-magnitude relation (the medians and 16-84 % of ``bins``, population.compare_structure's
    table), Sérsic n and axis ratio q of the mock's galaxies against the catalogue's, over the
    magnitudes the KS distances compare."""
    size, sersic, axis = axes
    k = ks.set_index("quantity")["ks"]
    centres = 0.5 * (bins["mag_lo"] + bins["mag_hi"])
    # n bins of three steps of the rendered indices' 0.02-dex grid each (population.render_sersic_n)
    edges = {"n": 10 ** ((np.arange(-36, 48, 3) + 0.5) * 0.02), "q": np.linspace(0, 1, 26)}
    for table, name, label, colour in ((catalog, "catalogue", "CANDELS COSMOS (van der Wel+12)", "0.35"),
                                       (mock, "mock", "this mock", "#c0392b")):
        enough = bins[f"n_{name}"] >= 10
        size.fill_between(centres[enough], bins.loc[enough, f"re16_{name}"], bins.loc[enough, f"re84_{name}"],
                          color=colour, alpha=0.2, lw=0)
        size.plot(centres[enough], bins.loc[enough, f"median_re_{name}"], color=colour, lw=1.8,
                  label=f"{label} ({len(table)})")
        sersic.hist(table["n"], bins=edges["n"], density=True, histtype="step", color=colour, lw=1.5, label=label)
        axis.hist(table["q"], bins=edges["q"], density=True, histtype="step", color=colour, lw=1.5, label=label)
    size.set_yscale("log"), size.set_xlabel("F160W magnitude"), size.set_ylabel("half-light radius (arcsec)")
    size.set_title(f"size-magnitude, median and 16-84 % (KS log Re {k.get('log_re', np.nan):.3f})", fontsize=9)
    size.legend(fontsize=7, frameon=False)
    sersic.set_xscale("log"), sersic.set_xlabel("Sérsic index n"), sersic.set_ylabel("density")
    sersic.set_xticks([0.3, 0.5, 1, 2, 4, 8], ["0.3", "0.5", "1", "2", "4", "8"])
    sersic.minorticks_off()
    sersic.set_title(f"Sérsic index (KS {k.get('n', np.nan):.3f})", fontsize=9)
    axis.set_xlabel("axis ratio q"), axis.set_ylabel("density")
    axis.set_title(f"axis ratio (KS {k.get('q', np.nan):.3f})", fontsize=9)
    axis.legend(fontsize=7, frameon=False)


def figure_sample(table1: pd.DataFrame, blends: pd.DataFrame, outcomes: pd.DataFrame,
                  structure: dict | None = None) -> plt.Figure:
    """This run's sample beside the paper's published one: the morphology mix before and after
    inspection (Table 1), the centre distance of the test blends (the paper catalogue's
    percentiles), and sep's detection outcomes on them. For a mock survey (``structure``: its
    galaxies ``mock``, the catalogue's ``catalog``, the KS table ``ks`` and the per-magnitude table
    ``bins`` of population.compare_structure), a second row sets its
    galaxies' size-magnitude relation, Sérsic indices and axis ratios against the measured ones."""
    rows = 2 if structure is not None else 1
    fig, axes = plt.subplots(rows, 3, figsize=(14, 4.2 * rows), gridspec_kw={"width_ratios": [1.2, 1, 1]},
                             squeeze=False)
    mix, dist, det = axes[0]
    if structure is not None:
        _structure_panels(axes[1], **structure)
    classes = [c for c in table1["class"] if c != "TOTAL"]
    rows = table1.set_index("class").loc[classes]
    x = np.arange(len(classes))
    for k, (col, label, hatch) in enumerate((("before_inspection", "this run, before", None),
                                             ("after_inspection", "this run, after", None),
                                             ("paper_before", "paper, before", "//"),
                                             ("paper_after", "paper, after", "//"))):
        frac = rows[col] / rows[col].sum()
        colour = "#3b75af" if "before" in col else "#c0392b"
        mix.bar(x + (k - 1.5) * 0.2, frac, 0.2, color=colour, alpha=0.45 if hatch else 0.9, hatch=hatch,
                edgecolor=colour, label=label)
    mix.set_xticks(x, [c.replace("_", "+") for c in classes])
    mix.set_ylabel("fraction of galaxies"), mix.set_title("morphology mix (Table 1), inspection")
    mix.legend(fontsize=7, frameon=False)

    d = blends["distance_px"].to_numpy(float)
    dist.hist(d, bins=np.arange(0, max(64.0, d.max() + 2) if d.size else 64.0, 2), color="#3b75af", alpha=0.6,
              density=True, label=f"this run ({d.size} test blends)")
    ours = np.percentile(d, list(PAPER_DISTANCE_PX)) if d.size else [np.nan] * len(PAPER_DISTANCE_PX)
    for i, ((q, theirs), mine) in enumerate(zip(PAPER_DISTANCE_PX.items(), ours, strict=True)):
        dist.axvline(theirs, color="k", ls="--", lw=0.8)
        dist.text(theirs, dist.get_ylim()[1] * (0.95 - 0.12 * i), f" p{q}: {theirs:g} / {mine:.1f}", fontsize=7)
    dist.set_xlabel("centre distance (pixels)"), dist.set_ylabel("density")
    dist.set_title("test blends; dashed: paper's percentiles (paper / this run)", fontsize=9)
    dist.legend(fontsize=7, frameon=False, loc="center right")

    f = outcomes.set_index("outcome")["fraction"]
    mine = {"two": f.get("two", 0.0), "one": f.get("one_central", 0.0) + f.get("one_companion", 0.0),
            "none": f.get("none", 0.0), "more": f.get("more", 0.0)}
    keys = list(PAPER_SEP_OUTCOMES)
    x = np.arange(len(keys))
    det.bar(x - 0.2, [mine[k] for k in keys], 0.4, color="#3b75af", label="this run")
    det.bar(x + 0.2, [PAPER_SEP_OUTCOMES[k] for k in keys], 0.4, color="#3b75af", alpha=0.4, hatch="//",
            label="paper (published catalogue)")
    for i, k in enumerate(keys):
        paper = PAPER_SEP_OUTCOMES[k]
        det.text(i, max(mine[k], paper) + 0.02, f"{100 * mine[k]:.1f} / {100 * paper:.1f}", ha="center", fontsize=7)
    det.set_xticks(x, [f"{k} found" for k in keys]), det.set_ylim(0, 1.05)
    det.set_ylabel("fraction of test blends"), det.set_title("sep's detections (this run / paper, %)", fontsize=9)
    det.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def figure_calibration(galaxies: pd.DataFrame, metrics: pd.DataFrame, methods: list[str], colours: dict) -> plt.Figure:
    """Flux uncertainties of the networks with a σ head, against the isolated fluxes: the PIT
    histogram (flat when calibrated) and the coverage of every central interval against its
    nominal level, per galaxy from ``galaxies``; and the evaluation's 68 % coverage per bin of
    centre distance and of mag_self − mag_other, both galaxies (``metrics``), with its 95 %
    interval over the test galaxies."""
    fig, (pit, rel, by_d, by_m) = plt.subplots(1, 4, figsize=(17, 4.0))
    levels = np.linspace(0.02, 0.99, 50)
    k = np.array([interval_halfwidth(p) for p in levels])
    binned = metrics[(metrics["role"] == "both") & (metrics["reference"] == "isolated")]
    for j, method in enumerate(methods):
        rows = galaxies[galaxies["method"] == method]
        z = log_flux_z(rows["flux"], rows["flux_err"], rows["flux_iso"])
        z = z[np.isfinite(z)]
        colour = colours[method]
        pit.hist(laplace_pit(z), bins=20, range=(0, 1), density=True, histtype="step", lw=1.5,
                 color=colour, label=f"{method_label(method)} ({z.size} galaxies)")
        rel.plot(levels, [np.mean(np.abs(z) <= q) for q in k], color=colour, lw=1.5, label=method_label(method))
        width = 0.8 / max(len(methods), 1)
        for ax, group_by in ((by_d, "distance_px"), (by_m, "mag_diff")):
            cells = binned[(binned["method"] == method) & (binned["group_by"] == group_by)]
            x = np.arange(len(cells)) + (j - (len(methods) - 1) / 2) * width
            ax.bar(x, cells["coverage68"], width=width, color=colour, label=method_label(method))
            if "coverage68_lo" in cells:  # the 95 % interval over the test galaxies
                ax.errorbar(x, cells["coverage68"], yerr=[cells["coverage68"] - cells["coverage68_lo"],
                                                          cells["coverage68_hi"] - cells["coverage68"]],
                            fmt="none", ecolor="k", elinewidth=0.8, capsize=2)
            ax.set_xticks(np.arange(len(cells)), cells["group"], fontsize=7, rotation=25)
    pit.axhline(1, color="k", ls="--", lw=0.8)
    pit.set_xlabel("PIT (Laplace CDF of z)"), pit.set_ylabel("density")
    pit.legend(fontsize=7, frameon=False, loc="lower center")
    pit.set_title("PIT (flat = calibrated)", fontsize=9)
    rel.plot([0, 1], [0, 1], "k--", lw=0.8)
    rel.set_xlabel("nominal coverage"), rel.set_ylabel("fraction inside the interval")
    rel.set_title("coverage of the central intervals", fontsize=9), rel.legend(fontsize=7, frameon=False)
    for ax, label in ((by_d, "centre distance (pixels)"), (by_m, "mag_self − mag_other")):
        ax.axhline(0.68, color="k", ls="--", lw=0.8)
        ax.set_ylim(0, 1), ax.set_xlabel(label), ax.set_ylabel("68 % interval coverage")
    by_d.set_title("per distance bin (dashed: nominal)", fontsize=9)
    by_m.set_title("per magnitude-difference bin", fontsize=9)
    fig.tight_layout()
    return fig


def render(name: str, inputs, params: dict) -> plt.Figure:
    """Read ``inputs`` (the figure rule's named inputs) and draw figure ``name``.

    ``params``: the ``figures`` config section plus ``methods`` (flux methods in order),
    ``mask_methods``, ``archs`` (name -> arch), ``mag_diff_bins`` and ``outlier_dmag``.
    """
    colours = method_colours(params["archs"])
    if name == "figure1":
        catalog = io.read_csv(inputs.catalog, required=["gid", "cls", "mag"])
        galaxies = io.read_csv(inputs.galaxies, required=["gid"])
        accepted = catalog[catalog["gid"].isin(galaxies["gid"])]
        return figure1(io.load_array(inputs.originals), io.load_array(inputs.images), io.load_array(inputs.masks),
                       accepted)
    if name == "figure2":
        return figure2(io.load_array(inputs.images), io.read_csv(inputs.catalog, required=["distance_px", "mag_diff"]),
                       distance_edges=params["figure2_distance_px"], mag_diff_edges=params["figure2_mag_diff"])
    if name == "sample":
        structure = None
        if "truth" in inputs.keys():  # a mock survey: its galaxies against the structural catalogue
            from blendphot.population import compared, read_mock_galaxies, read_structure_catalog

            lo = params["structure_mag_min"]
            structure = {"mock": compared(read_mock_galaxies(inputs.truth), lo),
                         "catalog": compared(read_structure_catalog(inputs.get("structure_catalog")), lo),
                         "ks": io.read_csv(inputs.structure, required=["quantity", "ks"]),
                         "bins": io.read_csv(inputs.structure_bins, required=["mag_lo", "mag_hi", "n_mock"])}
        return figure_sample(io.read_csv(inputs.table1, required=["class", "before_inspection", "after_inspection",
                                                                  "paper_before", "paper_after"]),
                             io.read_csv(inputs.catalog, required=["distance_px"]),
                             io.read_csv(inputs.sep_outcomes, required=["outcome", "fraction"]), structure)
    galaxies = io.read_csv(inputs.galaxies)
    methods = params.get("methods")
    if name in ("figure5", "figure6"):
        return {"figure5": figure5, "figure6": figure6}[name](galaxies, methods, colours,
                                                              outlier_dmag=params["outlier_dmag"])
    if name == "figure7":
        return figure7(galaxies, methods, mag_diff_bins=params["mag_diff_bins"])
    if name == "figure8":
        return figure8(galaxies, methods, colours, mag_diff_bins=params["mag_diff_bins"])
    if name == "figure9":
        return figure9(galaxies, methods, mag_diff_bins=params["mag_diff_bins"])
    if name == "figure12":
        return figure12(galaxies, params["mask_methods"] + ["sep"], colours)
    if name == "calibration":
        return figure_calibration(galaxies, io.read_csv(inputs.metrics, required=["group_by", "coverage68"]),
                                  params["sigma_methods"], colours)
    if name == "deblend":  # the first image network
        method, path = params["image_methods"][0], inputs.predictions[0]
        blends = Blends.load(Path(inputs.images).parent, masks=False, in_memory=False, central=True)
        io.require_columns(blends.catalog, ["distance_px"], inputs.catalog)
        pred = Prediction.load(path, masks=False, images=True)
        info = json.loads((Path(path) / "model.json").read_text())
        return figure_deblend(blends, pred.images, galaxies, method, info["noise_sigma"], examples=params["examples"])
    catalog = io.read_csv(inputs.catalog, required=["blend_id", "distance_px"])
    masks = {m: Prediction.load(path, masks=True).masks
             for m, path in zip(params["mask_methods"], inputs.predictions, strict=True)}
    if name == "figure10":  # a network with masks and fluxes when there is one
        shown = next((m for m in masks if architecture(params["archs"][m]).fluxes), next(iter(masks)))
        return figure10(io.load_array(inputs.images), io.load_array(inputs.masks), masks[shown], catalog, galaxies,
                        shown, examples=params["examples"])
    if name == "figure11":
        return figure11(io.load_array(inputs.masks), masks, catalog, galaxies, examples=params["examples"])
    raise ValueError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")


def run_plot_figure(name: str, inputs, outputs: list[str], params: dict) -> None:
    """The plot_figure stage: draw figure ``name`` from the rule's inputs, save every format."""
    save(render(name, inputs, params), outputs, dpi=params["dpi"])


def save(fig: plt.Figure, paths, *, dpi: int = 150) -> None:
    """Write ``fig`` to every path (the format from the suffix), atomically, then close it."""
    for path in paths:
        with io.atomic_path(path, Path(path).suffix) as tmp:
            fig.savefig(tmp, dpi=dpi, format=Path(path).suffix[1:], bbox_inches="tight")
    plt.close(fig)
