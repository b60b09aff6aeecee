# Two commands for a newcomer:  make repro  |  make test   (both set everything up first)
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
RUN := UV_PYTHON_DOWNLOADS=never $(UV) run --frozen

.PHONY: setup repro test test-fast

setup: .venv/.setup-done

# re-run setup when the lockfile or the setup script changes
.venv/.setup-done: uv.lock pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

repro: setup          ## run the DVC pipeline (pulling outputs the remote already has), then push
	$(RUN) dvc repro --pull
	$(RUN) dvc push

test: setup           ## all tests (unit + end-to-end DVC smoke tests)
	$(RUN) pytest

test-fast: setup      ## unit tests only
	$(RUN) pytest -m "not slow"
