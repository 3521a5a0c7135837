# Two commands for a fresh machine (each does its own set-up, and only once):
#   make demo   run the pipeline end to end on the bundled sample, offline
#   make test   run the test suite
VENV ?= .venv
BIN := $(VENV)/bin
OFFLINE := HF_HUB_OFFLINE=1 WANDB_MODE=offline HF_HUB_DISABLE_TELEMETRY=1 MPLBACKEND=Agg

.PHONY: setup demo test export lock clean-runs

# Creates or updates the environment; returns at once when it is up to date.
setup:
	@bash scripts/setup.sh $(VENV)

# The main job. It grows with each pipeline step; today it executes the core notebook headless.
demo: setup
	mkdir -p runs/demo
	cd nbs && $(OFFLINE) ../$(BIN)/papermill --cwd . --no-progress-bar 00_core.ipynb ../runs/demo/00_core.ipynb
	@echo "demo: executed notebooks are in runs/demo/"

test: setup
	$(BIN)/python -m pytest

# Regenerate the package from the notebooks and strip notebook metadata (CI checks both leave no diff).
export: setup
	$(BIN)/nbdev-export && $(BIN)/nbdev-clean

# Re-pin requirements/constraints.txt from the current environment (torch is never pinned).
lock: setup
	{ head -2 requirements/constraints.txt; $(BIN)/python -m pip freeze --exclude-editable \
	  | grep -viE '^(torch|nvidia-|triton|cuda-|jupytext|mdit-py-plugins|finetune)'; } > requirements/constraints.tmp
	mv requirements/constraints.tmp requirements/constraints.txt

clean-runs:
	rm -rf runs nbs/runs wandb nbs/wandb
