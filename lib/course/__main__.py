"""``python -m lib.course run|pdf|sweep|list`` (see ``lib/course/__init__.py``)."""
from __future__ import annotations

import argparse
import sys

from lib.course import catalog, execute, render


def _overrides(pairs: list[list[str]] | None) -> dict:
    return {name: catalog.parse_value(value) for name, value in (pairs or [])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.course", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="execute notebooks with papermill into reports/")
    r.add_argument("notebooks", nargs="*", help="numbers or names (default: all, in order)")
    r.add_argument("--profile", default="quick", choices=catalog.PROFILES)
    r.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"))
    r.add_argument("--keep-going", action="store_true", help="run the rest after a notebook fails")
    r.add_argument("--threads", type=int, help="CPU threads per notebook (1 on a machine busy with other work)")
    r.add_argument("--force", action="store_true", help="execute even the chapters whose inputs did not change")

    p = sub.add_parser("pdf", help="render executed notebooks to reports/*.pdf and reports/course.pdf")
    p.add_argument("notebooks", nargs="*")
    p.add_argument("--no-input", action="store_true", help="results only: hide the code")
    p.add_argument("--force", action="store_true", help="render even the reports that are up to date")
    p.add_argument("--solutions", action="store_true",
                   help="execute and render the worked solutions (solutions/) to reports/solutions/")

    h = sub.add_parser("html", help="write the HTML edition, reports/site/ (offline, no kernel needed)")
    h.add_argument("notebooks", nargs="*")
    h.add_argument("--force", action="store_true", help="rewrite even the pages that are up to date")

    s = sub.add_parser("sweep", help="one run per value, then a comparison table")
    s.add_argument("notebook")
    s.add_argument("--profile", default="quick", choices=catalog.PROFILES)
    s.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "V1,V2,..."), required=True)
    s.add_argument("--threads", type=int, help="CPU threads per notebook")

    sub.add_parser("list", help="the notebooks and their parameters")
    sub.add_parser("tex", help="install XeLaTeX and pandoc for the PDFs when missing (apt-get, as root)")

    a = ap.parse_args(argv)
    try:
        if a.cmd == "run":
            results = execute.run(a.notebooks, a.profile, _overrides(a.parameter), a.keep_going, threads=a.threads,
                                   force=a.force)
            return 0 if results and all(r.ok for r in results) and len(results) == len(catalog.find(a.notebooks)) else 1
        if a.cmd == "pdf" and a.solutions:
            from lib.course import solutions

            return 0 if solutions.render_solutions(a.notebooks) else 1
        if a.cmd == "pdf":
            return 0 if render.render_all(a.notebooks, a.no_input, force=a.force) else 1
        if a.cmd == "html":
            from lib.course import site

            return 0 if site.build(a.notebooks, force=a.force) is not None else 1
        if a.cmd == "sweep":
            grid = {n: [catalog.parse_value(v) for v in vals.split(",")] for n, vals in a.parameter if "," in vals}
            fixed = {n: catalog.parse_value(v) for n, v in a.parameter if "," not in v}
            if not grid:
                ap.error("sweep needs at least one -p NAME V1,V2,...")
            results, _ = execute.sweep(a.notebook, grid, a.profile, fixed, threads=a.threads)
            return 0 if all(r.ok for r in results) else 1
        if a.cmd == "list":
            for nb in catalog.find(None):
                print(f"{nb.stem}: {nb.title}\n    " + ", ".join(f"{k}={v!r}" for k, v in nb.defaults().items()))
            return 0
        if a.cmd == "tex":
            return 0 if render.ensure_tex() else 1
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
