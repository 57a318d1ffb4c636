# Two commands do everything on a fresh machine (see README.md):
#   make demo   install, then compile + verify + time ResNet-50 on the emulated device
#   make test   install, then run the test suite (what .ci/run calls)
PY ?= python3
STAMP := .deps-installed

$(STAMP): setup.py Makefile
	$(PY) -m pip install --quiet -e ".[all,test]"
	# keras-hub (matrix backbones built from configs) without its dependencies: its tensorflow-text
	# requirement installs the full `tensorflow` package beside tensorflow-cpu, and backbones built
	# from a config need neither that nor kagglehub; what they import comes with [all].
	$(PY) -m pip install --quiet --no-deps keras-hub==0.32.0
	touch $(STAMP)

deps: $(STAMP)

demo: $(STAMP)
	$(PY) -m forge_fe.cli demo --model resnet50

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-nightly: $(STAMP)
	$(PY) -m pytest -q -m nightly

bench: $(STAMP)
	$(PY) benchmarks/bench_spine.py

.PHONY: deps demo test test-fast test-nightly bench
