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


MAX_CELL_LINES, MEDIAN_CELL_LINES = 40, 15


def code_cell_lengths(path) -> list[int]:
    """Lines of each code cell of a notebook (trailing blank lines not counted)."""
    cells = json.loads(path.read_text())["cells"]
    return [len("".join(c["source"]).rstrip("\n").splitlines())
            for c in cells if c["cell_type"] == "code"]


def test_code_cells_define_run_and_show_in_short_steps(capsys):
    """A cell a reader takes in at once: none over 40 lines, the course-wide median at most
    15 (the parameters cells included). Prints both numbers and each chapter's."""
    import statistics

    lengths = {p.stem: code_cell_lengths(p) for p in NOTEBOOKS}
    every = [n for v in lengths.values() for n in v]
    with capsys.disabled():
        print(f"\ncode cells: {len(every)}, median {statistics.median(every):g} lines, "
              f"longest {max(every)} (limits: median {MEDIAN_CELL_LINES}, "
              f"longest {MAX_CELL_LINES})")
        for name, v in lengths.items():
            print(f"  {name}: {len(v)} cells, median {statistics.median(v):g}, longest {max(v)}")
    long = {name: [n for n in v if n > MAX_CELL_LINES] for name, v in lengths.items()}
    long = {k: v for k, v in long.items() if v}
    assert not long, f"code cells over {MAX_CELL_LINES} lines: {long}; split them into " \
                     "define / run / show"
    assert statistics.median(every) <= MEDIAN_CELL_LINES, \
        f"median code cell {statistics.median(every):g} lines > {MEDIAN_CELL_LINES}"


def test_cell_length_counts_by_hand(tmp_path):
    nb = {"cells": [{"cell_type": "code", "source": ["a = 1\n", "b = 2\n", "\n"]},
                    {"cell_type": "markdown", "source": ["# x\n", "y"]},
                    {"cell_type": "code", "source": ["print(1)"]}]}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    assert code_cell_lengths(path) == [2, 1]


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
    # a cell that ends in a bare expression prints its repr (a whole network, a list of
    # matplotlib artists): the chapters show results with print, display and figures only
    cells = json.loads(res.output.read_text())["cells"]
    bare = [k for k, c in enumerate(cells) for o in c.get("outputs", [])
            if o["output_type"] == "execute_result" and set(o["data"]) == {"text/plain"}]
    assert not bare, f"{name}: cells {bare} print the repr of their last expression"


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
def test_course_pdf_is_one_linked_book(tmp_path):
    """Title page, contents and bookmarks from plain titles (no doubled number, no LaTeX), a link
    from "chapter 00" in the text to that chapter, numbered citations with one bibliography,
    page numbers that run on across chapters and the chapter's title in the running head."""
    import nbformat
    from pypdf import PdfReader

    def chapter(stem, title, text):
        nb = nbformat.v4.new_notebook()
        nb.metadata["papermill"] = {"parameters": {"seed": 0, "profile": "quick"},
                                    "end_time": "2026-12-02T05:00:00"}
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\n{text}"),
                    nbformat.v4.new_markdown_cell("## A section on $\\delta_1$\n\n" + "Words. " * 900)]
        path = tmp_path / f"{stem}.ipynb"
        nbformat.write(nb, path)
        return path

    first = chapter("00_first", "00 · The first", "A claim [@eigen2014].")
    second = chapter("01_second", "01 · The second",
                     "As chapter 00 showed [@ranftl2020midas; @eigen2014], see `chapter 00`.")
    reader = PdfReader(render.course_pdf([first, second], tmp_path / "course.pdf"))
    pages = [p.extract_text() for p in reader.pages]
    assert "Monocular Depth" in pages[0] and "Contents" in pages[1]
    titles = [o["/Title"] for o in reader.outline if isinstance(o, dict)]
    assert titles == ["00 The first", "01 The second", "References"]
    assert not any("\\" in t or "$" in t for o in reader.outline for t in _titles(o))
    # the citations: numbered in order of first use across the book, one list at the end
    body = " ".join(" ".join(pages).split())
    assert "claim [1]" in body and "showed [2, 1]" in body
    assert body.count("Multi-Scale Deep Network") == 1  # cited twice, listed once
    assert "Towards Robust Monocular Depth Estimation" in " ".join(pages[-1].split())
    # a link from the second chapter's "chapter 00" to the first chapter's page
    labels = list(reader.page_labels)
    start = {t: labels[reader.get_destination_page_number(o)] for o, t in
             ((o, o["/Title"]) for o in reader.outline if isinstance(o, dict))}
    links = [a.get_object() for p in reader.pages for a in (p.get("/Annots") or [])]
    internal = [a for a in links if a.get("/Subtype") == "/Link" and "/URI" not in a.get("/A", {})]
    assert internal, "no internal links (contents, chapter references, citations)"
    # page numbers run on: the second chapter starts after the first ends, in arabic numbers
    assert start["00 The first"] == "1" and int(start["01 The second"]) > 2
    assert any("01 The second" in p.splitlines()[0] for p in pages[1:] if p.strip())  # running head


def _titles(item):
    if isinstance(item, list):
        return [t for x in item for t in _titles(x)]
    return [item["/Title"]]
