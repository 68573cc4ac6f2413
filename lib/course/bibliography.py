"""Citations: ``[@key]`` in a chapter's markdown -> a numbered, linked ``[3]`` and a References list.

The chapters cite pandoc style, so that the notebook reads the same in Jupyter and the key says
what is cited::

    The ranking loss of ReDWeb [@xian2018redweb] and its structure-guided sampling
    [@xian2020sgr; @chen2016diw] ...

:class:`Citations` numbers keys in order of first use (one instance per chapter PDF, one for the
whole of ``course.pdf``), turns each group into links, and formats the entries of
``references.bib`` with pybtex's ``unsrt`` style as markdown that pandoc typesets.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

from lib.paths import REPO

BIB = REPO / "references.bib"
KEY = r"[A-Za-z][\w:-]*"
CITE = re.compile(rf"\[(@{KEY}(?:\s*;\s*@{KEY})*)\]")


@functools.lru_cache(maxsize=4)
def _parse(path: str, mtime: float):
    from pybtex.database import parse_file

    return parse_file(path, bib_format="bibtex")


def entries(path: Path = BIB):
    """The parsed ``references.bib`` (pybtex entries by key)."""
    return _parse(str(path), Path(path).stat().st_mtime).entries


def cited_keys(text: str) -> list[str]:
    """Every key cited in ``text``, in order of first use, without repeats."""
    keys: list[str] = []
    for group in CITE.finditer(text):
        for k in re.findall(rf"@({KEY})", group.group(1)):
            if k not in keys:
                keys.append(k)
    return keys


class Citations:
    """Numbers citations in order of first use and writes the References section.

    >>> c = Citations(prefix="ch03-")
    >>> c.link("pairs [@chen2016diw; @xian2018redweb], again [@chen2016diw]")
    'pairs [[1](#ref-ch03-chen2016diw), [2](#ref-ch03-xian2018redweb)], again [[1](#ref-ch03-chen2016diw)]'
    """

    def __init__(self, prefix: str = "", bib: Path = BIB, html: bool = False):
        # html: link targets as HTML elements (nbconvert's HTML export reads markdown with
        # mistune, which has no pandoc spans); otherwise pandoc's [text]{#id}
        self.prefix, self.bib, self.order, self.html = prefix, bib, [], html

    def _anchor(self, key: str) -> str:
        return f"ref-{self.prefix}{key}"

    def link(self, markdown: str) -> str:
        """Replace each ``[@a; @b]`` with ``[[1](#ref-a), [2](#ref-b)]`` (unknown keys raise)."""
        known = entries(self.bib)

        def one(group: re.Match) -> str:
            out = []
            for key in re.findall(rf"@({KEY})", group.group(1)):
                if key not in known:
                    raise KeyError(f"citation [@{key}] is not in {self.bib.name}")
                if key not in self.order:
                    self.order.append(key)
                out.append(f"[{self.order.index(key) + 1}](#{self._anchor(key)})")
            return "[" + ", ".join(out) + "]"

        return CITE.sub(one, markdown)

    def references(self, heading: str = "# References {-}") -> str:
        """The cited entries as a numbered markdown list with link targets ('' when none)."""
        if not self.order:
            return ""
        from pybtex.plugin import find_plugin

        style = find_plugin("pybtex.style.formatting", "unsrt")()
        backend = find_plugin("pybtex.backends", "markdown")()
        known = entries(self.bib)
        formatted = style.format_entries([known[k] for k in self.order])
        if self.html:
            heading = heading.replace(" {-}", "")
        lines = [heading, ""]
        for number, (key, entry) in enumerate(zip(self.order, formatted), 1):
            text = " ".join(entry.text.render(backend).split())
            if self.html:
                lines.append(f'<span id="{self._anchor(key)}">[{number}]</span> {text}\n')
            else:
                lines.append(f"[\\[{number}\\]]{{#{self._anchor(key)}}} {text}\n")
        return "\n".join(lines)
