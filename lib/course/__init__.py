"""The course runner: execute notebooks with papermill, record their numbers, render reports.

From a shell (the Makefile calls these)::

    python -m lib.course run [NN ...] [--profile quick|full|smoke] [-p NAME VALUE ...] [--keep-going]
    python -m lib.course pdf [NN ...] [--no-input]
    python -m lib.course sweep NN -p NAME V1,V2,...

Inside a notebook::

    from lib import course
    course.record(abs_rel=0.11, delta1=0.87)   # stored with the run, gathered in reports/results.md
    course.check("the model beats a flat map", abs_rel < flat, model=abs_rel, flat=flat)
    course.runs_dir()                          # reports/runs/, where checkpoints for later chapters go
"""
from lib.paths import data_dir, notebooks_dir, reports_dir, runs_dir  # noqa: F401
from lib.course.results import check, checked, record, recorded  # noqa: F401
from lib.course.paired import paired_difference, verdict  # noqa: F401
