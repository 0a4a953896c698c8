# The two commands of the README:
#   make demo   runs examples/quickstart.py (starting an embedded Redis when
#               TICKR_REDIS_URL is unset)
#   make test   installs everything, then runs ruff, mypy and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench compare install system clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'

demo: install
	$(BIN)/python examples/quickstart.py

lint: install
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks

typecheck: install
	$(BIN)/mypy

# Programs the suite runs besides Python, as program:Debian package (curl for
# examples/http_api.sh, Chromium for the dashboard's browser tests): installed with apt
# when missing and run as root, as on CI; elsewhere the tests needing them skip.
SYSTEM_PROGRAMS := curl:curl chromium:chromium chromedriver:chromium-driver

system:
	@missing=""; for pair in $(SYSTEM_PROGRAMS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "missing:$$missing; tests that need them will skip (apt-get install$$missing)"; fi

# The whole suite on one Redis, then the integration and hostile tests again on a
# Redis Cluster and on Sentinel (tests that need one plain Redis are left out there).
TOPOLOGY_TESTS := tests/integration tests/hostile

pytest: install system
	$(BIN)/python -m coverage run -m pytest $(PYTEST_ARGS)
	TICKR_TEST_TOPOLOGY=cluster $(BIN)/python -m coverage run --append -m pytest $(TOPOLOGY_TESTS)
	TICKR_TEST_TOPOLOGY=sentinel $(BIN)/python -m coverage run --append -m pytest $(TOPOLOGY_TESTS)
	$(BIN)/python -m coverage report --fail-under=80

test: lint typecheck pytest

bench: install
	$(BIN)/python benchmarks/bench_tickr.py

# Tickr against arq, saq, taskiq, streaq and a redis-py floor: about 25 minutes;
# rewrites benchmarks/RESULTS.md and benchmarks/results.png.
compare: install
	$(BIN)/python benchmarks/compare.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage
