# pdm — two commands: `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-install
PYTEST_ARGS ?=

.PHONY: demo test venv sysdeps services lint typecheck bench-store clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "[venv] installing into $(VENV) (torch, tsai, airflow, dash: ~7 GB, a few minutes the first time)"
	$(PY) -m pip install -q --upgrade pip
	# Three steps, as verified on these machines: torch from local disk first,
	# then tsai with its pins, then the rest; a single resolve backtracks badly.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q tsai==1.0.1 fastai==2.8.7 "fastcore>=1.13.2,<2" pyts==0.13.0 jupyter_core traitlets
	$(PY) -m pip install -q apache-airflow==3.3.2 apache-airflow-providers-influxdb apache-airflow-providers-celery "celery[redis]>=5.5,<5.7" psycopg2-binary asyncpg influxdb-client pandas "dash[testing]" plotly
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

# System packages the tests need: a real InfluxDB 1.x server and headless Chromium.
sysdeps:
	@if ! command -v influxd >/dev/null || ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		echo "[sysdeps] apt-get install influxdb chromium chromium-driver"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq influxdb chromium chromium-driver >/dev/null; \
	fi

demo: venv
	$(VENV)/bin/pdmctl demo

# PostgreSQL and Redis for the Celery scale-out test (tests/dags): this machine kind starts them;
# start them again if they stopped. Where neither is installed, that test skips and says why.
services:
	@pg_isready -q -h 127.0.0.1 2>/dev/null || { command -v pg_ctlcluster >/dev/null && \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start; } || true
	@redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || { command -v redis-server >/dev/null && \
		redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
		--dir /var/lib/redis --logfile /var/log/redis/ci.log; } || true

test: venv sysdeps services
	@bash scripts/run-tests.sh $(PY) $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check pdm sensors_sim dags dashboard tests benchmarks

typecheck: venv
	$(VENV)/bin/mypy

bench-store: venv sysdeps
	@bash scripts/with-influxdb.sh $(PY) benchmarks/store_io.py

clean:
	rm -rf pdm-data test-artifacts .pytest_cache
