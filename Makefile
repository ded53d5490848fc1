# The two front-door commands: `make demo` and `make test`. Each creates .venv and installs into it.
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export KERAS_BACKEND := jax

.PHONY: setup demo test lint clean

$(STAMP): pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	# torch is pinned here (the CPU build cached on these machines); pyproject keeps a range.
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e ".[test]"
	# Compile the fused C++ kernels once now (cached in ~/.rnnkit/kernels), not at the first call.
	$(PYTHON) -c "from rnnkit.kernels.fused import compile_kernels; compile_kernels()"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PYTHON) examples/textbook_loop.py
	$(VENV)/bin/rnnkit train charlm --out out/charlm

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test: lint
	$(PYTHON) -m pytest

clean:
	rm -rf $(VENV)
