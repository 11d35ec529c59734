# Every target creates .venv on first use (python3 -m venv + pip install -e ".[dev,gpu]").
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: train test test-all lint format bench reproduce compare clean metaworld

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e ".[dev,gpu]"
	touch $(STAMP)

# Meta-World's own interpreter: metaworld 3.1.1 pins mujoco 3.3.0, this project runs mujoco 4, so
# its envs run in worker processes of a second, small venv (maml_hydra/tasks/meta_world.py).
MW := .venv-metaworld
MW_STAMP := $(MW)/.installed

$(MW_STAMP):
	test -d $(MW) || $(PYTHON) -m venv $(MW)
	$(MW)/bin/pip install --quiet "metaworld==3.1.1" "mujoco==3.3.0" packaging
	touch $(MW_STAMP)

metaworld: $(MW_STAMP)  ## Meta-World's interpreter (.venv-metaworld), for env=metaworld

train: $(STAMP)  ## MAML-TRPO on 2D navigation, a few minutes on a laptop
	$(BIN)/python -m maml_hydra.train $(ARGS)

# Two workers on 2 cores (pytest-xdist), each test file on one worker (its module fixtures once).
XDIST := -n auto --dist loadfile

test: $(STAMP) $(MW_STAMP)  ## the fast suite (no `slow` tests)
	$(BIN)/python -m pytest -m "not slow" $(XDIST) $(ARGS)

test-all: $(STAMP) $(MW_STAMP)
	$(BIN)/python -m pytest $(XDIST) $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check maml_hydra hydra_plugins tests scripts
	$(BIN)/ruff format --check maml_hydra hydra_plugins tests scripts

format: $(STAMP)
	$(BIN)/ruff format maml_hydra hydra_plugins tests scripts
	$(BIN)/ruff check --fix maml_hydra hydra_plugins tests scripts

bench: $(STAMP)
	$(BIN)/python scripts/bench.py

reproduce: $(STAMP)  ## the paper's 2D-navigation table (Table 4)
	bash scripts/reproduce_nav.sh

compare: $(STAMP)  ## MAML vs pretrained vs oracle vs random on 2D navigation, 3 seeds
	bash scripts/compare_nav.sh

clean:
	rm -rf $(VENV) $(MW) .pytest_cache .ruff_cache
