# Everything runs from the pinned virtual environment in .venv (made by `make setup`).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LAB    ?= lab1
WORKERS ?= 2

.PHONY: setup release demo grade serve test test-fast bench corpus lint clean

# The kernel runtime (course.toml [runtime]: Colab's Python and packages) is built once per machine and pins,
# outside the checkout (`gradekit runtime show` says where); on a machine that has it this is instant.
setup: $(STAMP)
	@$(VENV)/bin/gradekit runtime build

# bubblewrap sandboxes student kernels; as root we install it, otherwise grading runs
# with resource limits only and says so loudly. chromium: the formgrader XSS test loads pages in it.
# postgresql: tests/test_postgres.py starts its own server from Debian's binaries (initdb, pg_ctl).
$(STAMP): requirements.txt pyproject.toml
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null; \
	  else echo "WARNING: bubblewrap is not installed: student code will not be sandboxed"; fi; }
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null; \
	  else echo "WARNING: chromium is not installed: the browser XSS test will be skipped"; fi; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq postgresql) >/dev/null; \
	  else echo "WARNING: postgresql is not installed: the PostgreSQL gradebook test will be skipped"; fi; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	touch $@

release: setup          ## regenerate release/ from source/ with nbgrader
	$(VENV)/bin/gradekit release

demo: setup             ## release the labs and grade a demo class end to end
	$(VENV)/bin/gradekit demo

grade: setup            ## grade submitted/ for LAB into autograded/ and the gradebook
	$(VENV)/bin/gradekit grade $(LAB) --workers $(WORKERS)

serve: setup            ## keep the course's grader warm for `make grade` (stops after 60 idle minutes)
	$(VENV)/bin/gradekit serve --detach --workers $(WORKERS)

test: setup lint        ## lint, then the whole test suite (what .ci/run runs)
	$(PY) -m pytest -n 2 --dist loadgroup -q --durations=25

test-fast: setup        ## the test suite without the slow tests (notebooks, nbgrader end to end)
	$(PY) -m pytest -n 2 --dist loadgroup -q -m "not slow"

bench: setup            ## our grader vs plain nbgrader autograde, side by side
	$(VENV)/bin/gradekit bench

corpus: setup           ## grade the wheat/chaff corpora and print the kill table
	$(VENV)/bin/gradekit corpus

# Both checks always run (one failing does not hide the other's report); lint fails if either does.
lint: setup             ## ruff, and the layering contracts in pyproject.toml [tool.importlinter]
	@status=0; \
	echo "$(VENV)/bin/ruff check ."; $(VENV)/bin/ruff check . || status=1; \
	echo "$(VENV)/bin/lint-imports"; $(VENV)/bin/lint-imports || status=1; \
	exit $$status

clean:
	rm -rf build autograded submitted feedback reports gradebook.db
