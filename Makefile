# Two commands a newcomer needs: `make tour` and `make test`. Both create .venv on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install tour test lint bench clean

install: $(STAMP)

# Re-installs only when the project's metadata changed; the editable install picks up code edits.
$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found; install Python 3.11 or run 'make PY=python3 ...'"; exit 2; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

tour: install
	$(BIN)/mlcasebook tour --out report

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks

bench: install
	$(BIN)/python benchmarks/recsys_rating.py
	$(BIN)/python benchmarks/recsys_ranking.py

clean:
	rm -rf $(VENV) report .pytest_cache
