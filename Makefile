# Two commands for a newcomer:  make repro  |  make test   (both set everything up first)
# The environment lands in .venv/: `source .venv/bin/activate` puts dvc, python and torchrun on PATH.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
RUN := UV_PYTHON_DOWNLOADS=never $(UV) run --frozen
# the columns a reviewer reads in `dvc exp show` (the full table is 500+ columns wide)
EXP_COLUMNS := Experiment|Created|codebooks\.dropout|teachers\..*\.layer|train\.steps|rows\.(all|cb0_1|cb0)\.wer|eer\.cb(0|2_8)\.mean\.cosine\.eer|accuracy$$|valid\.losses\.mel/loss

.PHONY: setup repro test test-fast lint metrics exp-show paper-dry-run

setup: .venv/.setup-done

# re-run setup when the lockfile, the setup script or the pinned weights change
.venv/.setup-done: uv.lock pyproject.toml scripts/setup.sh scripts/fetch_weights.py src/semantic_bridge/models/weights.py
	bash scripts/setup.sh
	touch $@

repro: setup          ## run the DVC pipeline (pulling outputs the remote already has), then push
	$(RUN) dvc repro --pull
	$(RUN) dvc push

lint: setup           ## ruff (part of make test)
	$(RUN) ruff check

test: setup lint      ## lint, then all tests (unit + end-to-end DVC smoke tests)
	$(RUN) pytest

test-fast: setup      ## unit tests only
	$(RUN) pytest -m "not slow"

paper-dry-run: setup  ## every stage on random-weight models of the paper's shapes, on CPU (~22 min, part of CI)
	$(RUN) python benchmarks/paper_dry_run.py

metrics: setup        ## the metrics files, one key per line (KEYS=regex to filter, e.g. KEYS='wer|eer')
	$(RUN) python scripts/show_metrics.py '$(KEYS)'

exp-show: setup       ## experiments side by side, with the columns a reviewer reads
	$(RUN) dvc exp show --only-changed --keep '$(EXP_COLUMNS)' --drop '.*' --precision 3 --md
