# Edge intent-classifier kit. The two commands a newcomer needs (README, Quick start):
#   make demo   build the default bundle if it is missing, then serve the demo page on 127.0.0.1:8000
#   make test   the whole test suite: Python (pytest), JavaScript (node --test), browser (Playwright +
#               Chromium), and the browser benchmark's short mode
# Both first install what they need: .venv with the pinned versions of constraints.txt, the npm
# packages of package-lock.json (and micropip's wheel for Pyodide) and, for the tests, Debian's
# Chromium and qemu-user.
#   make dist   the packages people install, into dist/: runtime_py's wheel and sdist
#               (edge-intent-runtime), the builder's (edge-intent-kit) and the npm tarball of web/

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GENERATED := tests/fixtures/generated
WORDPIECE_FIXTURES := $(GENERATED)/wordpiece/manifest.json
RUNTIME_FIXTURES := $(GENERATED)/runtime/manifest.json

NODE_STAMP := node_modules/.installed
CHROMIUM := /usr/bin/chromium
QEMU := /usr/bin/qemu-x86_64

.PHONY: demo dist test test-py test-js test-e2e test-bench test-slow fixtures bench bench-browser node chromium clean

# Two distributions: the runtime (runtime_py/pyproject.toml) and the builder, which requires it.
$(STAMP): pyproject.toml setup.py runtime_py/pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ./runtime_py -e ".[build,serve,dev,onnx]"
	@touch $@

node:
	@command -v node >/dev/null || { echo "installing Node.js (Debian package)"; apt-get update -qq && apt-get install -y -qq nodejs npm; }

# onnxruntime-web, Pyodide and transformers.js, served from our own origin. --ignore-scripts: the
# only install script is onnxruntime-node's binary download (a transformers.js dependency we never run).
# Pyodide from npm has no packages: micropip's wheel comes from PyPI, into node_modules/pyodide/.
$(NODE_STAMP): package.json package-lock.json | node $(STAMP)
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	$(PY) -m builder.serve.wheels
	@touch $@

# Playwright cannot download browsers here: the browser tests drive Debian's Chromium.
chromium: $(CHROMIUM)
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

# qemu-user runs onnxruntime on an emulated AVX2-only CPU (no VNNI): tests/test_int8_cpu.py checks
# that int8 answers do not depend on the CPU, whichever CPU the tests run on.
$(QEMU):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user

demo: $(STAMP) $(NODE_STAMP)
	$(PY) -m builder serve

# Expected ids from the reference tokenizer (Hugging Face tokenizers) for the JavaScript parity tests.
$(WORDPIECE_FIXTURES): $(STAMP) tests/make_wordpiece_fixtures.py models/templates/finance.json
	$(PY) -m builder generate --out $(GENERATED)/finance
	$(PY) tests/make_wordpiece_fixtures.py --out $(GENERATED)/wordpiece --extra $(GENERATED)/finance

# runtime_py's answers on small bundles, for the JavaScript runtime's parity tests (web/runtime.test.js).
$(RUNTIME_FIXTURES): $(STAMP) tests/make_runtime_fixtures.py $(wildcard runtime_py/*.py) $(wildcard builder/*.py builder/*/*.py)
	$(PY) -m tests.make_runtime_fixtures --out $(GENERATED)/runtime

fixtures: $(WORDPIECE_FIXTURES) $(RUNTIME_FIXTURES)

# node_modules too: the server and site tests check the vendored browser runtime.
test-py: $(STAMP) $(NODE_STAMP) $(QEMU) fixtures
	$(PY) -m pytest

test-js: $(NODE_STAMP) fixtures
	node --test web/

# The served demo and the static site in Chromium, on the default bundle (built if missing).
test-e2e: $(STAMP) $(NODE_STAMP) $(CHROMIUM)
	$(PY) -m builder build --if-missing
	$(PY) -m pytest e2e

# The browser benchmark's short mode (a few minutes): every backend once on the default bundle.
# It fails on errors, fallbacks and answers that disagree with runtime_py, never on a timing.
test-bench: $(STAMP) $(NODE_STAMP) $(CHROMIUM)
	$(PY) -m builder build --if-missing
	$(PY) -m builder bench --quick

# SOURCE_DATE_EPOCH: the same sources give the same wheels. `npm pack` writes web/types/ first (tsc).
dist: $(STAMP) $(NODE_STAMP)
	SOURCE_DATE_EPOCH=315532800 $(PY) -m build --no-isolation --outdir dist runtime_py
	SOURCE_DATE_EPOCH=315532800 $(PY) -m build --no-isolation --outdir dist .
	cd web && npm pack --silent --pack-destination ../dist

# The package tests (tests/test_packages.py, e2e/test_packages.py) build and install their own copies.
test: dist test-py test-js test-e2e test-bench

# Real-model and full-size checks, kept out of `make test` for time.
test-slow: $(STAMP)
	$(PY) -m pytest -m slow

bench: $(STAMP)
	$(PY) -m builder build --if-missing
	$(PY) -m benchmarks.bench_bow
	$(PY) -m benchmarks.bench_tokenizer

# The full browser benchmark (tens of minutes): 3 fresh browsers, every backend and variant.
bench-browser: $(STAMP) $(NODE_STAMP) $(CHROMIUM)
	$(PY) -m builder build --if-missing
	$(PY) -m builder bench --json bench.json --markdown bench.md --plot bench.png

clean:
	rm -rf $(GENERATED) models/bundles models/data .pytest_cache web/types
