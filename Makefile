# envtiers: reproducible environments in tiers for the detector flow.
# Only python3 and make are assumed; everything else is installed from the lockfiles.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
TIER ?= pip
# REMOTE=batch: every step of make run / make resume runs on AWS Batch (--with batch), with the
# Metaflow settings from the environment (README: Remote runs). Empty: everything runs here.
REMOTE ?=
TOOLS := .tools
VENV := .venv
# envtiers runs from the source tree on the bootstrap interpreter (uv, packaging, and py-rattler +
# conda-lock for the conda tier: all from the hashed lockfiles/tools.txt).
ENVTIERS := PYTHONPATH=$(CURDIR) $(TOOLS)/bin/python -m envtiers
PYTEST_ARGS ?=
# make run: the flow's options (see `python flows/detector_flow.py run --help`).
RUN_ARGS ?= --model-config test --wandb-mode offline
# make app: where the page listens, and its options (--run ID, --endpoint URL, --model-dir DIR).
APP_HOST ?= 127.0.0.1
APP_PORT ?= 8501
APP_ARGS ?=
# Metaflow refuses to run as "root" (it names runs after the user): fall back to a neutral name.
METAFLOW_USER := $(if $(filter-out root,$(USER)),$(USER),envtiers)

# lock, relock, upgrade, check, image, env, run and resume come from the same envtiers.mk that
# `envtiers init` writes into other projects (envtiers/scaffold/templates/envtiers.mk): this
# repository is configured through its variables only, so the two cannot drift.
ENVTIERS_DEPS := tools
# VERBOSE=1 keeps TensorFlow's start-up lines (cuInit, oneDNN, absl), which detector.quiet drops.
ENVTIERS_PYTHON := PYTHONPATH=$(CURDIR) TF_CPP_MIN_LOG_LEVEL=$(if $(VERBOSE),0,3) DETECTOR_VERBOSE=$(VERBOSE) $(VENV)/bin/python
ENVTIERS_FLOW := flows/detector_flow.py
ENVTIERS_RUN_DEPS := venv sample
ENVTIERS_RESUME_DEPS := venv
ENVTIERS_AFTER_RUN := USER=$(METAFLOW_USER) $(VENV)/bin/python flows/show_run.py
ENVTIERS_REMOTE_HINT := ; on this machine: eval "$$(.ci/docker-up)"; eval "$$(.ci/aws-up)"
# REMOTE=batch: a Batch task cannot read this machine's data/sample, so unless RUN_ARGS names its
# own --data, make run uploads the sample to S3 (next to Metaflow's data root) and passes that URL.
SAMPLE_URL ?= $(or $(METAFLOW_DATATOOLS_S3ROOT),$(METAFLOW_DATASTORE_SYSROOT_S3)/data)/detector-sample/
ifeq ($(REMOTE),batch)
ifeq ($(findstring --data,$(RUN_ARGS)),)
override RUN_ARGS += --data $(SAMPLE_URL)
ENVTIERS_RUN_DEPS += sample-upload
endif
endif
include envtiers/scaffold/templates/envtiers.mk

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables: TIER=pip|conda|image, REMOTE=batch (make run/resume), PYTEST_ARGS=... (make test)"

$(TOOLS)/.ok: lockfiles/tools.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "envtiers needs Python >= 3.11 as $(PYTHON) (set PYTHON=/path/to/python3.11)"; exit 2; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "$(PYTHON) has no venv/ensurepip module: on Debian/Ubuntu run 'apt-get install python3-venv'"; exit 2; }
	rm -rf $(TOOLS)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r lockfiles/tools.txt
	touch $@

tools: $(TOOLS)/.ok ## Bootstrap uv, py-rattler and conda-lock into .tools/ (from the hashed lockfiles/tools.txt)

venv: tools ## Build .venv from the host's runtime + dev locks (a no-op when they are unchanged)
	@$(ENVTIERS) env create --tier pip --dev --target $(VENV) --link-project >/dev/null

audit: tools ## Known vulnerabilities in every lock, offline ([audit] db; AUDIT_ARGS="--service osv" asks OSV)
	$(ENVTIERS) audit $(AUDIT_ARGS)

test: venv ## Run the test suite (sets itself up first)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: venv ## ruff + mypy + hadolint (docker/Dockerfile, the environment image recipe)
	$(VENV)/bin/ruff check envtiers detector flows metaflow_extensions tests bench
	$(VENV)/bin/ruff format --check envtiers detector flows metaflow_extensions tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint docker/Dockerfile envtiers/image/env.Dockerfile

bench: venv ## Run the benchmarks; writes bench/results/*.json and *.md
	$(VENV)/bin/python -m bench

sample: venv ## Generate the synthetic PlantDoc-layout sample dataset in data/sample (once)
	@test -f data/sample/train_labels.csv || $(VENV)/bin/python -m detector sample

sample-upload: sample ## Upload data/sample to SAMPLE_URL (make run REMOTE=batch does, when RUN_ARGS has no --data)
	@USER=$(METAFLOW_USER) $(VENV)/bin/python -m detector upload data/sample $(SAMPLE_URL)

dist: venv ## Build the envtiers wheel (the toolkit and its Metaflow extension, not detector/) into dist/
	$(VENV)/bin/python -m build --wheel --no-isolation --outdir dist .
	rm -rf build/lib build/bdist.* envtiers.egg-info

data: venv ## Download the real PlantDoc dataset (GitHub archive at a pinned commit, CC BY 4.0) into data/plantdoc
	$(VENV)/bin/python -m detector fetch plantdoc --out data/plantdoc

app: venv ## Serve the front end (Streamlit) on http://$(APP_HOST):$(APP_PORT): latest run by default (after make run); APP_ARGS=...
	@PYTHONPATH=$(CURDIR) USER=$(METAFLOW_USER) TF_CPP_MIN_LOG_LEVEL=2 \
	  $(VENV)/bin/python -m detector app --host $(APP_HOST) --port $(APP_PORT) $(APP_ARGS)

clean: ## Remove .tools/ and .venv/ (the envtiers cache in ~/.cache/envtiers stays)
	rm -rf $(TOOLS) $(VENV)

.PHONY: help tools venv audit test lint bench sample sample-upload data dist app clean
