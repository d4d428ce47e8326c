# Two commands a newcomer needs: `make tour` and `make test`. Both create .venv on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps tour test lint bench clean

install: $(STAMP) system-deps

# Debian packages some cases drive as real programs (GNU Go: the Go case's opponent and rules referee).
# Installed when missing and we may; otherwise those tests skip with the reason.
GNUGO := /usr/games/gnugo
system-deps:
	@test -x $(GNUGO) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnugo >/dev/null; \
	  else echo "note: GNU Go missing ($(GNUGO)); 'sudo apt-get install gnugo' enables the Go matches"; fi; }

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
