# envtiers.mk: make targets for the three tiers (pip, conda, image) of a Metaflow project.
# Written by `envtiers init`; include it from the project's Makefile (`include envtiers.mk`).
# The envtiers repository's own Makefile includes this very file, so the two cannot drift.
#
# Set any of these before the `include` to change them:
#   ENVTIERS          the envtiers command (default: envtiers, from the active environment)
#   ENVTIERS_DEPS     targets every command here depends on (e.g. a bootstrap of envtiers)
#   ENVTIERS_PYTHON   the interpreter that launches the flow (it needs metaflow and envtiers)
#   ENVTIERS_FLOW     the flow file (default: the first of flow.py, flows/*.py, *_flow.py)
#   ENVTIERS_RUN_DEPS targets `make run` needs first (data, a venv); ENVTIERS_RESUME_DEPS: `make resume`
#   ENVTIERS_AFTER_RUN a command run after `make run` / `make resume`, even when they fail
#   ENVTIERS_REMOTE_HINT more of the message printed when REMOTE=batch lacks its settings
#   TIER=pip|conda|image, RUN_ARGS=... (the flow's own options)
#   REMOTE=batch      every step of `make run` / `make resume` on AWS Batch (`--with batch`); it
#                     needs Metaflow's AWS settings (METAFLOW_BATCH_JOB_QUEUE, ...) in the environment
ENVTIERS ?= envtiers
ENVTIERS_DEPS ?=
ENVTIERS_PYTHON ?= python
ENVTIERS_FLOW ?= $(firstword $(wildcard flow.py flows/*.py *_flow.py))
ENVTIERS_RUN_DEPS ?=
ENVTIERS_RESUME_DEPS ?= $(ENVTIERS_RUN_DEPS)
ENVTIERS_AFTER_RUN ?= true
ENVTIERS_REMOTE_HINT ?=
TIER ?= pip
RUN_ARGS ?=
REMOTE ?=
REMOTE_WITH = $(if $(REMOTE),--with $(REMOTE))
# Metaflow refuses to run as "root" (it names runs after the user): fall back to a neutral name.
METAFLOW_USER ?= $(if $(filter-out root,$(USER)),$(USER),envtiers)
ENVTIERS_FLOW_CMD = USER=$(METAFLOW_USER) $(ENVTIERS_PYTHON) $(ENVTIERS_FLOW) --environment=envtiers-$(TIER)

lock: $(ENVTIERS_DEPS) ## Resolve every lockfile whose inputs changed: pip, then conda (every platform, from any host)
	$(ENVTIERS) lock

relock: $(ENVTIERS_DEPS) ## Re-resolve every lockfile even if nothing changed (keeps current versions when allowed)
	$(ENVTIERS) lock --force

upgrade: $(ENVTIERS_DEPS) ## Re-resolve to the newest versions the specs allow
	$(ENVTIERS) lock --upgrade

check: $(ENVTIERS_DEPS) ## Verify the lockfiles match envs/ (offline, no resolver): what CI runs
	$(ENVTIERS) check

image: $(ENVTIERS_DEPS) ## Build, push and pin the image (REGISTRY=..., BASE_IMAGE=name@sha256:... override)
	$(ENVTIERS) image build $(if $(REGISTRY),--registry $(REGISTRY)) $(if $(BASE_IMAGE),--base-image $(BASE_IMAGE))

env: $(ENVTIERS_DEPS) ## Build (or reuse) this host's environment of TIER=pip|conda from the lock; print its python
	$(ENVTIERS) env create --tier $(TIER)

check-tier:
	@case "$(TIER)" in pip|conda|image) ;; *) echo "TIER must be pip, conda or image (got '$(TIER)')"; exit 2;; esac
	@case "$(REMOTE)" in ""|batch) ;; *) echo "REMOTE must be empty (local) or batch (got '$(REMOTE)')"; exit 2;; esac
	@if [ "$(REMOTE)" = batch ] && [ -z "$${METAFLOW_BATCH_JOB_QUEUE:-}" ]; then \
	  echo "REMOTE=batch needs Metaflow's AWS settings (METAFLOW_BATCH_JOB_QUEUE, METAFLOW_DATASTORE_SYSROOT_S3, ...):"; \
	  echo "  see envtiers' README 'Remote runs (AWS Batch)'$(ENVTIERS_REMOTE_HINT)"; exit 2; fi

run: check-tier $(ENVTIERS_DEPS) $(ENVTIERS_RUN_DEPS) ## Run the flow in the chosen tier (TIER=pip|conda|image, REMOTE=batch, RUN_ARGS=...)
	@$(ENVTIERS_FLOW_CMD) run $(REMOTE_WITH) $(RUN_ARGS) || { status=$$?; $(ENVTIERS_AFTER_RUN); exit $$status; }
	@$(ENVTIERS_AFTER_RUN)

resume: check-tier $(ENVTIERS_DEPS) $(ENVTIERS_RESUME_DEPS) ## Resume the latest run from its failed step (earlier steps are reused; REMOTE=batch too)
	@$(ENVTIERS_FLOW_CMD) resume $(REMOTE_WITH) || { status=$$?; $(ENVTIERS_AFTER_RUN); exit $$status; }
	@$(ENVTIERS_AFTER_RUN)

.PHONY: lock relock upgrade check image env check-tier run resume
