# One-command set-up, run, test and benchmark on a fresh Debian/Ubuntu machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: setup system run test lint bench clean

setup: system $(VENV)/.installed

system:
	@bash scripts/setup-system.sh

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@if $(PY) -m pip show -q opencv-python-headless >/dev/null 2>&1; then \
	  echo "replacing opencv-python-headless by opencv-python (both install cv2/)"; \
	  $(PY) -m pip uninstall -q -y opencv-python-headless opencv-python; fi
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

run: setup
	$(PY) app_mp.py $(ARGS)

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check .

bench: setup
	$(PY) bench/bench_server.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
