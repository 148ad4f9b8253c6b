# streamscore — every routine task. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY_VERSION   ?= 3.13
VENV         ?= .venv
CHECKOV_VENV ?= .venv-checkov
AWS_REGION   ?= us-east-1
STAMP        := $(VENV)/.installed
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
BIN          := $(abspath $(VENV))/bin
# sam build looks for python3.13 on PATH: the venv provides it.
export PATH := $(BIN):$(PATH)
export AWS_DEFAULT_REGION ?= $(AWS_REGION)
export SAM_CLI_TELEMETRY := 0

# Find a Python $(PY_VERSION): on PATH (a pyenv shim only counts if it runs),
# then pyenv's versions, then uv. PYTHON=/path/to/python3.13 overrides.
define WRITE_ROOTS_PTH
import pathlib, sysconfig, tomllib
root = pathlib.Path.cwd()
roots = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mypy"]["mypy_path"]
pth = pathlib.Path(sysconfig.get_paths()["purelib"]) / "streamscore-import-roots.pth"
pth.write_text("".join(f"{root / r}\n" for r in roots))
print(f"import roots {', '.join(roots)} -> {pth}")
endef
export WRITE_ROOTS_PTH

define find_python
for c in "$(PYTHON)" "python$(PY_VERSION)" \
         $$(ls -d "$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)"/versions/$(PY_VERSION)*/bin/python$(PY_VERSION) 2>/dev/null | sort -V -r) \
         "$$(uv python find $(PY_VERSION) 2>/dev/null)"; do \
  [ -n "$$c" ] || continue; \
  if v=$$("$$c" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) && [ "$$v" = "$(PY_VERSION)" ]; then \
    echo "$$c"; exit 0; fi; \
done; exit 1
endef

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

.PHONY: python
python: ## Show which Python $(PY_VERSION) the environment is built with
	@($(find_python)) || { echo "error: Python $(PY_VERSION) not found (the Lambda runtime is python$(PY_VERSION))." >&2; \
	  echo "Install it with one of:  pyenv install $(PY_VERSION)  |  uv python install $(PY_VERSION)  |  apt/brew install python$(PY_VERSION)" >&2; \
	  echo "or point to it:  make PYTHON=/path/to/python$(PY_VERSION) ..." >&2; exit 1; }

