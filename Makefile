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

# The main job, headless on the embedded defaults. It grows with each pipeline step; today:
# 01_clean on the bundled sample, published to runs/demo/dataset.
DEMO := runs/demo
demo: setup
	mkdir -p $(DEMO)
	$(OFFLINE) $(BIN)/papermill --no-progress-bar --cwd nbs nbs/01_clean.ipynb $(DEMO)/01_clean.ipynb \
	  -p target $(CURDIR)/$(DEMO)/dataset -p overwrite True
	@echo; echo "demo: dataset in $(DEMO)/dataset (stats.json, dropped.jsonl), executed notebook $(DEMO)/01_clean.ipynb"
	@$(BIN)/python -c "import json; s = json.load(open('$(DEMO)/dataset/stats.json')); print('splits', s['splits'], '| dropped', s['dropped'])"

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
