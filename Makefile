# Two commands work on a fresh machine: `make run` and `make test`. Both set up .venv first.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ARGS ?=

.PHONY: setup run test lint format bench synth clean browser test-ui ui

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

lint: setup
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy

format: setup
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

## Benchmarks: results go to BENCHMARKS.md.
bench: setup
	$(PYTHON) -m bench $(ARGS)

## Synthesize the CDK app with the CDK CLI, as `cdk deploy` would (no AWS credentials needed).
synth: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 \
		npx --yes aws-cdk@2 synth --quiet --no-notices

clean:
	rm -rf .mlops cdk.out .pytest_cache .ruff_cache
