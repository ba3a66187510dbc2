# The README's two commands: `make demo` (the main job on the embedded default) and `make test`.
PY := .venv/bin/python
.PHONY: env demo test lint gpu-test

env:
	@bash scripts/bootstrap.sh

demo: env
	$(PY) -m hear_sela.cli demo --out runs/demo

test: env
	$(PY) -m ruff check hear_sela upstream tests benchmarks examples
	.venv/bin/lint-imports
	$(PY) -m pytest -q

gpu-test: env
	$(PY) -m pytest -q -m gpu
