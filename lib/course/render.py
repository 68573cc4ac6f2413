"""Executed notebooks -> PDF reports (nbconvert + XeLaTeX), and the whole course in one PDF.

What the reader gets, and why each step exists:
- the title is the notebook's first heading (not its file name), the date line says how it was run;
- DejaVu fonts, so Greek letters and maths symbols in prose and outputs print instead of vanishing;
- progress bars and widgets are dropped (a PDF cannot show them; the final numbers are printed anyway);
- cells tagged ``remove-cell`` vanish, ``remove-input`` keep only their output, ``--no-input`` gives a
  results-only report;
- ``course.pdf`` = a contents page + every chapter, with PDF bookmarks.
Without TeX the same reports are written as HTML, and the command that enables PDFs is printed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor, TagRemovePreprocessor

from lib.course import catalog
from lib.course.bibliography import Citations
from lib.paths import reports_dir

TEMPLATE = Path(__file__).parent / "templates" / "course.tex.j2"
BOOK_TEMPLATE = Path(__file__).parent / "templates" / "book.tex.j2"
BOOK_TITLE = "Monocular Depth, from Data Loaders to Bokeh"
TEX_PACKAGES = "texlive-xetex texlive-fonts-recommended texlive-plain-generic pandoc fonts-dejavu-core"
TEX_COMMAND = f"sudo apt-get update && sudo apt-get install -y --no-install-recommends {TEX_PACKAGES}"
WIDGET = "application/vnd.jupyter.widget-view+json"


def have_tex() -> bool:
    return bool(shutil.which("xelatex") and shutil.which("pandoc"))


def ensure_tex(log=print) -> bool:
    """Install XeLaTeX and pandoc with apt-get when missing and we are root; say how otherwise."""
    if have_tex():
        return True
    if os.name == "posix" and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing TeX for the PDF reports (about 2 minutes): apt-get install {TEX_PACKAGES}", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        ok = subprocess.run(["apt-get", "update", "-qq"], env=env).returncode == 0 and subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *TEX_PACKAGES.split()], env=env
        ).returncode == 0
        if ok and have_tex():
            return True
    log(f"xelatex/pandoc not found: reports will be HTML. To get PDFs, run:\n    {TEX_COMMAND}", flush=True)
    return False


class CleanOutputs(Preprocessor):
    """Drop what a page cannot show: widgets (tqdm bars), stderr (warnings, text progress bars),
    and collapse carriage-return animations in stdout to their final state."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        kept = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                if out.name == "stderr":
                    continue
                out.text = "\n".join(line.split("\r")[-1] for line in out.text.split("\n"))
            elif out.output_type in ("display_data", "execute_result"):
                data = out.get("data", {})
                if WIDGET in data:
                    continue
            kept.append(out)
        cell.outputs = kept
        return cell, resources


_SYMBOLS = dict(zip(
    r"\alpha \beta \gamma \delta \epsilon \zeta \eta \theta \kappa \lambda \mu \nu \xi \pi \rho "
    r"\sigma \tau \phi \chi \psi \omega \Delta \Sigma \times \cdot \le \ge \pm \infty".split(),
    "α β γ δ ε ζ η θ κ λ μ ν ξ π ρ σ τ φ χ ψ ω Δ Σ × · ≤ ≥ ± ∞".split()))
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def plain_math(tex: str) -> str:
    """``\\delta_1`` -> ``δ₁``: maths in a heading as plain text, for bookmarks and contents."""
    for k in sorted(_SYMBOLS, key=len, reverse=True):
        tex = re.sub(re.escape(k) + r"(?![A-Za-z])", _SYMBOLS[k], tex)
    tex = re.sub(r"_\{?(\d+)\}?", lambda m: m.group(1).translate(_SUB), tex)
    tex = tex.replace("^2", "²").replace("^{2}", "²")
    return re.sub(r"\\[A-Za-z]+|[{}]", "", tex)


def _markdown_for_pandoc(source: str, promote: bool) -> str:
    """Make a Jupyter markdown cell read the same in the PDF.

    Jupyter (CommonMark) starts a list right after a paragraph line; pandoc needs a blank line first,
    or the items run into the paragraph. With ``promote``, ``##`` headings become ``#`` (the first
    heading is the document title, so the chapter's sections are numbered 1, 2, ... not 0.1, 0.2).
    Fenced code blocks are left alone.
    """
    out, fenced, prev = [], False, ""
    for line in source.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            is_item = bool(re.match(r"^\s*([-*+]|\d+\.)\s", line))
            prev_item = bool(re.match(r"^\s*([-*+]|\d+\.)\s", prev))
            if is_item and prev.strip() and not prev_item:
                out.append("")
            if promote and line.startswith("##"):
                line = line[1:]
            if line.startswith("#"):  # a heading is also a bookmark: no LaTeX in it
                line = re.sub(r"\$([^$]+)\$", lambda m: plain_math(m.group(1)), line)
        out.append(line)
        prev = line
    return "\n".join(out)


