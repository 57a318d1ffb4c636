# Two commands do everything on a fresh machine (see README.md):
#   make demo   create/update the virtualenv, then compile + verify + time ResNet-50 on the emulated device
#   make test   create/update the virtualenv, then run the test suite (what .ci/run calls)
#
# Everything installs into a virtualenv ($(VENV), default .venv/ in the clone, git-ignored), never
# into the interpreter that runs make. The virtualenv is built from requirements-lock.txt, which pins
# every package (transitive ones too) for CPython 3.11 on Linux x86_64; setup.py keeps the loose
# ranges for library users. `make lock` refreshes the lock.
#
# The lock is installed with --no-deps: it is complete, and it leaves out one package on purpose.
# triton (a dependency of the torch wheel, GPU kernels only) segfaults when its native library loads
# into a process that has loaded TensorFlow, which the test suite does; forge_fe runs torch on the
# CPU, where torch does not need triton.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements-lock.txt
STAMP := $(VENV)/.forge_fe-installed
# keras-hub builds the matrix's keras-hub backbones from configs. It is installed without its
# dependencies: its tensorflow-text requirement installs the full `tensorflow` package beside
# tensorflow-cpu, and what config-built backbones import is already in the lock.
KERAS_HUB := keras-hub==0.32.0
PIP_TOOLS := pip-tools==7.6.2

$(STAMP): $(LOCK) setup.py
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; forge_fe's lock is for CPython 3.11 (set PYTHON=/path/to/python3.11)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "make: $(PYTHON) is not CPython 3.11, which $(LOCK) is for"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-virtualenv --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --require-virtualenv --no-deps -e .
	$(PY) -m pip install --quiet --require-virtualenv --no-deps $(KERAS_HUB)
	touch $(STAMP)

deps: $(STAMP)

demo: $(STAMP)
	$(PY) -m forge_fe.tools.cli demo --model resnet50

# The model matrix's push tier (tests/models at reduced sizes, -m push) runs under pytest-xdist, one
# worker per core: its tests are independent, mostly single-threaded compiles (torch.export dominates),
# so on CI's two cores two workers take about half the time. Everything else runs in one process.
test: $(STAMP)
	$(PY) -m pytest -q -m "not nightly and not push and not fuzz"
	$(PY) -m pytest -q -m push -n auto --dist loadgroup tests/models

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-nightly: $(STAMP)
	$(PY) -m pytest -q -m nightly

bench: $(STAMP)
	$(PY) benchmarks/bench_spine.py

# Re-resolve every pin from setup.py's ranges (extras all + test) and write the lock. Run it after
# changing setup.py, then `make test` and commit both files. Existing pins stay; to move them all
# to the newest releases setup.py allows: make lock LOCK_ARGS=--upgrade
# pip-tools lives in a virtualenv of its own, so the project's stays exactly the lock.
LOCK_VENV := .lock-venv
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install --quiet $(PIP_TOOLS); }
	$(LOCK_VENV)/bin/pip-compile --quiet --extra all --extra test --strip-extras --no-emit-find-links \
		--no-emit-index-url --unsafe-package triton --unsafe-package pip --unsafe-package setuptools \
		--unsafe-package distribute $(LOCK_ARGS) -o $(LOCK) setup.py

.PHONY: deps demo test test-fast test-nightly bench lock
