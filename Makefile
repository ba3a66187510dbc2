# The README's two commands: `make demo` (the main job on the embedded default) and `make test` (what CI runs).
# `make test-fast` is the unit tier alone; `make test` runs it, then the integration tier (heareval, hear-validator,
# s3prl, the wheel, gloo): together pytest's default selection (addopts: not gpu and not slow).
PY := .venv/bin/python
UNIT := not gpu and not slow and not integration
INTEGRATION := integration and not gpu and not slow
.PHONY: env demo test test-fast lint docs gpu-test

env:
	@bash scripts/bootstrap.sh

demo: env
	$(PY) -m hear_sela.cli demo --out runs/demo

lint: env
	$(PY) -m ruff check hear_sela upstream tests benchmarks examples scripts
	.venv/bin/lint-imports

# strict: a broken link, a missing page, anchor or snippet fails the build (not --quiet: it hides the warnings that
# strict mode counts, and the build passes)
docs: env
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict -d site

test-fast: lint
	$(PY) -m pytest -q -m "$(UNIT)"

test: lint docs
	$(PY) -m pytest -q -m "$(UNIT)"
	$(PY) -m pytest -q -m "$(INTEGRATION)"

gpu-test: env
	$(PY) -m pytest -q -m gpu
