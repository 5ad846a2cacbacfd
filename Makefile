# Edge intent-classifier kit. The two commands a newcomer needs (README, Quick start):
#   make demo   build the default bundle if it is missing, then classify with it
#   make test   the whole test suite: Python (pytest) and JavaScript (node --test)
# Both first create .venv with the pinned versions of constraints.txt.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GENERATED := tests/fixtures/generated
WORDPIECE_FIXTURES := $(GENERATED)/wordpiece/manifest.json

.PHONY: demo test test-py test-js test-slow fixtures bench node clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[build,dev,onnx]"
	@touch $@

node:
	@command -v node >/dev/null || { echo "installing Node.js (Debian package)"; apt-get update -qq && apt-get install -y -qq nodejs; }

demo: $(STAMP)
	$(PY) -m builder demo

# Expected ids from the reference tokenizer (Hugging Face tokenizers) for the JavaScript parity tests.
$(WORDPIECE_FIXTURES): $(STAMP) tests/make_wordpiece_fixtures.py models/templates/finance.json
	$(PY) -m builder generate --out $(GENERATED)/finance
	$(PY) tests/make_wordpiece_fixtures.py --out $(GENERATED)/wordpiece --extra $(GENERATED)/finance

fixtures: $(WORDPIECE_FIXTURES)

test-py: $(STAMP) fixtures
	$(PY) -m pytest

test-js: node fixtures
	node --test web/

test: test-py test-js

# Real-model and full-size checks, kept out of `make test` for time.
test-slow: $(STAMP)
	$(PY) -m pytest -m slow

bench: $(STAMP)
	$(PY) -m builder build --if-missing
	$(PY) benchmarks/bench_bow.py
	$(PY) benchmarks/bench_tokenizer.py

clean:
	rm -rf $(GENERATED) models/bundles models/data .pytest_cache
