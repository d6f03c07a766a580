"""Evaluation: metric definitions on hand-checkable inputs, groupings, tables and the summary."""
import numpy as np
import pandas as pd
import pytest

from blendphot import evaluate as ev
from blendphot.errors import InputError
from blendphot.prediction import Prediction

ZP = 25.0


def test_twice_too_bright_is_minus_0753_and_an_outlier():
    assert ev.delta_mag([2.0], [1.0])[0] == pytest.approx(-0.7526, abs=1e-4)
    s = ev.photometry_stats(np.array([2.0]), np.array([1.0]), zeropoint=ZP)
    assert s["outlier_fraction"] == 1.0 and s["mape_flux"] == pytest.approx(100.0)
    # 1.9x is not an outlier: 2.5 log10(1.9) = 0.697 < 0.75
    assert ev.photometry_stats(np.array([1.9]), np.array([1.0]), zeropoint=ZP)["outlier_fraction"] == 0.0


def test_statistics_by_hand():
    flux = np.array([2.0, 1.0, 0.5, np.nan])  # the last galaxy was not measured
    ref = np.ones(4)
    s = ev.photometry_stats(flux, ref, zeropoint=ZP)
    d = np.array([-2.5 * np.log10(2), 0.0, 2.5 * np.log10(2)])
    assert s["n"] == 4 and s["n_measured"] == 3 and s["completeness"] == 0.75
    assert s["bias"] == pytest.approx(0.0, abs=1e-12) and s["median"] == 0.0
    assert s["sigma"] == pytest.approx(d.std())  # ddof = 0, the paper's np.std
    assert s["outlier_fraction"] == pytest.approx(2 / 3)
    assert s["mape_flux"] == pytest.approx(100 * (1 + 0 + 0.5) / 3)
    assert s["mape_mag"] == pytest.approx(100 * np.mean(np.abs(d) / ZP))  # reference magnitude is ZP


def test_nonpositive_flux_is_an_outlier_without_a_magnitude():
    s = ev.photometry_stats(np.array([-1.0, 1.0]), np.ones(2), zeropoint=ZP)
    assert s["n_measured"] == 2 and s["outlier_fraction"] == 0.5
    assert s["bias"] == 0.0 and s["sigma"] == 0.0 and s["mape_flux"] == pytest.approx(100.0)


def test_nothing_measured():
    s = ev.photometry_stats(np.full(3, np.nan), np.ones(3), zeropoint=ZP)
    assert s["completeness"] == 0 and np.isnan(s["sigma"]) and np.isnan(s["outlier_fraction"])


def test_iou_by_hand():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[0, :4] = True      # 4 pixels
    b[0, 2:] = True      # 2 pixels inside a...
    b[1, 2:] = True      # ...and 2 outside
    assert ev.iou(a, b) == pytest.approx(2 / 6)
    assert ev.iou(a, a) == 1.0 and ev.iou(a, ~a) == 0.0
    assert np.isnan(ev.iou(np.zeros((4, 4)), np.zeros((4, 4))))
    stack = np.stack([np.stack([a, a]), np.stack([b, ~a])])
    np.testing.assert_allclose(ev.mask_iou(stack, np.stack([np.stack([a, a])] * 2), chunk=1),
                               [[1, 1], [2 / 6, 0]])


@pytest.fixture
def blends():
    rng = np.random.default_rng(0)
    n = 40
    cat = pd.DataFrame({"blend_id": np.arange(n), "distance_px": rng.uniform(3, 40, n)})
    for role in ("cen", "comp"):
        cat[f"{role}_mag"] = rng.uniform(20, 23.5, n)
        cat[f"{role}_flux"] = 10 ** (-0.4 * (cat[f"{role}_mag"] - ZP))
        cat[f"{role}_flux_true"] = cat[f"{role}_flux"] * 1.1
        cat[f"{role}_re_px"] = rng.uniform(2, 8, n)
        cat[f"{role}_cls"] = rng.choice(["bulge", "disk", "bulge_disk", "irregular"], n)
    return cat


def predictions(cat, masks=None):
    exact = pd.DataFrame({"blend_id": cat["blend_id"], "cen_flux": cat["cen_flux"], "comp_flux": 2 * cat["comp_flux"]})
    sep = exact.assign(outcome=np.where(np.arange(len(cat)) % 4 == 0, "one_central", "two"))
    sep.loc[sep["outcome"] == "one_central", "comp_flux"] = np.nan
    unet = exact.assign(cen_flux=np.nan, comp_flux=np.nan)
    return {"net": Prediction(exact, method="net"), "unet": Prediction(unet, masks=masks, method="unet"),
            "sep": Prediction(sep, method="sep")}


