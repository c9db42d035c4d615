# The two commands that matter: `make demo` and `make test`. Both bootstrap everything from a clean clone:
# a pinned uv in .tools/, then the locked environment in .venv/ (uv.lock, --frozen: never re-resolved).
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV_PY := .venv/bin/python
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: demo test lint format up bench clean-state

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

## demo: set everything up and run the main job (rebuild, then replay hours through the whole pipeline)
demo: .venv/.synced
	$(VENV_PY) -m lib.cli demo

## test: set everything up and run the whole test suite
test: .venv/.synced
	$(VENV_PY) -m pytest

## lint: ruff (lint + format check), mypy --strict on lib/ and functions/, and the layer contracts (lint-imports)
lint: .venv/.synced
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports

format: .venv/.synced
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

## clean-state: stop every stack and the embedded database the state folder records, then delete the folder
## (AITRADEX_STATE_DIR, default .aitradex/), secrets included: `aitradex clean-state`
clean-state: .venv/.synced
	$(VENV_PY) -m lib.cli clean-state
