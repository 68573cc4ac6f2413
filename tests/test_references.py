"""references.bib and the citations of the chapters: every key resolves, every entry is complete."""
from __future__ import annotations

import json

import pytest

from lib.course import bibliography
from lib.course.bibliography import Citations
from lib.paths import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((REPO / "solutions").glob("[0-9][0-9]_*.py"))
REQUIRED = ["eigen2014", "lee2019bts", "ranftl2020midas", "ranftl2021dpt", "yang2024depthanything",
            "yang2024depthanythingv2", "xian2018redweb", "xian2020sgr", "chen2016diw", "bell2014iiw",
            "li2024patchfusion", "peng2022bokehme", "isola2017pix2pix", "kingma2014vae",
            "ronneberger2015unet", "shi2016pixelshuffle", "yun2019cutmix", "yang2023unimatch",
            "oquab2023dinov2", "silberman2012nyu", "vasiljevic2019diode", "scharstein2014middlebury"]


def markdown_of(path) -> str:
    if path.suffix == ".py":
        return path.read_text()
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_every_entry_has_authors_title_venue_year_and_a_link():
    entries = bibliography.entries()
    assert set(REQUIRED) <= set(entries), f"missing: {sorted(set(REQUIRED) - set(entries))}"
    for key, e in entries.items():
        f = {k.lower() for k in e.fields}
        assert e.persons.get("author"), f"{key}: no authors"
        assert {"title", "year"} <= f, f"{key}: needs title and year"
        assert f & {"journal", "booktitle", "howpublished"}, f"{key}: no venue"
        assert f & {"doi", "url"}, f"{key}: no DOI or URL"
        assert 1950 < int(e.fields["year"]) <= 2026, f"{key}: year {e.fields['year']}"


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS, ids=lambda p: p.stem)
def test_every_cited_key_is_in_the_bib_file(path):
    cited = bibliography.cited_keys(markdown_of(path))
    missing = [k for k in cited if k not in bibliography.entries()]
    assert not missing, f"{path.name} cites {missing}, which references.bib does not have"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_chapter_cites_its_sources(path):
    assert bibliography.cited_keys(markdown_of(path)), f"{path.name} cites nothing"


def test_citations_are_numbered_in_order_of_first_use_and_linked():
    c = Citations(prefix="x-")
    text = c.link("A [@eigen2014], B [@ranftl2020midas; @eigen2014] and C [@chen2016diw].")
    assert text == ("A [[1](#ref-x-eigen2014)], B [[2](#ref-x-ranftl2020midas), [1](#ref-x-eigen2014)]"
                    " and C [[3](#ref-x-chen2016diw)].")
    refs = c.references()
    lines = [ln for ln in refs.splitlines() if ln.startswith("[\\[")]
    assert [ln.split("]]")[0] for ln in lines] == ["[\\[1\\", "[\\[2\\", "[\\[3\\"]
    assert "{#ref-x-eigen2014}" in lines[0] and "Eigen" in lines[0] and "2014" in lines[0]
    assert "Ranftl" in lines[1] and "10.1109/TPAMI.2020.3019967" in lines[1].replace("\\", "")
    assert c.link("no citation here, nor in an e-mail a@b.c") == "no citation here, nor in an e-mail a@b.c"


def test_an_unknown_key_is_refused_by_name():
    with pytest.raises(KeyError, match="nosuchpaper2099"):
        Citations().link("see [@nosuchpaper2099]")
    assert bibliography.cited_keys("[@a; @b] and [@a]") == ["a", "b"]