CHAPTER_REF = re.compile(r"(?<![\[\w])([Cc]hapters?)\s+(\d\d)\b")


def _link_chapters(source: str, numbers: set[str] | dict[str, str]) -> str:
    """'chapter 04' -> a link to chapter 04 (not in headings, code or existing links): to the
    anchor ``#ch04`` of the book, or to ``numbers["04"]`` when ``numbers`` maps chapters to pages."""
    out = []
    for line in source.splitlines():
        if line.startswith("#"):
            out.append(line)
            continue
        parts = re.split(r"(`[^`]*`|\[[^\]]*\]\([^)]*\))", line)  # code spans and links stay
        for i in range(0, len(parts), 2):
            parts[i] = CHAPTER_REF.sub(
                lambda m: f"[{m.group(1)} {m.group(2)}]({_href(numbers, m.group(2))})"
                if m.group(2) in numbers else m.group(0), parts[i])
        out.append("".join(parts))
    return "\n".join(out)


def _href(numbers, num: str) -> str:
    return numbers[num] if isinstance(numbers, dict) else f"#ch{num}"


def _prepare(nb_path: Path, citations: Citations | None = None, book: set[str] | None = None,
             pages: dict[str, str] | None = None, html: bool = False) -> nbformat.NotebookNode:
    """An executed notebook made ready for the page.

    ``citations`` numbers the ``[@key]`` citations (a fresh :class:`Citations` and a References
    section at the end when None: a chapter on its own). ``book`` (the chapter numbers of the book)
    makes the chapter a part of ``course.pdf``: its title a LaTeX chapter with a label, and
    "chapter NN" in its prose a link. ``pages`` (chapter number -> file name, the HTML site)
    turns "chapter NN" into a link to that page instead.
    """
    nb = nbformat.read(nb_path, as_version=4)
    title = None
    for cell in nb.cells:  # the first heading becomes the title (and leaves the body: no doubled title)
        if cell.cell_type == "markdown" and title is None:
            lines = cell.source.splitlines()
            for i, line in enumerate(lines):
                if line.startswith("# "):
                    title = catalog.strip_markdown(line.lstrip("#"))
                    cell.source = "\n".join(lines[:i] + lines[i + 1:]).strip()
                    break
    own = citations is None
    citations = Citations(html=html) if own else citations
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = citations.link(_markdown_for_pandoc(cell.source, promote=title is not None))
            if book or pages:
                cell.source = _link_chapters(cell.source, pages or book)
    if own and citations.order:
        nb.cells.append(nbformat.v4.new_markdown_cell(citations.references()))
    nb.metadata["title"] = title or nb_path.stem.replace("_", " ")
    params = (nb.metadata.get("papermill") or {}).get("parameters") or {}
    defaults = {}
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            try:
                defaults = catalog.parse_assignments(cell.source)
            except (SyntaxError, ValueError):
                pass
            break
    seed = params.get("seed", defaults.get("seed"))
    profile = params.get("profile", defaults.get("profile"))
    stamp = (nb.metadata.get("papermill") or {}).get("end_time") or ""
    bits = [f"profile {profile}" if profile is not None else None, f"seed {seed}" if seed is not None else None,
            f"executed {stamp[:16].replace('T', ' ')}" if stamp else None]
    nb.metadata["date"] = " · ".join(b for b in bits if b)
    if book is not None:
        num = nb_path.stem[:2]
        plain = re.sub(r"^\d\d\s*·\s*", "", nb.metadata["title"])  # the book numbers chapters itself
        head = (f"\\setcounter{{chapter}}{{{int(num) - 1}}}\\chapter{{{_escape_tex(plain)}}}"
                f"\\label{{ch{num}}}\n\\hypertarget{{ch{num}}}{{}}\n"
                f"{{\\small\\itshape {_escape_tex(nb.metadata['date'])}}}\\par\\medskip")
        nb.cells.insert(0, nbformat.v4.new_raw_cell(head, metadata={"raw_mimetype": "text/latex"}))
    return nb


def _escape_tex(s: str) -> str:
    for a, b in [("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                 ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\^{}")]:
        s = s.replace(a, b)
    return s


def for_the_page(exporter):
    """The preprocessors every rendering shares (PDF, the book, the HTML site): the cell tags
    (``remove-cell``, ``remove-input``, ``remove-output``) and :class:`CleanOutputs`."""
    exporter.register_preprocessor(TagRemovePreprocessor(
        remove_cell_tags={"remove-cell"}, remove_input_tags={"remove-input"},
        remove_all_outputs_tags={"remove-output"}, enabled=True), True)
    exporter.register_preprocessor(CleanOutputs(), True)
    return exporter


