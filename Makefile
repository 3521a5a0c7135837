# Two commands for a fresh machine (each does its own set-up, and only once):
#   make demo   run the whole pipeline (finetune-nb) on the bundled sample, offline
#   make test   run the test suite
VENV ?= .venv
BIN := $(VENV)/bin
OFFLINE := HF_HUB_OFFLINE=1 WANDB_MODE=offline HF_HUB_DISABLE_TELEMETRY=1

.PHONY: setup demo test docs lab mutants export lock clean-runs

# Creates or updates the environment; returns at once when it is up to date.
setup:
	@bash scripts/setup.sh $(VENV)

# The main job, headless on the embedded defaults: `finetune-nb` checks everything first, then cleans the
# bundled sample, fine-tunes the offline MiniLM on it and evaluates it on the held-out split, executing the
# step notebooks into a new run folder runs/<time>-demo/, and ends on a summary table.
demo: setup
	$(OFFLINE) $(BIN)/finetune-nb --name demo --engine papermill

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The docs site, offline (no Quarto, no network): executes every notebook on its defaults, processes them as nbdev
# does for Quarto, renders them with MkDocs into site/ (open site/index.html), then checks every page in headless
# Chromium (Debian's `chromium`; skipped with a note where it is absent) and saves screenshots in site/_screenshots/.
docs: setup
	$(OFFLINE) $(BIN)/python scripts/docs.py

# The JupyterLab step-through, checked in a real browser: JupyterLab headless on a copy of the project, each step notebook
# (01_clean, 02_train, 03_eval, 04_orchestrate) opened in Chromium, Run All from the menu; no error output, every plot shown,
# progress bars, run folders in the copy's runs/. Screenshots and report.json in build/lab/. (`make test` runs it too.)
lab: setup
	$(OFFLINE) $(BIN)/python scripts/lab.py

# Do the tests catch the bugs they claim to? Realistic bugs planted one at a time in a scratch copy (never this tree), each
# run against the fast tests that guard it; the last line says `N of M mutants killed` (exit 0 only when all are). ~10 min.
mutants: setup
	$(OFFLINE) $(BIN)/python scripts/mutants.py

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
