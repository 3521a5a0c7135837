# Two commands for a fresh machine (each does its own set-up, and only once):
#   make demo   run the pipeline end to end on the bundled sample, offline
#   make test   run the test suite
VENV ?= .venv
BIN := $(VENV)/bin
OFFLINE := HF_HUB_OFFLINE=1 WANDB_MODE=offline HF_HUB_DISABLE_TELEMETRY=1

.PHONY: setup demo test export lock clean-runs

# Creates or updates the environment; returns at once when it is up to date.
setup:
	@bash scripts/setup.sh $(VENV)

# The main job, headless on the embedded defaults: clean the bundled sample, fine-tune the offline
# MiniLM on it, evaluate on the held-out split. Every artefact lands in runs/demo/.
DEMO := runs/demo
PM := $(OFFLINE) $(BIN)/papermill --no-progress-bar --cwd nbs
demo: setup
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(PM) nbs/01_clean.ipynb $(DEMO)/01_clean.ipynb -p target $(CURDIR)/$(DEMO)/dataset
	$(PM) nbs/02_train.ipynb $(DEMO)/02_train.ipynb -p dataset $(CURDIR)/$(DEMO)/dataset -p target $(CURDIR)/$(DEMO)/model \
	  -p output_dir $(CURDIR)/$(DEMO)/checkpoints -p wandb_group demo
	$(PM) nbs/03_eval.ipynb $(DEMO)/03_eval.ipynb -p model $(CURDIR)/$(DEMO)/model -p dataset $(CURDIR)/$(DEMO)/dataset \
	  -p output $(CURDIR)/$(DEMO)/eval/predictions.jsonl -p wandb_group demo
	@$(BIN)/python scripts/summary.py $(DEMO)

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
