# blendphot: the two everyday commands.
#   make run   - run the whole workflow on config/config.yaml (embedded mock survey)
#   make test  - run the whole test suite
#   make test-fast - the unit layer only (no Snakemake, no long training): the edit loop
#   make lint  - ruff, snakefmt and snakemake --lint (CI runs it before the tests)
PYTHON ?= python3
VENV   ?= .venv
CORES  ?= all
CONFIG ?= config/config.yaml
# pytest-xdist workers of `make test` (the tests that share a run or a cluster keep to one worker)
TEST_WORKERS ?= 2
BIN    := $(VENV)/bin

.PHONY: run test test-fast lint bench clean-results

$(BIN)/.installed: pyproject.toml envs/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c envs/constraints.txt -e '.[all,test]'
	touch $@

# check-config first: Snakemake's own reading of a broken YAML file names no file and no line.
run: $(BIN)/.installed
	$(BIN)/blendphot check-config --quiet $(CONFIG)
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG) --report-after-run --report results/report.html
	@echo
	@cat results/summary.md
	@echo
	@echo "Figures: results/figures/   Tables: results/evaluate/   Report: results/report.html"
	@echo "Browse the tracked runs with:  $(BIN)/mlflow ui --backend-store-uri sqlite:///results/mlflow/mlflow.db"

test: $(BIN)/.installed
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

# The unit layer: the markers of pyproject.toml's [tool.pytest.ini_options] left out.
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -m "not workflow and not slow and not slurm and not containers and not browser"

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint --dry-run --cores 1
	$(BIN)/python -m blendphot.cli config-reference --check config/README.md

bench: $(BIN)/.installed
	$(BIN)/python bench/bench_blend.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_baseline.py

clean-results:
	rm -rf results .snakemake
