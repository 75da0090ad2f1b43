# Every target sets itself up: it installs uv when missing, then the locked environment.
PY ?= python3
UV := $(PY) -m uv

.PHONY: setup demo test lint typecheck pytest clean

setup:
	@$(PY) -m uv --version >/dev/null 2>&1 || $(PY) -m pip install --quiet --disable-pip-version-check uv
	@$(UV) sync --frozen --quiet

demo: setup
	$(UV) run --frozen gateway demo

lint: setup
	$(UV) run --frozen ruff check .

typecheck: setup
	$(UV) run --frozen mypy

pytest: setup
	$(UV) run --frozen pytest

test: lint typecheck pytest

clean:
	rm -rf demo-data .pytest_cache .mypy_cache .ruff_cache