def _exporter(kind: str, no_input: bool, template: Path = TEMPLATE):
    from nbconvert import HTMLExporter, PDFExporter

    if kind == "pdf":
        exp = PDFExporter(template_file=str(template))
        # passes: bookmarks and links settle on the second, the contents' page numbers on the third
        exp.latex_count = 3 if template == BOOK_TEMPLATE else 2
        exp.raw_mimetypes = ["text/latex", ""]  # PDFExporter's own list names application/pdf only
    else:
        exp = HTMLExporter(template_name="lab")
    for_the_page(exp)
    if no_input:
        exp.exclude_input = True
        exp.exclude_input_prompt = True
        exp.exclude_output_prompt = True
    return exp


def render(nb_path: Path, out_dir: Path | None = None, kind: str = "pdf", no_input: bool = False) -> Path:
    """Render one executed notebook to ``out_dir/<stem>.pdf`` (or ``.html``)."""
    out_dir = out_dir or nb_path.parent
    nb = _prepare(nb_path, html=kind == "html")
    body, _ = _exporter(kind, no_input).from_notebook_node(nb, resources={"metadata": {"name": nb.metadata["title"]}})
    suffix = "-results" if no_input else ""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{nb_path.stem}{suffix}.{kind}"
    out.write_bytes(body if isinstance(body, bytes) else body.encode())
    return out


def course_pdf(executed: list[Path], out: Path) -> Path:
    """The whole course as one LaTeX book: a title page, linked contents, the chapters with
    page numbers that run on, the chapter in the running head, one bibliography at the end."""
    citations = Citations()
    numbers = {p.stem[:2] for p in executed}
    chapters = [_prepare(p, citations, book=numbers) for p in executed]
    book = nbformat.v4.new_notebook(metadata=chapters[0].metadata)
    for ch in chapters:
        book.cells += ch.cells
    if citations.order:
        refs = "\\chapter*{References}\\addcontentsline{toc}{chapter}{References}\\markboth{References}{}"
        book.cells.append(nbformat.v4.new_raw_cell(refs, metadata={"raw_mimetype": "text/latex"}))
        book.cells.append(nbformat.v4.new_markdown_cell(citations.references(heading="")))
    book.metadata.update(title=BOOK_TITLE, chapters=len(chapters),
                         date="executed " + max(ch.metadata["date"].split("executed ")[-1]
                                                for ch in chapters))
    body, _ = _exporter("pdf", False, BOOK_TEMPLATE).from_notebook_node(
        book, resources={"metadata": {"name": BOOK_TITLE}})
    out.write_bytes(body)
    return out


def render_all(selection: list[str] | None = None, no_input: bool = False, log=print,
               force: bool = False) -> list[Path]:
    """Render the executed notebooks found in ``reports/``; then ``course.pdf`` when all chapters are there.

    A report whose executed notebook (and renderer) did not change since it was written is kept
    as it is (the hashes are in ``reports/cache/``); ``force`` renders everything again.
    """
    from lib.course import cache

    kind = "pdf" if ensure_tex(log) else "html"
    done, chapters, missing = [], [], []
    slot = f"{kind}{'-results' if no_input else ''}_key"
    for nb in catalog.find(selection):
        executed = reports_dir() / f"{nb.stem}.ipynb"
        if not executed.exists():
            missing.append(nb.stem)
            continue
        out = reports_dir() / f"{nb.stem}{'-results' if no_input else ''}.{kind}"
        key = cache.render_inputs(executed, [])
        if not force and out.exists() and cache.load(nb.stem).get(slot) == key:
            log(f"{out.name} is up to date", flush=True)
        else:
            log(f"rendering {executed.name} -> {kind} ...", flush=True)
            out = render(executed, reports_dir(), kind, no_input)
            cache.save(nb.stem, **{slot: key})
        done.append(out)
        chapters.append((nb.number, nb.title, out))
    if missing:
        log(f"not executed yet (run `python -m lib.course run {' '.join(m[:2] for m in missing)}` first): "
            + ", ".join(missing), flush=True)
    if kind == "pdf" and chapters and not selection and not no_input:
        out = reports_dir() / "course.pdf"
        executed = [reports_dir() / f"{nb.stem}.ipynb" for nb in catalog.find(None)
                    if (reports_dir() / f"{nb.stem}.ipynb").exists()]
        key = cache.render_inputs(executed[0], executed[1:])
        if not force and out.exists() and cache.load("course").get("pdf_key") == key:
            log(f"{out.name} is up to date", flush=True)
        else:
            log(f"typesetting the whole course ({len(executed)} chapters) -> {out} ...", flush=True)
            course_pdf(executed, out)
            cache.save("course", pdf_key=key)
            log(f"whole course -> {out}", flush=True)
        done.append(out)
    return done


def pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)


def pdf_images(path: Path) -> int:
    from pypdf import PdfReader

    return sum(len(page.images) for page in PdfReader(path).pages)


def notebook_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