def test_galaxy_table_and_groupings(blends):
    size = 8
    true = np.zeros((len(blends), 2, size, size), np.uint8)
    true[:, :, 2:6, 2:6] = 1
    pred_masks = true.copy()
    pred_masks[:, 1, 2:4, 2:6] = 0  # companion: half of its mask
    preds = predictions(blends, pred_masks)
    g = ev.galaxy_table(blends, preds, zeropoint=ZP, true_masks=true, sep=preds["sep"])
    assert len(g) == 3 * 2 * len(blends)
    net = g[g["method"] == "net"].set_index(["blend_id", "role"])
    assert (net.xs("cen", level="role")["dmag"] == 0).all()
    np.testing.assert_allclose(net.xs("comp", level="role")["dmag"], -0.7526, atol=1e-4)
    np.testing.assert_allclose(net.xs("cen", level="role")["mag_diff"], blends["cen_mag"] - blends["comp_mag"])
    np.testing.assert_allclose(net.xs("comp", level="role")["distance_own_re"],
                               blends["distance_px"] / blends["comp_re_px"])
    unet = g[g["method"] == "unet"]
    assert (unet.loc[unet["role"] == "cen", "iou"] == 1).all()
    assert (unet.loc[unet["role"] == "comp", "iou"] == 0.5).all()
    # sep's outcome labels every method's rows; sep_found is per galaxy
    assert (g.loc[(g["method"] == "net") & (g["role"] == "comp"), "sep_found"].to_numpy()
            == (np.arange(len(blends)) % 4 != 0)).all()

    m = ev.summarise(g, zeropoint=ZP)
    assert "unet" not in set(m["method"])  # no fluxes: no photometry rows
    assert set(m["group_by"]) == set(ev.GROUPINGS)
    row = m[(m["method"] == "net") & (m["role"] == "comp") & (m["group_by"] == "all") & (m["reference"] == "isolated")]
    assert row["outlier_fraction"].item() == 1.0 and row["mape_flux"].item() == pytest.approx(100)
    sep_comp = m[(m["method"] == "sep") & (m["role"] == "comp") & (m["group_by"] == "all")
                 & (m["reference"] == "isolated")]
    assert sep_comp["completeness"].item() == pytest.approx(0.75)
    # against the truth (fluxes 10 % higher) the isolated photometry itself is a method
    iso = m[(m["method"] == "isolated") & (m["reference"] == "true") & (m["group_by"] == "all") & (m["role"] == "both")]
    assert iso["bias"].item() == pytest.approx(2.5 * np.log10(1.1))
    by_cls = m[(m["method"] == "net") & (m["group_by"] == "cls") & (m["role"] == "cen")
               & (m["reference"] == "isolated")]
    assert by_cls["n"].sum() == len(blends)
    by_outcome = m[(m["method"] == "sep") & (m["group_by"] == "sep_outcome") & (m["role"] == "both")
                   & (m["reference"] == "isolated")].set_index("group")
    assert by_outcome.loc["one_central", "n"] == 2 * 10

    ious = ev.iou_by_pair(g)
    assert ious.loc[ious["pair"] == "all", "mean_iou"].item() == pytest.approx(0.75)
    assert ious.loc[ious["pair"] != "all", "n"].sum() == 2 * len(blends)


def test_predictions_must_follow_the_catalogue(blends):
    preds = predictions(blends)
    shuffled = Prediction(preds["net"].catalog.iloc[::-1].reset_index(drop=True), method="net")
    with pytest.raises(InputError, match="predictions of net: blend_id does not match"):
        ev.galaxy_table(blends, {"net": shuffled}, zeropoint=ZP)


def test_tables_and_summary(blends):
    preds = predictions(blends)
    g = ev.galaxy_table(blends, preds, zeropoint=ZP, sep=preds["sep"])
    m = ev.summarise(g, zeropoint=ZP)
    t2 = ev.table2(m, {"net": {"arch": "blend2flux", "filters": 64, "n_parameters": 1_607_000},
                       "unet": {"arch": "unet", "filters": 256, "n_parameters": 7_760_000}})
    assert list(t2["model"]) == ["net"] and t2.loc[0, "parameters_M"] == pytest.approx(1.607)
    assert t2.loc[0, "flux_error_central_pct"] == 0 and t2.loc[0, "flux_error_both_pct"] == pytest.approx(50)
    t1 = ev.table1(pd.DataFrame({"class": ["bulge", "TOTAL"], "before_inspection": [10, 10],
                                 "after_inspection": [8, 8]}))
    assert list(t1["paper_after"]) == [352, 1919]
    t3 = ev.table3({"cold": {"thresh": 5.0, "minarea": 10, "deblend_cont": 0.01, "deblend_nthresh": 64},
                    "hot": {"thresh": 4.0, "minarea": 6, "deblend_cont": 0.0001, "deblend_nthresh": 64}})
    assert t3["hot"].tolist() == [4.0, 6, 0.0001, 64]
    tex = ev.latex_table(t2, caption="Flux networks", label="tab:t2")
    assert r"parameters\_M" in tex and r"\toprule" in tex and tex.count(r"\\") == 2
    outcomes = ev.sep_outcomes(preds["sep"])
    assert outcomes.set_index("outcome").loc["two", "fraction"] == 0.75
    md = ev.summary_markdown(m, outcomes, ev.iou_by_pair(g), deep_methods=["net"])
    assert "| net | both |" in md and "sep detection outcomes" in md
    assert "- net: sep's σ / net's" in md
    # a network less accurate than sep is flagged, never a plain ratio
    bad = preds["net"].catalog.assign(cen_flux=4 * blends["cen_flux"], comp_flux=0.25 * blends["comp_flux"])
    good = preds["net"].catalog.assign(comp_flux=blends["comp_flux"] * 1.01)
    more = {"bad": Prediction(bad, method="bad"), "good": Prediction(good, method="good")}
    g = ev.galaxy_table(blends, {**preds, **more}, zeropoint=ZP, sep=preds["sep"])
    md = ev.summary_markdown(ev.summarise(g, zeropoint=ZP), outcomes, ev.iou_by_pair(g), deep_methods=["good", "bad"])
    assert "**Warning: bad is less accurate than sep on these blends** (in σ and flux MAPE)" in md
    assert "Warning: good" not in md
    # a network without outliers is unboundedly better: words, never a ratio over a tiny number
    assert "outlier-fraction ratio unbounded (no outliers; sep " in md.split("- good:")[1].splitlines()[0]


