# Two commands a newcomer needs:  `make demo`  and  `make test`.
# Each installs what it needs on a fresh machine (Python 3.11 + Node 20): a venv with the package and its
# test tools, the pinned Azurite from npm, and checkov in its own venv (its pins clash with the Azure SDKs).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TOOLS  := .venv-tools
PIP    := PIP_DISABLE_PIP_VERSION_CHECK=1 $(BIN)/pip -q

.PHONY: setup vendor demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e '.[dev]'
	touch $@

node_modules/.bin/azurite: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(TOOLS)/bin/checkov:
	$(PYTHON) -m venv $(TOOLS)
	PIP_DISABLE_PIP_VERSION_CHECK=1 $(TOOLS)/bin/pip -q install checkov==3.3.30

# The gallery's two browser libraries, pinned in package.json, copied next to its static files (no CDN).
VENDOR := gallery/static/vendor
$(VENDOR)/.copied: node_modules/.bin/azurite
	mkdir -p $(VENDOR)
	cp node_modules/photoswipe/dist/photoswipe.esm.min.js node_modules/photoswipe/dist/photoswipe-lightbox.esm.min.js \
	   node_modules/photoswipe/dist/photoswipe.css node_modules/justified-layout/dist/justified-layout.min.js $(VENDOR)/
	touch $@

# The browser tests drive Debian's chromium (never a downloaded browser build).
/usr/bin/chromium:
	apt-get update && apt-get install -y chromium chromium-driver

vendor: $(VENDOR)/.copied

setup: $(BIN)/.installed node_modules/.bin/azurite $(VENDOR)/.copied

demo: setup
	$(BIN)/python scripts/demo.py

lint: setup
	$(BIN)/ruff check sync_core agent gallery tests $(wildcard function_app.py) $(wildcard bench)

test: setup $(TOOLS)/bin/checkov /usr/bin/chromium lint
	$(BIN)/python -m pytest -q

bench: setup
	bash bench/install_tools.sh
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) node_modules $(VENDOR) .demo .pytest_cache .ruff_cache
