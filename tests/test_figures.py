"""Figures: every one draws from small synthetic inputs, with the statistics it prints."""
import numpy as np
import pandas as pd
import pytest

from blendphot import evaluate as ev
from blendphot import figures as fg
from blendphot.blend import Blends
from blendphot.prediction import Prediction

ZP = 25.0
N, S = 24, 32


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    cat = pd.DataFrame({"blend_id": np.arange(N), "distance_px": rng.uniform(3, 40, N)})
    for role in ("cen", "comp"):
        cat[f"{role}_mag"] = rng.uniform(20, 23.5, N)
        cat[f"{role}_flux"] = 10 ** (-0.4 * (cat[f"{role}_mag"] - ZP))
        cat[f"{role}_re_px"] = rng.uniform(2, 8, N)
        cat[f"{role}_cls"] = rng.choice(["bulge", "disk", "bulge_disk", "irregular"], N)
    cat["mag_diff"] = cat["cen_mag"] - cat["comp_mag"]
    true = np.zeros((N, 2, S, S), np.uint8)
    true[:, 0, 10:20, 10:20] = 1
    true[:, 1, 12:18, 20:28] = 1
    noisy = lambda f: f * rng.lognormal(0, 0.1, N)
    preds = {
        "b2f": Prediction(pd.DataFrame({"blend_id": cat.blend_id, "cen_flux": noisy(cat.cen_flux),
                                        "comp_flux": noisy(cat.comp_flux)}), method="b2f"),
        "unet": Prediction(pd.DataFrame({"blend_id": cat.blend_id, "cen_flux": np.nan, "comp_flux": np.nan}),
                           masks=np.roll(true, 1, axis=-1), method="unet"),
        "sep": Prediction(pd.DataFrame({"blend_id": cat.blend_id, "cen_flux": noisy(cat.cen_flux),
                                        "comp_flux": noisy(cat.comp_flux),
                                        "outcome": np.where(np.arange(N) % 3, "two", "one_central")}),
                          masks=true, method="sep"),
    }
    galaxies = ev.galaxy_table(cat, preds, zeropoint=ZP, true_masks=true, sep=preds["sep"])
    images = rng.normal(0, 0.01, (N, S, S)).astype(np.float32) + true.sum(1)
    return cat, galaxies, images, true, preds


ARCHS = {"b2f": "blend2flux", "unet": "unet"}
BINS = [-2, -1, 0, 1, 2]


def panel_texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_figure5_prints_the_statistics_of_its_panels(data):
    _, galaxies, *_ = data
    fig = fg.figure5(galaxies, ["b2f", "sep"], fg.method_colours(ARCHS))
    rows = galaxies[(galaxies["method"] == "b2f") & (galaxies["role"] == "cen") & galaxies["sep_found"]]
    s = ev.photometry_stats(rows["flux"].to_numpy(), rows["flux_iso"].to_numpy(), zeropoint=ZP)
    assert f"$\\sigma$ = {s['sigma']:.3f}" in panel_texts(fig)[0]
    assert f"N = {s['n_measured']}" in panel_texts(fig)[0]
    assert len([ax for ax in fig.axes if ax.get_title()]) >= 4  # 2 x 2 panels (+ insets)


def _cen(galaxies, method):
    rows = galaxies[(galaxies["method"] == method) & (galaxies["role"] == "cen")]
    return rows[np.isfinite(rows["dmag"])]


def _binned(rows, stat):
    which = np.digitize(rows["mag_diff"], BINS) - 1
    return [stat(rows["dmag"][which == k]) if (which == k).sum() >= 3 else np.nan for k in range(len(BINS) - 1)]


def test_figure6_splits_the_galaxies_by_seps_outcome(data):
    _, galaxies, *_ = data
    fig = fg.figure6(galaxies, ["b2f", "sep"], fg.method_colours(ARCHS))
    for ax, two in ((fig.axes[0], True), (fig.axes[2], False)):
        rows = galaxies[(galaxies["method"] == "b2f") & ((galaxies["sep_outcome"] == "two") == two)
                        & galaxies["measured"]]
        assert f"N = {len(rows)}" in " ".join(t.get_text() for t in ax.texts)


