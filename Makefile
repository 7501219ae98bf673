# One-command set-up, run, test and benchmark on a fresh Debian/Ubuntu machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=
# Extra pytest arguments, e.g. PYTEST_ARGS="-k webrtc" or "--junitxml=report.xml".
PYTEST_ARGS ?=
# The suite runs on 3 workers: the end-to-end tests mostly wait on sockets, timers and
# child processes, so three overlap well even on 2 cores (measured on the 2-core CI
# machine with a busy loop beside: -n 3 about 5 min, -n 2 about 9.5 min; see
# docs/RELIABILITY.md). Each module stays on one worker so its shared server starts
# once; the heavy modules go first (the order tests/conftest.py sets).
XDIST ?= -n 3 --dist loadfile --no-loadscope-reorder

.PHONY: setup system run test test-fast lint bench clean

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
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# The unit tests only (no server, browser or media servers): about a minute.
test-fast: setup
	$(PY) -m pytest -m unit $(XDIST) $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check .

bench: setup
	$(PY) bench/bench_server.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
