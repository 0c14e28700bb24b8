# The two commands of the README. Both create .venv when it is missing and install the project from its own files:
# torch==2.13.0 first (an unpinned torch would pull a multi-GB CUDA build), then the package with its test, video and
# physics extras (MuJoCo renders headless through the system's Mesa EGL: apt-get install libegl1 libgl1-mesa-dri).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PRESET ?= cpu

.PHONY: install test quickstart clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,video,physics]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=15 tests

quickstart: $(STAMP)
	$(PY) examples/quickstart.py --preset $(PRESET)

clean:
	rm -rf $(VENV) build dist src/*.egg-info quickstart_out