def test_figure7_plots_every_sep_found_galaxy_against_its_magnitude_difference(data):
    _, galaxies, *_ = data
    fig = fg.figure7(galaxies, ["b2f", "sep"], mag_diff_bins=BINS)
    rows = _cen(galaxies, "b2f")
    rows = rows[rows["sep_found"]]
    points = fig.axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(np.sort(points[:, 1]), np.sort(rows["dmag"]))
    np.testing.assert_allclose(np.sort(points[:, 0]), np.sort(rows["mag_diff"]))


def test_figure8_lines_are_the_binned_bias_and_scatter(data):
    _, galaxies, *_ = data
    colours = fg.method_colours(ARCHS)
    fig = fg.figure8(galaxies, ["b2f", "sep"], colours, mag_diff_bins=BINS)
    bias, scatter = fig.axes[0].lines[0], fig.axes[1].lines[0]
    assert bias.get_color() == colours["b2f"]
    np.testing.assert_allclose(bias.get_ydata(), _binned(_cen(galaxies, "b2f"), np.mean))
    np.testing.assert_allclose(scatter.get_ydata(), _binned(_cen(galaxies, "b2f"), np.std))
    np.testing.assert_allclose(bias.get_xdata(), [-1.5, -0.5, 0.5, 1.5])


def test_figure9_has_one_median_line_per_class_and_for_all(data):
    _, galaxies, *_ = data
    fig = fg.figure9(galaxies, ["b2f"], mag_diff_bins=BINS)
    lines = {line.get_label(): line for line in fig.axes[0].lines if not line.get_label().startswith("_")}
    rows = _cen(galaxies, "b2f")
    assert set(lines) == {c.replace("_", "+") for c in rows["cls"].unique()} | {"all"}
    np.testing.assert_allclose(lines["all"].get_ydata(), _binned(rows, np.median))


def test_figure12_histograms_hold_every_galaxy_with_an_iou(data, tmp_path):
    _, galaxies, *_ = data
    fig = fg.figure12(galaxies, ["unet", "sep"], fg.method_colours(ARCHS))
    left = fig.axes[0]
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    for method, label in zip(["unet", "sep"], labels, strict=True):
        ious = galaxies.loc[(galaxies["method"] == method) & galaxies["iou"].notna(), "iou"]
        assert label.endswith(f"(mean {ious.mean():.2f})")
    assert "(mean 1.00)" in labels[1]  # sep's masks are the truth here
    paths = [tmp_path / "figure12.png", tmp_path / "figure12.pdf"]
    fg.save(fig, paths, dpi=60)
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:5] == b"%PDF-"


def test_image_figures_draw(data, tmp_path):
    cat, galaxies, images, true, preds = data
    clean_cat = pd.DataFrame({"cls": ["bulge", "disk", "bulge_disk", "irregular"], "mag": [21.0, 22, 23, 20]})
    figs = [fg.figure1(images[:4], images[:4], true[:4, 0], clean_cat),
            fg.figure2(images, cat, distance_edges=[2, 8, 13, 18, 60], mag_diff_edges=[0, 0.35, 0.76, 1.25, 2]),
            fg.figure10(images, true, preds["unet"].masks, cat, galaxies, "unet", examples=3),
            fg.figure11(true, {"unet": preds["unet"].masks, "sep": true}, cat, galaxies, examples=3)]
    assert len(figs[0].axes) == 12 and len(figs[1].axes) == 16
    # the IoU printed on figure 11 is the evaluation's: sep's masks are the truth here
    assert "IoU 1.00 / 1.00" in panel_texts(figs[3])
    for k, fig in enumerate(figs):
        fg.save(fig, [tmp_path / f"f{k}.png"], dpi=50)


def test_examples_spread_over_distance(data):
    cat = data[0]
    picks = fg.example_blends(cat, 4)
    assert len(set(picks)) == 4 and np.all(np.diff(cat["distance_px"].to_numpy()[picks]) > 0)


def test_each_method_keeps_its_colour():
    colours = fg.method_colours({"a": "blend2flux", "b": "blend2flux", "u": "unet", "m": "blend2mask2flux"})
    assert colours["sep"] == "#1f77b4" and colours["a"] == "#000000" and colours["m"] == "#d62728"
    assert len(set(colours.values())) == len(colours)


