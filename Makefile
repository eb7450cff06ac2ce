# callerloop: `make run` starts the local stack (DEV_ARGS="--keep" keeps the last run),
# `make test` checks everything,
# `make bench` measures it (BENCH_ARGS="--quick" for a short run; see `python -m bench -h`),
# `make chaos` replays a day while crashing the stack (CHAOS_ARGS="--short --seed 7").
# Both set up a fresh clone first: uv (installed with pip if missing), then `uv sync`.
# `make migration MESSAGE="what changed"` writes the next database migration after a
# model change in callerloop/core/db.py (review it before committing).

.PHONY: setup run test lint bench chaos oracle-deep migration clean

# Never let uv download a Python: use one already on the machine (>= 3.11).
export UV_PYTHON_DOWNLOADS := never

# uv from PATH, else the one pip installs as a module (its binary may not be on PATH).
UV := $(shell command -v uv >/dev/null 2>&1 && echo uv || echo python3 -m uv)
RUN := $(UV) run --frozen

setup:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || { \
		echo "uv not found: installing it with pip (--user)"; \
		python3 -m pip install --user uv \
			|| python3 -m pip install --user --break-system-packages uv; \
	}
	$(UV) sync --frozen

run: setup
	$(RUN) python -m devtools $(DEV_ARGS)

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports --no-cache
	NO_MKDOCS_2_WARNING=1 $(RUN) mkdocs build --strict --site-dir .data/site

# Two xdist workers (one Temporal test server per test module in each); TEST_WORKERS=0
# runs them in one process, PYTEST_ARGS='-m "not slow"' leaves out the slow tier.
TEST_WORKERS ?= 2
test: lint
	$(RUN) pytest -q -n $(TEST_WORKERS) --dist loadscope --durations=15 $(PYTEST_ARGS)

# The outcome oracle's long run: 5,000 schedules in ten batches of 500, each batch on a
# fresh time-skipping server (one server wears out over thousands). ORACLE_SEEDS to vary.
ORACLE_SEEDS ?= 1 2 3 4 5 6 7 8 9 10
oracle-deep: setup
	for seed in $(ORACLE_SEEDS); do \
		ORACLE_N=500 $(RUN) pytest tests/workflows/test_outcome_oracle.py -q -p no:randomly \
			-p no:cacheprovider -o timeout=3600 --hypothesis-seed=$$seed || exit 1; \
	done

bench: setup
	$(RUN) python -m bench $(BENCH_ARGS)

chaos: setup
	$(RUN) python -m chaos $(CHAOS_ARGS)

migration: setup
	@test -n "$(MESSAGE)" || { echo 'usage: make migration MESSAGE="what changed"'; exit 2; }
	$(RUN) callerloop db revision -m "$(MESSAGE)"
	$(RUN) ruff format callerloop/core/migrations/versions
	$(RUN) ruff check --fix callerloop/core/migrations/versions

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -path ./.venv -prune -o -type d -name __pycache__ -exec rm -rf {} +
