# PersonaOps task list. `make help` lists every target; pre-commit and CI call these.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
# ENV_FILE (default `.env`), when there is one, sets every variable the environment does not
# (the environment and the command line win, as in the persona CLI), for every target and
# its commands, and is compose's --env-file. No such file is fine: the defaults are the
# embedded deployment.
ENV_FILE ?= .env
ifneq ($(wildcard $(ENV_FILE)),)
define _NL


endef
$(eval $(subst |NL|,$(_NL),$(shell $(PYTHON) scripts/dotenv_make.py $(ENV_FILE))))
endif
VENV := .venv
VENV_MAGE := .venv-mage
BIN := $(VENV)/bin
MONTH ?= 2025-03
REFERENCE ?=
PYTEST_ARGS ?=
# pytest-xdist workers for `make test`; each test file runs whole on one worker (--dist loadfile).
TEST_WORKERS ?= 2
# `make test` measures the coverage of src/persona (pytest-cov, [tool.coverage] in
# pyproject.toml) and fails below this percentage (a partial run, e.g. PYTEST_ARGS="-k x",
# needs COV_FAIL_UNDER=0).
COV_FAIL_UNDER ?= 84
SPARK_JDBC_JAR ?= /usr/share/java/postgresql.jar
SPARK_INPUT ?= var/spark/respondents
SPARK_OUTPUT ?= var/spark/labels

.PHONY: help venv venv-mage lint format typecheck check test test-fast demo data ingest \
	bootstrap run-month monitor label spark-label spark-monitor spark-deps serve predict governance mlflow-setup mlflow-ui evidently-ui mage up down status \
	engine engine-stop images test-containers \
	tf_init tf_plan tf_apply tf_destroy tf_fmt bench bench-report evaluate-policy clean browser-deps

help: ## List every target with a line of help (colours only on a terminal, never with NO_COLOR)
	@if [ -t 1 ] && [ -z "$${NO_COLOR:-}" ]; then on='\033[36m'; off='\033[0m'; else on=; off=; fi; \
		grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*?## "}; {printf "  %s%-16s%s %s\n", on, $$1, off, $$2}'

$(VENV)/.installed: pyproject.toml requirements/app.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements/app.lock -e ".[dev]"
	@touch $@

venv: $(VENV)/.installed ## Create/refresh the app env .venv (pinned, with dev tools; pyspark comes with spark-deps)

$(VENV_MAGE)/.installed: 02_pipeline/requirements-mage.txt
	@test -x $(VENV_MAGE)/bin/python || $(PYTHON) -m venv $(VENV_MAGE)
	$(VENV_MAGE)/bin/pip install -q --upgrade pip
	$(VENV_MAGE)/bin/pip install -q -r 02_pipeline/requirements-mage.txt
	@touch $@

venv-mage: $(VENV_MAGE)/.installed ## Create/refresh the Mage env .venv-mage (its own pins)

spark-deps: venv ## pyspark (pip extra "spark"), Java 17 and the PostgreSQL JDBC jar (Debian) for the Spark jobs, if missing
	@$(BIN)/python -c "import pyspark" 2>/dev/null || { echo "installing pyspark (the spark extra)"; \
		$(BIN)/pip install -q -c requirements/app.lock -e ".[spark]"; }
	@command -v java >/dev/null || { echo "installing Java 17 (Debian)"; \
		apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless; }
	@test -f $(SPARK_JDBC_JAR) || { echo "installing the PostgreSQL JDBC driver (Debian)"; \
		apt-get update -qq && apt-get install -y -qq libpostgresql-jdbc-java; }

lint: venv ## Ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv ## Ruff format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: venv ## Mypy on src/persona
	$(BIN)/mypy

check: lint typecheck ## Lint + types (what pre-commit runs)

test: venv venv-mage spark-deps browser-deps ## Run the whole test suite (unit, PostgreSQL, MLflow/GCS, gunicorn, Mage, browser, full stack, containers); dockerd is started for it and stopped after
	@rc=0; { bash docker/engine.sh install && bash docker/engine.sh start && \
		bash docker/images.sh && $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--cov --cov-report=term --cov-fail-under=$(COV_FAIL_UNDER) $(PYTEST_ARGS); } || rc=$$?; \
		bash docker/engine.sh stop; exit $$rc

test-containers: venv ## Only the container e2e test (also part of make test): start dockerd, build the images, run it, stop dockerd
	@rc=0; { bash docker/engine.sh install && bash docker/engine.sh start && \
		bash docker/images.sh && $(BIN)/pytest -m containers $(PYTEST_ARGS); } || rc=$$?; \
		bash docker/engine.sh stop; exit $$rc

test-fast: venv spark-deps ## Run the tests that need no Mage env, no browser, no full stack and no Docker
	$(BIN)/pytest -m "not mage and not browser and not containers" $(PYTEST_ARGS)

browser-deps: ## Install Debian's chromium + chromium-driver for the browser test (idempotent)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "browser-deps: chromium and chromedriver are installed"; \
	else \
		echo "browser-deps: installing chromium and chromium-driver (Debian)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver; \
	fi

demo: venv ## The main job: generate Jan-May 2025, run the monthly cycle, serve, summarise (embedded default)
	$(BIN)/python scripts/demo.py

data: venv ## Generate the synthetic 2025 survey months under var/data
	$(BIN)/persona data generate

ingest: venv ## Ingest every generated month into DATABASE_URL
	$(BIN)/persona data ingest var/data

bootstrap: venv ## Register the catalog model (v1) and make it champion
	$(BIN)/persona model bootstrap

