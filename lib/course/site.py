"""The HTML edition of the course: ``reports/site/``, readable offline in any browser.

``python -m lib.course html`` (and ``make course``) writes one page per executed chapter with
JupyterLab's look, navigation (contents, previous, next), numbered citations linked to the
chapter's References, "chapter NN" linked to that page, and figures embedded in the page. Maths is
typeset by a local copy of MathJax 2.7 (from the ``jupyter-server-mathjax`` package, copied to
``site/mathjax/``): no script, style, font or image is fetched over the network. Chapter 09's
page carries a refocus viewer that needs no kernel (:mod:`lib.refocus_viewer`).

A page is rewritten only when its executed notebook (or this code) changed; ``force`` rewrites
all. ``?selftest`` at the end of a page's address makes it report, in a ``<pre
id="course-selftest">`` element, whether its maths was typeset, its images loaded, its viewers
respond and whether any script error occurred (``tests/test_site.py`` reads it with a headless
Chromium).
"""
from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

from lib.course import cache, catalog, render
from lib.paths import reports_dir

TEMPLATE = Path(__file__).parent / "templates" / "site.html.j2"
MATHJAX_URL = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"

SELFTEST_JS = r"""// ?selftest: report what a reader would see (read by tests/test_site.py)
(function () {
  if (!/selftest/.test(location.search + location.hash)) return;
  var viewers = function () { return window.courseViewers || []; };
  function finish() {
    var images = Array.prototype.slice.call(document.images);
    var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
    var results = viewers().map(function (v) { return v.result(); });
    var text = document.body.innerText;
    var report = {
      math: document.querySelectorAll(".MathJax, .MathJax_Display, .MathJax_CHTML").length,
      raw_display_math: (text.match(/\$\$/g) || []).length,
      images: images.length, broken: broken.map(function (i) { return i.src.slice(0, 60); }),
      viewers: results, errors: window.courseErrors || []
    };
    var pre = document.createElement("pre");
    pre.id = "course-selftest";
    pre.textContent = JSON.stringify(report);
    document.body.appendChild(pre);
  }
  function whenTypeset() {
    viewers().forEach(function (v) { v.start(); });
    var later = function () { setTimeout(finish, 300); };  // frames decode asynchronously
    if (window.MathJax && window.MathJax.Hub) { window.MathJax.Hub.Queue(later); }
    else { later(); }
  }
  if (document.readyState === "complete") { whenTypeset(); }
  else { window.addEventListener("load", whenTypeset); }
})();
"""

ERRORS_JS = """<script>
window.courseErrors = [];
window.addEventListener("error", function (e) { window.courseErrors.push(String(e.message)); });
</script>"""


def site_dir() -> Path:
    return reports_dir() / "site"


def copy_mathjax(dest: Path) -> Path:
    """MathJax 2.7 (the ``jupyter-server-mathjax`` package) into ``dest/mathjax``: the parts the
    pages use (HTML-CSS output, TeX input, the English locale, the web fonts)."""
    import jupyter_server_mathjax

    src = Path(jupyter_server_mathjax.__file__).parent / "static"
    out = dest / "mathjax"
    stamp = out / ".version"
    version = f"jupyter-server-mathjax {getattr(jupyter_server_mathjax, '__version__', '')}"
    if stamp.exists() and stamp.read_text() == version:
        return out
    shutil.rmtree(out, ignore_errors=True)

    def skip(folder, names):
        rel = Path(folder).relative_to(src).as_posix()
        drop = {"SVG"} if rel == "jax/output" else set()
        if rel == "localization":
            drop = {n for n in names if n != "en"}
        if rel == "fonts/HTML-CSS/TeX":
            drop = {n for n in names if n not in ("woff", "otf")}
        return drop

    shutil.copytree(src, out, ignore=skip)
    stamp.write_text(version)
    return out


def _exporter():
    from nbconvert import HTMLExporter

    exp = HTMLExporter(template_name="lab", template_file=str(TEMPLATE))
    exp.mathjax_url = MATHJAX_URL
    exp.embed_images = True
    exp.exclude_input_prompt = False
    render.for_the_page(exp)
    return exp


def _page_name(nb: catalog.Notebook) -> str:
    return f"{nb.stem}.html"


def chapter_page(executed: Path, pages: dict[str, str], prev, nxt) -> str:
    """The HTML of one executed chapter, with its navigation and linked citations."""
    nb = render._prepare(executed, pages=pages, html=True)
    nb.metadata["site"] = {"prev": prev, "next": nxt}
    body, _ = _exporter().from_notebook_node(nb, resources={"metadata": {"name": nb.metadata["title"]}})
    return body.replace("</head>", ERRORS_JS + "\n</head>", 1)


def index_page(entries: list[tuple[str, str, str]]) -> str:
    rows = "\n".join(f'  <li><a href="{href}">{html.escape(title)}</a></li>'
                     for _, title, href in entries)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{html.escape(render.BOOK_TITLE)}</title>
{ERRORS_JS}
<style>
 body {{ font-family: sans-serif; max-width: 760px; margin: 3em auto; padding: 0 1em; }}
 li {{ margin: 0.4em 0; font-size: 1.1em; }} a {{ text-decoration: none; }}
</style></head>
<body>
<h1>{html.escape(render.BOOK_TITLE)}</h1>
<p>The executed chapters of the course: prose, code, figures and the numbers of the run that
made this page. Every page works offline. The PDF edition is <code>reports/course.pdf</code>.</p>
<ul style="list-style: none; padding: 0">
{rows}
</ul>
<script src="selftest.js"></script>
</body></html>
"""


def build(selection: list[str] | None = None, log=print, force: bool = False) -> list[Path]:
    """Write ``reports/site/``: the index and a page per executed chapter (returns the pages)."""
    out = site_dir()
    out.mkdir(parents=True, exist_ok=True)
    copy_mathjax(out)
    (out / "selftest.js").write_text(SELFTEST_JS)
    chapters = [nb for nb in catalog.find(None) if (reports_dir() / f"{nb.stem}.ipynb").exists()]
    pages = {nb.number: _page_name(nb) for nb in chapters}
    chosen = {nb.stem for nb in catalog.find(selection)}
    written = []
    for i, nb in enumerate(chapters):
        if nb.stem not in chosen:
            continue
        executed = reports_dir() / f"{nb.stem}.ipynb"
        page = out / _page_name(nb)
        prev = [pages[chapters[i - 1].number], chapters[i - 1].title] if i > 0 else None
        nxt = [pages[chapters[i + 1].number], chapters[i + 1].title] if i + 1 < len(chapters) else None
        key = cache.render_inputs(executed, [TEMPLATE, Path(__file__)]) + json.dumps([prev, nxt])
        if not force and page.exists() and cache.load(nb.stem).get("html_key") == key:
            log(f"site/{page.name} is up to date", flush=True)
        else:
            log(f"writing site/{page.name} ...", flush=True)
            page.write_text(chapter_page(executed, pages, prev, nxt))
            cache.save(nb.stem, html_key=key)
        written.append(page)
    (out / "index.html").write_text(index_page([(nb.number, nb.title, pages[nb.number])
                                                for nb in chapters]))
    log(f"HTML edition -> {out / 'index.html'} (open it in a browser; it works offline)", flush=True)
    return written

