"""Every chapter executes (smoke profile: tiny sizes) and renders; notebooks are committed clean."""
from __future__ import annotations

import json
import os

import pytest

from lib.course import catalog, execute, render
from lib.paths import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NAMES = [p.stem for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_is_committed_clean_and_parametrised(path):
    cells = json.loads(path.read_text())["cells"]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# "), "start with a title"
    for c in cells:
        if c["cell_type"] == "code":
            assert not c.get("outputs") and not c.get("execution_count"), f"{path.name}: strip outputs before committing"
    params = catalog.Notebook(path).defaults()
    for name in ("seed", "device", "profile"):
        assert name in params, f"{path.name}: the parameters cell must define {name}"
    assert params["device"] == "auto" and params["profile"] == "quick"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_code_fits_the_page(path):
    """At most 88 columns of code: wider lines wrap with continuation markers in the PDFs."""
    cells = json.loads(path.read_text())["cells"]
    long = [(k, line) for k, c in enumerate(cells) if c["cell_type"] == "code"
            for line in "".join(c["source"]).splitlines() if len(line) > 88]
    assert not long, f"{path.name}: {len(long)} code lines over 88 columns, e.g. cell {long[0][0]}: " \
                     f"{long[0][1][:60]!r}..."


@pytest.fixture(scope="module")
def smoke_runs():
    """Execute every notebook once with its smoke profile (into the tests' own reports dir)."""
    os.environ.setdefault("COURSE_NOTEBOOKS_DIR", str(REPO / "notebooks"))
    runs = execute.run(None, profile="smoke", keep_going=True, log=lambda *a, **k: None)
    return {r.notebook: r for r in runs}


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_smoke_profile(smoke_runs, name):
    res = smoke_runs[name]
    assert res.ok, res.error
    assert res.record["numbers"], f"{name} recorded no numbers (call lib.course.record at the end)"


@pytest.mark.slow
@pytest.mark.skipif(not render.have_tex(), reason="xelatex/pandoc not installed (CI installs them; see README)")
def test_chapter_pdf_has_title_and_images(smoke_runs, tmp_path):
    res = smoke_runs[NAMES[0]]
    assert res.ok, res.error
    pdf = render.render(res.output, tmp_path, "pdf")
    text = render.pdf_text(pdf)
    title = catalog.Notebook(NOTEBOOKS[0]).title
    # pypdf infers spaces from glyph gaps and sometimes drops them: compare without white space
    squash = lambda s: "".join(s.split())  # noqa: E731
    assert squash(text).startswith(squash(title)), f"title {title!r} not at the top of the PDF"
    assert NAMES[0] not in text.splitlines()[0], "the title must be the heading, not the file name"
    assert render.pdf_images(pdf) >= 1, "no figure in the PDF"
    assert "it/s" not in text and "HBox" not in text, "progress-bar junk in the PDF"


def _greek_names(text: str) -> set[str]:
    """Greek letters in extracted PDF text, plain (U+03xx) or mathematical italic (U+1D6xx), by name."""
    import unicodedata

    names = set()
    for ch in text:
        name = unicodedata.name(ch, "")
        if "GREEK" in name or name.startswith("MATHEMATICAL ITALIC SMALL") and len(name.split()) == 4 \
                and name.split()[-1] in {"DELTA", "SIGMA", "LAMDA", "ALPHA"}:
            names.add(name.split()[-1])
    return names


@pytest.mark.slow
@pytest.mark.skipif(not render.have_tex(), reason="xelatex/pandoc not installed (CI installs them; see README)")
def test_pdf_keeps_greek_in_prose_maths_and_outputs(tmp_path):
    """Greek must survive in all three places a chapter uses it (a font without it drops them silently)."""
    import base64
    import io

    import matplotlib
    import nbformat

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Greek check\n\nThe accuracy δ and the spread σ in prose."),
        nbformat.v4.new_markdown_cell("Maths: $\\alpha + \\lambda$."),
        nbformat.v4.new_code_cell("print('λ')", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="weight λ = 0.5\n"),
            nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(buf.getvalue()).decode(),
                                                         "text/plain": "<Figure>"})]),
        # the lines of lib.course.check: the tick and the cross must print too
        nbformat.v4.new_code_cell("course.check(...)", outputs=[
            nbformat.v4.new_output("display_data", data={"text/markdown": "**Check.** \u2713 a held claim"}),
            nbformat.v4.new_output("display_data", data={"text/markdown": "**Check.** \u2717 **not held:** x"})]),
    ]
    src = tmp_path / "greek.ipynb"
    nbformat.write(nb, src)
    pdf = render.render(src, tmp_path / "out", "pdf")
    text = render.pdf_text(pdf)
    assert text.lstrip().startswith("Greek check")
    found = _greek_names(text)
    for letter in ("DELTA", "SIGMA", "LAMDA", "ALPHA"):
        assert letter in found, f"Greek {letter.lower()} dropped from the PDF (found {sorted(found)})"
    assert render.pdf_images(pdf) == 1
    assert "\u2713 a held claim" in text and "\u2717 not held: x" in text


@pytest.mark.slow
@pytest.mark.skipif(not render.have_tex(), reason="xelatex/pandoc not installed (CI installs them; see README)")
def test_course_pdf_has_contents_and_bookmarks(smoke_runs, tmp_path):
    from pypdf import PdfReader

    chapters = []
    for name in NAMES[:2]:
        assert smoke_runs[name].ok
        nb = catalog.Notebook(REPO / "notebooks" / f"{name}.ipynb")
        chapters.append((nb.number, nb.title, render.render(smoke_runs[name].output, tmp_path, "pdf", no_input=True)))
    out = render.course_pdf(chapters, tmp_path / "course.pdf")
    reader = PdfReader(out)
    assert "Contents" in reader.pages[0].extract_text()
    titles = [o["/Title"] for o in reader.outline if isinstance(o, dict)]
    assert titles[0] == "Contents" and [t.split(" ", 1)[1] for t in titles[1:]] == [c[1] for c in chapters]
    first = sum(1 for _ in PdfReader(chapters[0][2]).pages)
    assert len(reader.pages) == 1 + first + len(PdfReader(chapters[1][2]).pages)
