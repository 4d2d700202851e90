# Two commands work on a fresh machine: `make run` and `make test`. Both set up .venv first.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
ARGS ?=

.PHONY: setup run test lint format bench synth clean

$(INSTALLED): requirements.txt
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	@touch $@

setup: $(INSTALLED)

## The main job: the whole model-build pipeline, locally, on the sample data.
run: setup
	$(PYTHON) -m pipelines run --local $(ARGS)

## Lint, then every test.
test: setup lint
	$(PYTHON) -m pytest $(ARGS)

lint: setup
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy
	$(VENV)/bin/actionlint -no-color -shellcheck= -pyflakes=

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