def test_sample_figure_sets_the_run_beside_the_papers_published_sample(data):
    cat, _, _, _, preds = data
    counts = pd.DataFrame({"class": ["bulge", "disk", "bulge_disk", "irregular", "TOTAL"],
                           "before_inspection": [10, 20, 30, 40, 100], "after_inspection": [10, 20, 20, 10, 60]})
    table1 = ev.table1(counts)
    outcomes = ev.sep_outcomes(preds["sep"])
    fig = fg.figure_sample(table1, cat, outcomes)
    mix, dist, det = fig.axes
    heights = [b.get_height() for b in mix.patches]
    np.testing.assert_allclose(heights[:4], [0.1, 0.2, 0.3, 0.4])  # this run, before inspection
    np.testing.assert_allclose(heights[8:12], np.array([386, 473, 884, 875]) / 2618)  # the paper's Table 1
    p50 = np.percentile(cat["distance_px"], 50)
    assert any(t.get_text() == f" p50: 13.3 / {p50:.1f}" for t in dist.texts)
    two = (preds["sep"].catalog["outcome"] == "two").mean()
    labels = [t.get_text() for t in det.texts]  # two, one, none, more found
    assert labels[0] == f"{100 * two:.1f} / 74.3" and labels[2] == "0.0 / 6.2"

    # a mock survey: a second row, its galaxies against the structural catalogue
    from blendphot.population import compare_structure, draw_structure, read_structure_catalog

    catalog = read_structure_catalog()
    catalog = catalog[(catalog["mag"] >= 19) & (catalog["mag"] < 23.5)]
    mock = draw_structure(np.random.default_rng(0), catalog, n=800, mag_range=(19, 23.5))
    ks, bins = compare_structure(mock, catalog, mag_min=19)
    fig = fg.figure_sample(table1, cat, outcomes, {"mock": mock, "catalog": catalog, "ks": ks, "bins": bins})
    size, sersic, axis = fig.axes[3:]
    assert f"KS log Re {ks.loc[0, 'ks']:.3f}" in size.get_title() and "Sérsic index (KS" in sersic.get_title()
    assert [line.get_label() for line in size.get_lines()] == [f"CANDELS COSMOS (van der Wel+12) ({len(catalog)})",
                                                               "this mock (800)"]
    # the medians drawn are the table's, for the bins with ten galaxies or more
    mock_line = size.get_lines()[1]
    enough = bins["n_mock"] >= 10
    np.testing.assert_allclose(mock_line.get_ydata(), bins.loc[enough, "median_re_mock"])
    assert axis.get_xlabel() == "axis ratio q" and len(axis.patches) == 2  # one step histogram each


def test_deblend_figure_shows_each_galaxy_its_image_and_the_residual_with_its_scores(data, tmp_path):
    cat, _, images, true, _ = data
    isolated = np.stack([images * true[:, 0], images * (1 - true[:, 0])], axis=1)  # adds up to the blend
    deblended = isolated + np.random.default_rng(2).normal(0, 0.01, isolated.shape)
    pred = Prediction(pd.DataFrame({"blend_id": cat.blend_id, "cen_flux": cat.cen_flux, "comp_flux": cat.comp_flux}),
                      masks=true, images=deblended.astype(np.float32), method="b2i")
    galaxies = ev.galaxy_table(cat, {"b2i": pred}, zeropoint=ZP, true_masks=true,
                               images={"b2i": {"chi2": np.ones((N, 2)), "residual": np.zeros((N, 2)),
                                               "ssim": np.full((N, 2), 0.97)}})
    blends = Blends(images, None, cat, central=isolated[:, 0].astype(np.float32))
    fig = fg.figure_deblend(blends, deblended, galaxies, "b2i", noise_sigma=0.01, examples=3)
    assert len(fig.axes) == 21
    texts = panel_texts(fig)
    assert len(texts) == 6 and all("Δmag +0.00" in t and "SSIM 0.97" in t for t in texts)
    fg.save(fig, [tmp_path / "deblend.png"], dpi=50)
