# The two commands of the README: `make demo` and `make test`.
# Each creates the project-local virtual environment .venv on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test install bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# the pinned CPU torch first, so that nothing pulls a CUDA build
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[test,postgres,onnx,mlflow]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/trainwell demo

# Four stages, each announced, the first failure ending the target: lint, types, the system
# packages of the browser and database tests (installed once, before the test workers start;
# tests/sysdeps.py), the suite. `--dist loadscope` keeps each test module on one worker, so a
# module's shared fixture (the 2-process runs, the reports' runs, Chromium) is built once.
test: $(STAMP)
	@echo "== make test 1/4: ruff check (lint, line length 100) =="
	$(VENV)/bin/ruff check .
	@echo "== make test 2/4: mypy (types of src/trainwell) =="
	$(VENV)/bin/mypy
	@echo "== make test 3/4: system packages (Chromium, PostgreSQL) =="
	$(PY) tests/sysdeps.py
	@echo "== make test 4/4: pytest (2 workers) =="
	$(PY) -m pytest -q -n 2 --dist loadscope

bench: $(STAMP)
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info .pytest_cache .mypy_cache \
		.ruff_cache
