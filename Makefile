# One target per habit. `make run` and `make test` bootstrap everything they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PORT ?= 3000
# The first Python 3.11 or 3.12 on PATH (pgserver ships PostgreSQL wheels for <= 3.12 only).
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .venv-tools
export SAM_CLI_TELEMETRY := 0
export PYTHONPATH := $(CURDIR)/layers/shared:$(CURDIR)

.PHONY: help venv tools run psql inbound dlq redrive guarantees chaos migrate admin test fuzz lint format bench build validate deploy clean

help:
	@echo "make run    start the local stack on http://127.0.0.1:$(PORT) (PORT=... to change)"
	@echo "make test   run the unit, integration and e2e tests"
	@echo "make psql   psql on the local stack's database"
	@echo "make inbound FROM=+... [TO=+...] TEXT=...   a handset texts the running local stack"
	@echo "make dlq    the dead-letter queues and what they hold (STACK=<name> for a deployed stack)"
	@echo "make redrive QUEUE=Send  move a dead-letter queue back to its source (STACK=... likewise)"
	@echo "make admin  USERNAME=... EMAIL=...: create or promote an operator (any database)"
	@echo "make migrate  apply sql/ to DATABASE_URL or the deployed database"
	@echo "make fuzz   schemathesis against the API for FUZZ_SECONDS (default 600) with many examples"
	@echo "make guarantees  break each pipeline guarantee once; a test must catch each"
	@echo "make chaos  two campaigns through the local stack under killed processes and a database restart"
	@echo "make lint   ruff, mypy and cfn-lint"
	@echo "make bench  print performance figures"
	@echo "make build  sam build (needs python3.12)"
	@echo "make validate  sam validate --lint, cfn-lint, and cfn-lint of the translated template"
	@echo "make deploy ENV=dev|prod  sam build && sam deploy"

$(BIN)/.installed: requirements-dev.txt layers/shared/requirements.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or 3.12 is required on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

venv: $(BIN)/.installed

$(TOOLS)/bin/.installed: requirements-tools.txt
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or 3.12 is required on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	@touch $@

tools: $(TOOLS)/bin/.installed

run: venv
	$(BIN)/python -m local run --port $(PORT) $(if $(JSON_LOGS),--json-logs)

psql: venv
	$(BIN)/python -m local psql

# Without STACK: the running local stack. With STACK=<stack name>: its queues in AWS (your credentials).
# A handset texts the running local stack: make inbound FROM=+447700900123 TO=+447700900001 TEXT=HELP
inbound: venv
	@test -n "$(FROM)" -a -n "$(TEXT)" || { echo "usage: make inbound FROM=+E164 [TO=+E164] TEXT=..." >&2; exit 2; }
	$(BIN)/python -m local inbound --from "$(FROM)" $(if $(TO),--to "$(TO)") -- "$(TEXT)"

dlq: venv
	$(if $(STACK),$(BIN)/python -m smsplatform.core.dead_letters --prefix "$(STACK)" list --peek 3,$(BIN)/python -m local dlq)

redrive: venv
	@test -n "$(QUEUE)" || { echo "usage: make redrive QUEUE=Send|Release|Receipts|Callbacks|Import [STACK=...]" >&2; exit 2; }
	$(if $(STACK),$(BIN)/python -m smsplatform.core.dead_letters --prefix "$(STACK)" redrive "$(QUEUE)",$(BIN)/python -m local redrive "$(QUEUE)")

# Against DATABASE_URL, or SMS_DATABASE_SECRET_ARN with AWS credentials (the deployed database).
migrate: venv
	$(BIN)/python -m smsplatform.core.migrations sql

# make admin USERNAME=ops EMAIL=ops@example.com [FUNCTION=<stack's OperatorFunctionName output>]
# (password: SMS_ADMIN_PASSWORD, or asked for). Without FUNCTION: the database DATABASE_URL names.
admin: venv
	@test -n "$(USERNAME)" -a -n "$(EMAIL)" || { echo "usage: make admin USERNAME=... EMAIL=... [FUNCTION=...]" >&2; exit 2; }
	$(BIN)/python -m smsplatform.accounts.admin_cli --username "$(USERNAME)" --email "$(EMAIL)" $(if $(FUNCTION),--function "$(FUNCTION)")

test: venv
	$(BIN)/pytest

# The OpenAPI fuzz test, long and random (make test runs it short and seeded).
FUZZ_SECONDS ?= 600
fuzz: venv
	SMS_FUZZ_EXAMPLES=$${SMS_FUZZ_EXAMPLES:-1000} SMS_FUZZ_SECONDS=$(FUZZ_SECONDS) \
		$(BIN)/pytest -p no:cacheprovider -s tests/integration/test_openapi_fuzz.py

# Two campaigns (20,000 and 5,000) through the local stack while its processes are killed, PostgreSQL
# restarts, batches arrive twice and one campaign is cancelled; CHAOS_RUNS times (bench/chaos.py).
CHAOS_RUNS ?= 1
chaos: venv
	$(BIN)/python -m bench.chaos --runs $(CHAOS_RUNS)

# Breaks each guarantee of the pipeline once and checks a test catches it (about two minutes).
guarantees: venv
	$(BIN)/python tests/guarantees.py

lint: venv tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(TOOLS)/bin/cfn-lint template.yaml

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: venv
	$(BIN)/python -m bench

# sam build needs the Lambda runtime's interpreter itself (python3.12), not a pyenv shim:
# the layer's .pyc files must match the runtime.
PYTHON312 ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1 \
	&& { command -v $$p; break; }; done)

build: tools
	@test -n "$(PYTHON312)" || { echo "error: sam build needs Python 3.12 (the Lambda runtime) on PATH" >&2; exit 1; }
	PATH="$(dir $(PYTHON312)):$$PATH" AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(TOOLS)/bin/sam build

validate: tools
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(TOOLS)/bin/sam validate --lint
	$(TOOLS)/bin/cfn-lint template.yaml
	$(TOOLS)/bin/python .ci/lint_translated_template.py

deploy: build
	$(TOOLS)/bin/sam deploy --config-env $${ENV:-dev}

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache .mypy_cache