$(STAMP): requirements/dev.txt functions/requirements.txt layers/onnxruntime/requirements.txt pyproject.toml
	@py=$$($(find_python)) || { $(MAKE) --no-print-directory python; exit 1; }; \
	if [ ! -x $(VENV)/bin/python ] || [ "$$($(VENV)/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "$(PY_VERSION)" ]; then \
	  echo "creating $(VENV) with $$py"; rm -rf $(VENV); "$$py" -m venv $(VENV); fi
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	cd requirements && $(BIN)/python -m pip install --quiet -r dev.txt
	@# The import roots (functions/ as Lambda's task root, local/, models/) are declared once,
	@# as mypy_path in pyproject.toml; a .pth file puts them on the venv's sys.path for every
	@# tool and subprocess (pytest, python -m local, python -m bench, the moto server).
	$(BIN)/python -c "$$WRITE_ROOTS_PTH"
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create .venv (Python 3.13) with the pinned dev requirements; no-op when up to date

$(CHECKOV_STAMP): requirements/checkov.txt
	@py=$$($(find_python)) || { $(MAKE) --no-print-directory python; exit 1; }; \
	[ -x $(CHECKOV_VENV)/bin/python ] || "$$py" -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements/checkov.txt
	@touch $@

.PHONY: checkov-venv
checkov-venv: $(CHECKOV_STAMP) ## Create .venv-checkov (checkov conflicts with aws-sam-cli)

.PHONY: test
test: $(STAMP) $(CHECKOV_STAMP) ## Set up everything, then run the whole test suite
	$(BIN)/python -m pytest

.PHONY: lint
lint: $(STAMP) ## ruff lint + format check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy functions local models bench

.PHONY: format
format: $(STAMP) ## Format and auto-fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# ---- template, build, deploy (owner: template) ------------------------------
# checkov and `sam validate --lint` run offline: no mapping download, no update check,
# dummy credentials (nothing is called with them).
CHECKOV_ENV    := BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=TRUE
OFFLINE_AWS_ENV := AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing

.PHONY: validate
validate: $(STAMP) ## cfn-lint and `sam validate --lint` of template.yaml (offline)
	$(BIN)/cfn-lint template.yaml
	$(OFFLINE_AWS_ENV) $(BIN)/sam validate --lint --region $(AWS_REGION)

.PHONY: checkov
checkov: $(CHECKOV_STAMP) ## Security checks of template.yaml with checkov (offline; skips are justified in the template)
	$(CHECKOV_ENV) $(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --skip-download --quiet --compact

# sam build reads [default.build.parameters] and [default.global.parameters] of samconfig.toml,
# sam deploy [default.deploy.parameters] and the global table: build refuses when they would
# resolve a template parameter that changes the build (Architecture) differently.
.PHONY: check-samconfig
check-samconfig: $(STAMP) ## Refuse when sam build and sam deploy would read different Architecture (or other build parameters) from samconfig.toml
	$(BIN)/python -m embedded.samconfig

.PHONY: build
build: $(STAMP) check-samconfig ## sam build: functions, OnnxRuntimeLayer and ModelLayer (needs `make model` first) into .aws-sam/
	$(BIN)/sam build --parallel --cached

.PHONY: deploy
deploy: build ## sam deploy with samconfig.toml (first time: `sam deploy --guided` to pick stack name, region, parameters)
	$(BIN)/sam deploy

.PHONY: clean-build
clean-build: ## Remove the sam build output (.aws-sam/)
	rm -rf .aws-sam

# ---- simulator and model (owner: model) -------------------------------------

MODEL_SEED ?= 20260302
MODEL_ARTIFACTS := models/artifacts

.PHONY: model
model: $(STAMP) ## Simulate, train, export ONNX (parity-checked); writes models/artifacts
	$(BIN)/python -m training --seed $(MODEL_SEED) --out $(MODEL_ARTIFACTS)

.PHONY: model-check
model-check: $(STAMP) ## Retrain into a temp dir and cmp with the committed models/artifacts
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(BIN)/python -m training --seed $(MODEL_SEED) --out "$$tmp" --quiet || exit 1; \
	for f in model.onnx model_card.json baseline.json; do \
	  cmp "$$tmp/$$f" $(MODEL_ARTIFACTS)/$$f || { echo "$(MODEL_ARTIFACTS)/$$f differs from a fresh training run (make model, then commit)" >&2; exit 1; }; \
	done; echo "$(MODEL_ARTIFACTS) reproduces byte for byte"


# ---- events, handlers, local run -------------------------------------------
.PHONY: events
events: $(STAMP) ## Regenerate the sample events in events/ from the simulator
	$(BIN)/python -m embedded.sample_events --out events

# The local run: moto in a subprocess on 127.0.0.1, template.yaml deployed into it, the handlers
# in-process behind an emulator of the event-source mappings. No Docker, no AWS account.
RUN_ARGS ?=
.PHONY: demo
demo: $(STAMP) ## Run the whole pipeline locally (20,000 simulated transactions), print the summary; drift picture in out/
	$(BIN)/python -m local run

.PHONY: closed-loop
CLOSED_LOOP_SCENARIO ?= channel-shift
closed-loop: $(STAMP) ## The whole loop in simulated time: drift, the runner's wait, retrain, shadow, promotion (~1 h; out/closed-loop.png; CLOSED_LOOP_SCENARIO=new-fraud-pattern)
	$(BIN)/python -m local run --scenario $(CLOSED_LOOP_SCENARIO) --closed-loop --json out/closed-loop.json $(RUN_ARGS)

.PHONY: run
run: $(STAMP) ## The local run with options, e.g. make run RUN_ARGS="--scenario channel-shift --json out/summary.json"
	$(BIN)/python -m local run $(RUN_ARGS)

# `sam local invoke` runs the built functions in Docker (Lambda's image) with events/; their AWS
# calls go wherever the environment points them (SAM_INVOKE_ARGS="--env-vars env.json ...").
SAM_INVOKE_ARGS ?=
.PHONY: invoke-preprocess
invoke-preprocess: build ## sam local invoke PreprocessFunction with events/preprocess_transactions.json (needs Docker)
	$(BIN)/sam local invoke PreprocessFunction -e events/preprocess_transactions.json $(SAM_INVOKE_ARGS)

.PHONY: invoke-score
invoke-score: build ## sam local invoke ScoreFunction with events/score_features.json (needs Docker)
	$(BIN)/sam local invoke ScoreFunction -e events/score_features.json $(SAM_INVOKE_ARGS)

.PHONY: invoke-drift
invoke-drift: build ## sam local invoke DriftCheckFunction with events/drift_check_scheduled.json (needs Docker)
	$(BIN)/sam local invoke DriftCheckFunction -e events/drift_check_scheduled.json $(SAM_INVOKE_ARGS)

# Benchmarks: about 5-7 minutes on 2 cores. Writes bench/results/latest.json (the previous run
# kept as previous.json) and docs/PERFORMANCE.md, and prints the change of every figure.
BENCH_ARGS ?=
.PHONY: bench
bench: $(STAMP) ## Benchmarks: CPU per record, cold start, AWS calls, capacity, cost; BENCH_ARGS="--quick" for a smoke run
	$(BIN)/python -m bench $(BENCH_ARGS)

# Pipeline fuzz tests (tests/integration/test_pipeline_fuzz.py): both handlers on moto behind a
# model of the event-source mappings, with injected AWS faults and replays. `make test` runs them
# with a few dozen examples each; this explores FUZZ_EXAMPLES per test and shrinks what fails.
FUZZ_EXAMPLES ?= 2000
.PHONY: fuzz
test-build: $(STAMP) ## Build x86_64 and arm64 with sam build and check every native file's instruction set (~2 min)
	SAM_BUILD_TESTS=1 $(BIN)/python -m pytest tests/e2e/test_sam_build_arm64.py -q

fuzz: $(STAMP) ## Pipeline fuzz tests with a big budget (FUZZ_EXAMPLES per test, default 2000; hours)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/integration/test_pipeline_fuzz.py -q -p no:cacheprovider
