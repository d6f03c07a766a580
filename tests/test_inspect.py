import shutil

import numpy as np
import pandas as pd
import pytest

from blendphot.errors import InputError
from blendphot.inspect import apply_decisions, auto_decisions, gallery_strip, render_page

from .workflow_helpers import skip_unless_possible


def _catalog():
    return pd.DataFrame({"gid": ["A-1", "A-2", "B-3"], "cls": ["disk", "bulge", "irregular"],
                         "mag_auto": [21.0, 22.5, 23.1], "re_arcsec": [0.3, 0.2, 0.4],
                         "qa_flags": ["", "residual_neighbour_flux", "low_background"]})


def test_auto_decisions_follow_the_flags():
    auto = auto_decisions(_catalog(), ["residual_neighbour_flux"])
    assert list(auto.decision) == ["accept", "reject", "accept"]
    assert auto.reason[1] == "residual_neighbour_flux"


def test_person_overrides_auto_and_bad_files_are_named():
    auto = auto_decisions(_catalog(), ["residual_neighbour_flux"])
    person = pd.DataFrame({"id": ["A-1", "A-2"], "decision": ["reject", "accept"],
                           "reason": ["unrecognised_blend", ""]})
    final = apply_decisions(auto, person)
    assert list(final.decision) == ["reject", "accept", "accept"]
    assert list(final.decided_by) == ["person", "person", "auto"]
    with pytest.raises(InputError, match="dec.csv: id 'Z-9' is not in the inspection manifest"):
        apply_decisions(auto, pd.DataFrame({"id": ["Z-9"], "decision": ["accept"]}), source="dec.csv")
    with pytest.raises(InputError, match="column 'decision' must be"):
        apply_decisions(auto, pd.DataFrame({"id": ["A-1"], "decision": ["maybe"]}), source="dec.csv")
    with pytest.raises(InputError, match="missing column 'decision'"):
        apply_decisions(auto, pd.DataFrame({"id": ["A-1"]}), source="dec.csv")


def test_gallery_strip_shape_and_range():
    rng = np.random.default_rng(0)
    strip = gallery_strip(rng.normal(size=(32, 32)), rng.normal(size=(32, 32)), np.ones((32, 32)))
    assert strip.shape == (32, 3 * 32 + 8) and strip.min() >= 0 and strip.max() <= 1


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.browser
def test_review_page_in_headless_chromium(tmp_path):
    skip_unless_possible("" if CHROMIUM else "needs chromium", "browser test", "BLENDPHOT_REQUIRE_BROWSER")
    from playwright.sync_api import sync_playwright

    cat = _catalog()
    auto = auto_decisions(cat, ["residual_neighbour_flux"])
    manifest = cat.rename(columns={"gid": "id"}).assign(decision=auto.decision, reason=auto.reason,
                                                       image=[f"{g}.png" for g in cat.gid])
    (tmp_path / "gallery").mkdir()
    import matplotlib.pyplot as plt

    for g in cat.gid:
        plt.imsave(tmp_path / "gallery" / f"{g}.png", np.zeros((8, 24)))
    page_path = tmp_path / "index.html"
    page_path.write_text(render_page(manifest, "gallery"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        page = browser.new_page(accept_downloads=True)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        assert page.locator(".card").count() == 3
        page.keyboard.press("1")           # reject A-1: unrecognised blend, move on
        page.keyboard.press("a")           # accept A-2 (auto-rejected)
        page.keyboard.press("ArrowLeft")   # back to A-2
        page.keyboard.press("ArrowRight")  # and on to B-3, left as is
        with page.expect_download() as info:
            page.keyboard.press("e")
        out = tmp_path / "decisions.csv"
        info.value.save_as(out)
        browser.close()
    assert not errors
    exported = pd.read_csv(out, keep_default_na=False)
    assert list(exported.columns) == ["id", "decision", "reason"]
    assert exported.to_dict("records") == [
        {"id": "A-1", "decision": "reject", "reason": "unrecognised_blend"},
        {"id": "A-2", "decision": "accept", "reason": ""},
        {"id": "B-3", "decision": "accept", "reason": ""},
    ]
    # the exported file is what the split stage reads
    final = apply_decisions(auto, exported, source=str(out))
    assert list(final.decision) == ["reject", "accept", "accept"]


HOSTILE = ['<img src=x onerror="window.pwned=1">', '</script><script>window.pwned=2</script>',
           '<!--<script>window.pwned=3//', '"><svg onload="window.pwned=4">']


@pytest.mark.browser
def test_catalogue_text_reaches_the_page_as_text(tmp_path):
    """Ids, classes and flags that hold markup are shown as text in Chromium and run nothing
    (the ids are refused when a catalogue is read; the page does not rely on it)."""
    skip_unless_possible("" if CHROMIUM else "needs chromium", "browser test", "BLENDPHOT_REQUIRE_BROWSER")
    from playwright.sync_api import sync_playwright

    n = len(HOSTILE)
    manifest = pd.DataFrame({"id": HOSTILE, "cls": HOSTILE[::-1], "mag_auto": [21.0] * n, "re_arcsec": [0.3] * n,
                             "qa_flags": HOSTILE, "decision": ["accept"] * n, "reason": [""] * n,
                             "image": [f"{h}.png" for h in HOSTILE]})
    page_path = tmp_path / "index.html"
    page_path.write_text(render_page(manifest, "gallery"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page()
        dialogs, errors = [], []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        page.wait_for_timeout(300)  # let an injected onerror/onload fire if there were one
        pwned = page.evaluate("window.pwned")
        cards = page.locator(".card").count()
        meta = page.locator(".card .meta span:first-child").all_text_contents()
        flags = page.locator(".card .flags").all_text_contents()
        alts = [page.locator(".card img").nth(i).get_attribute("alt") for i in range(n)]
        injected = page.locator("#grid svg, #grid script, #grid img:not(.card > img)").count()
        browser.close()
    assert pwned is None and not dialogs and not errors
    assert cards == n and injected == 0
    assert [m.split(" (")[0] for m in meta] == HOSTILE
    assert flags == [f"flags: {h}" for h in HOSTILE]
    assert alts == HOSTILE


def test_page_json_cannot_end_its_script_element():
    html = render_page(pd.DataFrame({"id": ["</script><b>x"], "cls": ["disk"], "mag_auto": [21.0],
                                     "re_arcsec": [0.3], "qa_flags": ["<!--"], "decision": ["accept"],
                                     "reason": [""], "image": ["a.png"]}), "gallery")
    script = html.split('<script id="manifest" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert "<" not in script and ">" not in script
    import json

    assert json.loads(script)["galaxies"][0]["id"] == "</script><b>x"
