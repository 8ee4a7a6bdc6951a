# Nephele — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := python3-venv python3-dev gcc pkg-config libvirt-dev libvirt-daemon-system libvirt-daemon-driver-qemu \
	libvirt-clients qemu-system-x86 qemu-utils redis-server chromium busybox-static cpio xz-utils \
	slapd ldap-utils libldap2-dev libsasl2-dev krb5-kdc krb5-admin-server krb5-user libkrb5-dev nftables postgresql rabbitmq-server ipmitool
export PYTHONUNBUFFERED := 1
PORT ?= 8000
# Runs its command with a throwaway PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set.
WITH_SERVICES := $(PY) scripts/test-services.py --

.PHONY: help deps venv run test test-fast screenshots lint bench guest check-deploy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

deps: ## install the Debian packages Nephele needs (as root; skipped when present)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .  # the `nephele` command line
	touch $@

venv: deps $(VENV)/.installed ## create .venv with the pinned requirements

guest: deps ## build the tiny test guest (kernel + busybox initramfs) from Debian packages
	bash scripts/build-test-guest.sh .cache/guest

run: venv ## set up and serve Nephele with demo data on http://127.0.0.1:8000 (PORT=… another port; Ctrl-C stops)
	PORT=$(PORT) $(PY) scripts/run.py

test: venv guest ## the whole suite (unit, Celery/libvirt, QEMU host, browser) on a throwaway PostgreSQL + Redis
	bash scripts/start-libvirtd.sh
	$(WITH_SERVICES) $(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv ## the suite without the integration and browser tiers
	$(WITH_SERVICES) $(PY) -m pytest -m "not integration and not browser" $(PYTEST_ARGS)

screenshots: venv ## regenerate the README's docs/screenshots/vm-list.png (and artifacts/screenshots/)
	$(WITH_SERVICES) $(PY) scripts/screenshots.py

lint: venv ## ruff, mypy on services and drivers, and makemigrations --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) manage.py makemigrations --check --dry-run

check-deploy: venv ## Django's deployment checklist against the production settings
	NEPHELE_SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')" \
	NEPHELE_ALLOWED_HOSTS=cloud.example.org DJANGO_SETTINGS_MODULE=portal.settings_production \
	$(PY) manage.py check --deploy --fail-level WARNING

bench: venv ## print the performance figures (scheduler, deploy latency, monitoring ingest, event fan-out, scale, faults, beside a real Nova)
	$(PY) bench/scheduler.py
	BENCH_RATE=8 $(PY) bench/deploy.py
	BENCH_RATE=0 $(PY) bench/deploy.py
	$(PY) bench/monitoring.py
	$(PY) bench/events.py
	$(PY) bench/scale.py
	$(PY) bench/faults.py
	$(PY) bench/peer_nova.py

clean: ## remove the venv, caches and local state
	rm -rf $(VENV) .cache .run db.sqlite3 staticfiles artifacts
