"""The reports in a real headless Chromium: no console errors, every section and figure drawn,
no sideways scrolling on a phone, and a screenshot of each page."""

from __future__ import annotations

import pytest
from reporthelp import Page

from trainwell.report import write_comparison, write_study_report

pytestmark = pytest.mark.browser

PHONE, WIDE = (390, 844), (1400, 900)
STATE = """
const figs = [...document.querySelectorAll('figure')].map(f => {
  const img = f.querySelector('img');
  return [f.id, img.complete && img.naturalWidth > 0, img.getBoundingClientRect().width];
});
return {sections: [...document.querySelectorAll('section')].map(s => s.id), figs: figs,
        overflow: document.documentElement.scrollWidth - window.innerWidth};
"""


@pytest.fixture(scope="module")
def pages(iris_report, iris_run, iris_run_fast, study_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pages")
    return {"run": iris_report, "study": write_study_report(study_dir),
            "comparison": write_comparison([iris_run, iris_run_fast], out / "comparison.html")}


@pytest.mark.parametrize("kind", ["run", "study", "comparison"])
def test_page_loads_cleanly_on_a_phone_and_a_wide_screen(kind, pages, browser, tmp_path):
    from PIL import Image

    expected = Page(pages[kind])
    browser.console()  # drop what earlier pages logged
    for name, (width, height) in (("phone", PHONE), ("wide", WIDE)):
        browser.resize(width, height)
        browser.open(pages[kind])
        state = browser.run(STATE)
        assert state["sections"] == expected.sections
        assert [f[0] for f in state["figs"]] == expected.figures
        assert all(loaded and shown > 100 for _, loaded, shown in state["figs"]), state["figs"]
        assert state["overflow"] <= 1, f"{kind} page scrolls sideways at {width}px"
        errors = [e for e in browser.console() if e["level"] in ("SEVERE", "WARNING")]
        assert errors == []
        shot = browser.full_screenshot(tmp_path / f"{kind}-{name}.png", width)
        with Image.open(shot) as img:
            assert img.width == width and img.height > height // 2


def test_console_check_fails_on_a_broken_page(browser, tmp_path):
    """The check above can fail: a missing image and a script error are both reported."""
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
                      '<link rel="icon" href="data:,"><title>broken</title></head><body>'
                      '<img src="missing.png" alt="x"><script>undefinedFunction();</script>'
                      "</body></html>\n", encoding="utf-8")
    browser.console()
    browser.open(broken)
    messages = [e["message"] for e in browser.console() if e["level"] == "SEVERE"]
    assert any("missing.png" in m for m in messages), messages
    assert any("undefinedFunction" in m for m in messages), messages
