# The two commands of the course. Both work on a fresh machine with only python3:
# the first call creates .venv and installs the pinned packages into it.
#   make course   execute every notebook (quick profile) and write reports/*.pdf, course.pdf, results.md,
#                 and the HTML edition reports/site/index.html
#   make test     run the test suite (unit tests, notebook smoke runs, one PDF render)
# Options: make course PROFILE=full (on a GPU), make course NB="02 04" (some chapters only),
#          make course THREADS=1 (on a machine busy with other work),
#          make course FORCE=1 (execute and render again even what is up to date).

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PROFILE ?= quick
NB      ?=
THREADS ?=
PYTEST_ARGS ?=

.PHONY: help course test reports setup tex benchmarks clean
help:
	@echo "make course   execute all notebooks ($(PROFILE) profile) and render reports/*.pdf"
	@echo "make test     run the tests"
	@echo "make setup    only create .venv and install the course"
	@echo "make benchmarks   print the speed and memory numbers"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

tex: $(STAMP)
	-@$(PY) -m lib.course tex

# Execute (keep going past a failing chapter so every report is written), render, then fail if a chapter failed.
course: $(STAMP) tex
	@$(PY) -m lib.course run $(NB) --profile $(PROFILE) --keep-going $(if $(THREADS),--threads $(THREADS)) $(if $(FORCE),--force); status=$$?; \
	  $(PY) -m lib.course pdf $(NB) $(if $(FORCE),--force) && \
	  $(PY) -m lib.course html $(NB) $(if $(FORCE),--force) && exit $$status

reports: $(STAMP)
	$(PY) -m lib.course pdf $(NB)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

benchmarks: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf reports/*.ipynb reports/*.pdf reports/*.html reports/runs reports/sweeps reports/results.md reports/cache reports/solutions reports/site
