# Two commands on a fresh clone: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-fast lint browser postgres bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, CPU build, so that nothing later pulls a CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The demo gets a folder of its own, made anew each run, so its numbers are its own.
demo: $(STAMP)
	rm -rf .rlops-demo
	$(BIN)/rlops demo --home .rlops-demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

# The dashboard's browser test drives Debian's chromium through Playwright (no browser download): install it
# when it is missing (as root; CI runs as root).
browser:
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium)

# The metadata tests run on SQLite and on PostgreSQL: each session starts Debian's server on a loopback port under a
# temporary folder (tests/pg.py) and stops it at the end. Install the server when it is missing (as root, like
# chromium). RLOPS_REQUIRE_POSTGRES makes a server that cannot start fail the run instead of skipping those tests.
postgres:
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql)

test: lint browser postgres
	RLOPS_REQUIRE_POSTGRES=1 $(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/events.py

clean:
	rm -rf $(VENV) .rlops .rlops-demo .pytest_cache .mypy_cache .ruff_cache .hypothesis