run-month: venv ## Run the monthly cycle for MONTH (REFERENCE optional)
	$(BIN)/persona run-month --month $(MONTH) $(if $(REFERENCE),--reference $(REFERENCE))

monitor: venv ## Drift + persona-fit check for MONTH (REFERENCE optional)
	$(BIN)/persona monitor --month $(MONTH) $(if $(REFERENCE),--reference $(REFERENCE))

label: venv ## Label MONTH with the champion model
	$(BIN)/persona label --month $(MONTH)

spark-label: venv spark-deps ## Label the Parquet dataset SPARK_INPUT into SPARK_OUTPUT on Spark (local[2])
	$(BIN)/persona spark label --input $(SPARK_INPUT) --output $(SPARK_OUTPUT)

spark-monitor: venv spark-deps ## Spark monitoring of MONTH in SPARK_INPUT (REFERENCE optional)
	$(BIN)/persona spark monitor --input $(SPARK_INPUT) --month $(MONTH) $(if $(REFERENCE),--reference $(REFERENCE))

serve: venv ## Serve the champion: gunicorn on API_HOST:API_PORT (127.0.0.1:8000)
	$(BIN)/gunicorn -c 03_deployment/gunicorn.conf.py

predict: venv ## Send sample respondents to the running API
	$(BIN)/python 03_deployment/predict_client.py

mlflow-ui: venv ## MLflow UI on MLFLOW_TRACKING_URI (default the embedded store) at http://127.0.0.1:MLFLOW_PORT (5000)
	$(BIN)/mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///var/mlflow.db}" \
		--default-artifact-root "$${MLFLOW_ARTIFACT_ROOT:-var/mlartifacts}" \
		--host 127.0.0.1 --port "$${MLFLOW_PORT:-5000}"

governance: venv ## Governance receiver of MLflow's webhooks on GOVERNANCE_HOST:GOVERNANCE_PORT (127.0.0.1:8010)
	$(BIN)/persona governance serve

mlflow-setup: venv ## As MLflow's admin (MLFLOW_TRACKING_USERNAME/PASSWORD): the platform's identities, grants and webhook
	$(BIN)/persona governance setup-mlflow

evidently-ui: venv ## Evidently UI on the monthly checks (EVIDENTLY_WORKSPACE) at http://127.0.0.1:EVIDENTLY_PORT (8001)
	$(BIN)/python -m persona.monitoring.workspace

mage: venv venv-mage ## Mage UI on MAGE_HOST:MAGE_PORT (127.0.0.1:6789); log in with MAGE_ADMIN_EMAIL / MAGE_ADMIN_PASSWORD
	bash 02_pipeline/start_mage.sh

engine: ## Install (Debian docker.io, compose v2 plugin) and start a Docker engine; idempotent
	bash docker/engine.sh install
	bash docker/engine.sh start

engine-stop: ## Stop the dockerd that `make engine` started (nothing else)
	bash docker/engine.sh stop

images: engine ## Build every image (local Debian base + wheelhouse where Docker Hub is unreachable)
	bash docker/images.sh

# The production stack is docker compose (docs/deployment.md). ENV_FILE (set at the top): its
# settings (a copy of .env.example, whose COMPOSE_FILE/COMPOSE_PROFILES pick the images built
# here by `make images`); each service gets only its own values from it (docs/security.md).
STACK_WAIT_S ?= 900
COMPOSE = docker compose --env-file $(ENV_FILE)

up: ## Start the production stack (docker compose up --wait; `make images` first here)
	@test -f $(ENV_FILE) || { echo "up: no $(ENV_FILE): cp .env.example .env and set its secrets" >&2; exit 2; }
	@missing=$$($(COMPOSE) config --images | grep '^personaops-' | sort -u | \
		while read -r image; do docker image inspect "$$image" >/dev/null 2>&1 || echo "$$image"; done); \
		if [ -n "$$missing" ]; then echo "up: images missing ($$(echo $$missing)): run make images" >&2; exit 2; fi
	$(COMPOSE) up --detach --no-build --wait --wait-timeout $(STACK_WAIT_S)

down: ## Stop the stack; its volumes (database, artifacts, Mage state) are kept
	$(COMPOSE) down

status: ## Show the stack's services, their state and health
	$(COMPOSE) ps --all

tf_init: ## terraform init in 05_iac
	terraform -chdir=05_iac init

tf_plan: ## terraform plan in 05_iac
	terraform -chdir=05_iac plan

tf_apply: ## terraform apply in 05_iac
	terraform -chdir=05_iac apply

tf_destroy: ## terraform destroy in 05_iac
	terraform -chdir=05_iac destroy

tf_fmt: ## terraform fmt -check in 05_iac
	terraform -chdir=05_iac fmt -check -recursive

evaluate-policy: venv ## Print the drift-policy evaluation table (95% intervals; 2000 stable + 100 drift seeds per size)
	$(BIN)/python 04_monitoring/evaluate_policy.py

bench: venv venv-mage spark-deps ## Rerun every benchmark row (long; writes benchmarks/out/, then the table of docs/performance.md)
	@command -v wrk >/dev/null || (echo "installing wrk (Debian) for benchmarks/serving.py" && \
		apt-get update -qq && apt-get install -y -qq wrk)
	for b in ingest batch_labeling labeling_write_cpu spark_label serving training monitoring mage_cycle reliability; do \
		$(BIN)/python benchmarks/$$b.py || exit 1; done
	$(BIN)/python benchmarks/report.py

bench-report: ## Write the headline table of docs/performance.md from benchmarks/out (stale rows marked)
	$(PYTHON) benchmarks/report.py

clean: ## Remove local state (var/) and caches; keeps the envs
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