@pytest.mark.parametrize(("sep", "method", "text"), [
    (0.10, 0.05, "ratio 2.00"),
    (0.25, 0.0, "ratio unbounded (no outliers; sep 25.0 %)"),
    (0.0, 0.0, "ratio undefined (no outliers in either)"),
    (float("nan"), 0.1, "ratio undefined (nothing measured)"),
])
def test_outlier_ratio_reads_right(sep, method, text):
    assert ev.outlier_ratio(sep, method) == text


def test_a_transfer_summary_puts_each_method_beside_its_in_domain_figures(blends):
    preds = predictions(blends)
    g = ev.galaxy_table(blends, preds, zeropoint=ZP, sep=preds["sep"])
    here = ev.headline(ev.summarise(g, zeropoint=ZP))
    in_domain = here.assign(sigma=here["sigma"] / 2, mape_flux=here["mape_flux"] / 2)
    in_domain = in_domain[in_domain["method"] != "net"]  # a method tested here only: left out
    gap = ev.domain_gap(here, in_domain)
    assert list(gap["method"]) == ["sep"]
    sep = here[(here["method"] == "sep") & (here["role"] == "both")].iloc[0]
    assert gap.loc[0, "sigma_here"] == sep["sigma"] and gap.loc[0, "sigma_in_domain"] == sep["sigma"] / 2
    assert gap.loc[0, "mape_flux_in_domain"] == sep["mape_flux"] / 2
    md = ev.summary_markdown(ev.summarise(g, zeropoint=ZP), None, ev.iou_by_pair(g), deep_methods=["net"],
                             title="blendphot transfer: set x", in_domain=in_domain)
    assert md.startswith("# blendphot transfer: set x\n") and "trained for (both galaxies)" in md
    with pytest.raises(InputError, match="in-domain headline table.*mape_flux"):
        ev.domain_gap(here, in_domain.drop(columns="mape_flux"))
    # a set at another depth or in other units is said to be
    from blendphot.photometry import border_noise

    noise = border_noise(np.random.default_rng(0).normal(0.0, 0.3, (50, 32, 32)))
    assert noise == pytest.approx(0.3, rel=0.03)
    lines = ev.noise_note(0.02, {"a": 0.019, "b": 0.005})
    assert "a was trained on blends of noise 0.019 e-/s (ratio 1.05)" in lines
    assert "Warning: b sees blends 4.00 times as noisy" in lines and "Warning: a" not in lines


def test_collapsed_masks_are_flagged_in_the_summary():
    from blendphot.evaluate import mask_health, mask_warnings

    good = np.zeros((10, 2, 8, 8), np.uint8)
    good[:, 0, 2:5, 2:5] = 1
    good[:, 1, 5:7, 5:7] = 1
    empty = good.copy()
    empty[:7, 1] = 0  # the companion channel empty in 7 of 10 blends
    same = good.copy()
    same[:, 1] = same[:, 0]  # both channels the same blob
    health = {"unet": mask_health(good), "b2m2f": mask_health(empty), "copycat": mask_health(same)}
    assert health["unet"] == {"n": 10, "empty_central": 0.0, "empty_companion": 0.0, "same_blob": 0.0}
    assert health["b2m2f"]["empty_companion"] == pytest.approx(0.7)
    assert health["copycat"]["same_blob"] == 1.0
    lines = mask_warnings(health)
    assert len(lines) == 2
    assert "b2m2f" in lines[0] and "companion's mask is empty in 70 %" in lines[0]
    assert "copycat" in lines[1] and "same blob" in lines[1]
