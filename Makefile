# drift-monitor: the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test unit lint services services-down demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml native/Cargo.toml native/Cargo.lock $(wildcard native/src/*.rs)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	bash scripts/native.sh $(PY)
	touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check monitor tests bench

unit: setup
	$(PY) -m pytest -q -m "not integration" --doctest-modules monitor tests

services:
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

test: setup lint services
	$(PY) -m pytest -q -n 2 --dist loadfile --doctest-modules monitor tests

demo: setup services
	$(PY) -m monitor.demo

bench: setup
	$(PY) bench/engine.py
	$(PY) bench/detection.py

clean:
	rm -rf $(VENV) .services
