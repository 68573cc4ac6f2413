"""The HTML edition: offline pages with navigation, linked citations, local MathJax, and a
refocus viewer that works without a kernel, checked in a real (headless) Chromium."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import nbformat
import pytest
import torch

from lib import refocus_viewer
from lib.course import site
from lib.paths import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture
def course(tmp_path, monkeypatch):
    """Two executed 'chapters' in a temporary course: maths, a figure, citations, a viewer."""
    nbs, reports = tmp_path / "notebooks", tmp_path / "reports"
    nbs.mkdir()
    reports.mkdir()
    monkeypatch.setenv("COURSE_NOTEBOOKS_DIR", str(nbs))
    monkeypatch.setenv("COURSE_REPORTS_DIR", str(reports))
    img, disp = torch.rand(3, 24, 32), torch.rand(1, 24, 32) + 0.2
    grid = refocus_viewer.focal_grid(img, {"true": disp}, [1.0, 2.0, 4.0], [1.4, 2.8],
                                     lambda n: 8.0 / n)
    viewer = refocus_viewer.viewer_html("demo", grid, [1.0, 2.0, 4.0], [1.4, 2.8], {"true": disp})
    png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
           "AAAABJRU5ErkJggg==")
    for stem, title, text, outputs in [
        ("00_first", "00 · The first", "A claim [@eigen2014], inline $x^2$ and\n\n$$\\int_0^1 x\\,dx$$",
         [nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "fig"})]),
        ("01_second", "01 · The second", "As chapter 00 showed [@ranftl2020midas].",
         [nbformat.v4.new_output("display_data", data={"text/html": viewer, "text/plain": "v"})]),
    ]:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\n{text}"),
                    nbformat.v4.new_code_cell("seed = 0\nprofile = 'quick'",
                                              metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell("show()", outputs=outputs)]
        nbformat.write(nb, nbs / f"{stem}.ipynb")
        nbformat.write(nb, reports / f"{stem}.ipynb")  # stands in for the executed copy
    return reports


def test_site_pages_are_offline_linked_and_cached(course):
    pages = site.build(log=lambda *a, **k: None)
    out = course / "site"
    assert [p.name for p in pages] == ["00_first.html", "01_second.html"]
    index = (out / "index.html").read_text()
    assert 'href="00_first.html"' in index and 'href="01_second.html"' in index
    first, second = (p.read_text() for p in pages)
    assert 'href="01_second.html"' in first and 'href="index.html"' in first  # next, contents
    assert 'href="00_first.html"' in second  # previous, and "chapter 00" in the prose
    assert re.search(r'href="00_first.html"[^>]*>chapter 00', second)
    assert 'href="#ref-eigen2014"' in first and 'id="ref-eigen2014"' in first  # [1] -> References
    assert "Depth Map Prediction" in first
    for page in (first, second, index):
        fetched = re.findall(r'<(?:script|link|img|iframe)[^>]+(?:src|href)="(https?:[^"]*)"', page)
        assert not fetched, f"fetched over the network: {fetched}"
        assert "@import url(http" not in page
    assert (out / "mathjax" / "MathJax.js").exists() and (out / "selftest.js").exists()
    stamp = {p.name: p.stat().st_mtime_ns for p in pages}
    site.build(log=lambda *a, **k: None)  # nothing changed: pages are not rewritten
    assert {p.name: p.stat().st_mtime_ns for p in pages} == stamp


def test_viewer_refuses_bad_input():
    with pytest.raises(ValueError, match="image must be"):
        refocus_viewer.focal_grid(torch.rand(1, 8, 8), {}, [1.0], [2.0], lambda n: 1.0)
    with pytest.raises(ValueError, match="disparity 'true'"):
        refocus_viewer.focal_grid(torch.rand(3, 8, 8), {"true": torch.rand(1, 4, 4)}, [1.0],
                                  [2.0], lambda n: 1.0)


def selftest(page) -> tuple[dict, str]:
    """Open the page in headless Chromium with ?selftest; return its report and the log."""
    proc = subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--allow-file-access-from-files", "--virtual-time-budget=20000", "--dump-dom",
         page.as_uri() + "?selftest"], capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="course-selftest">(.*?)</pre>', proc.stdout)
    assert m, f"no self-test report from {page.name}; stderr: {proc.stderr[-1500:]}"
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&")), proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (CI installs it: apt-get "
                                             "install chromium); the browser test needs it")
def test_pages_in_a_real_browser(course):
    site.build(log=lambda *a, **k: None)
    out = course / "site"
    for name in ("00_first.html", "01_second.html", "index.html"):
        report, log = selftest(out / name)
        assert report["errors"] == [], report["errors"]
        assert not re.findall(r"Uncaught|CONSOLE\(\d+\)\] \"?(?:Error|Uncaught)", log)
        assert report["broken"] == [], f"{name}: images that did not load {report['broken']}"
        assert report["raw_display_math"] == 0, f"{name}: $$ left untypeset"
        if name == "00_first.html":
            assert report["math"] >= 2 and report["images"] >= 1  # MathJax ran, the figure shows
        if name == "01_second.html":
            (viewer,) = report["viewers"]
            assert viewer["slider_changes_image"] and viewer["loaded"] and viewer["frames"] == 6


BUILT = REPO / "reports" / "site"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (CI installs it)")
@pytest.mark.skipif(not (BUILT / "index.html").exists(),
                    reason="reports/site/ not built yet (make course writes it; CI checks it after)")
def test_built_course_in_a_real_browser():
    """Every page of the course's own site, as make course wrote it (CI runs this last)."""
    pages = sorted(BUILT.glob("[0-9][0-9]_*.html"))
    assert len(pages) >= 13, [p.name for p in pages]
    viewers = []
    for page in [BUILT / "index.html", *pages]:
        report, log = selftest(page)
        assert report["errors"] == [], f"{page.name}: {report['errors']}"
        assert report["broken"] == [], f"{page.name}: images that did not load {report['broken']}"
        assert report["raw_display_math"] == 0, f"{page.name}: $$ left untypeset"
        if page.name != "index.html":
            assert report["math"] > 0 or "00_" in page.name, f"{page.name}: no maths typeset"
        viewers += report["viewers"]
        html = page.read_text()
        fetched = re.findall(r'<(?:script|link|img|iframe)[^>]+(?:src|href)="(https?:[^"]*)"', html)
        assert not fetched, f"{page.name} fetches {fetched[:3]}"
    assert len(viewers) == 2 and all(v["slider_changes_image"] and v["loaded"] for v in viewers)


def test_display_viewer_gives_the_pdf_a_still_and_returns_nothing(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    img, disp = torch.rand(3, 16, 16), torch.rand(1, 16, 16) + 0.2
    grid = refocus_viewer.focal_grid(img, {"true": disp}, [1.0, 3.0], [2.0], lambda n: 6.0 / n)
    out = refocus_viewer.display_viewer("t", grid, [1.0, 3.0], [2.0], {"true": disp})
    assert out is None  # a cell ending in the call must not print the page's source
    (bundle,) = shown
    assert set(bundle) == {"text/html", "image/png", "text/plain"}
    assert "data:image/jpeg;base64," in bundle["text/html"] and len(bundle["text/plain"]) < 300
