# The two front-door commands: `make demo` installs what the demo runs on (rnnkit's runtime
# dependencies) and runs it; `make test` adds the test dependencies into the same .venv, then
# lints and runs every test. Each creates .venv if missing; `make demo` then `make test` installs
# only the difference.
VENV    := .venv
PYTHON  := $(VENV)/bin/python
# One stamp per layer of dependencies: the runtime ones, then the test extra on top.
RUNTIME := $(VENV)/.runtime-installed
STAMP   := $(VENV)/.installed
# torch is pinned here (the CPU build cached on these machines); pyproject keeps a range.
TORCH   := torch==2.13.0
export KERAS_BACKEND := jax

.PHONY: setup demo test lint clean

$(RUNTIME): pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet $(TORCH)
	$(PYTHON) -m pip install --quiet -e .
	# Compile the fused C++ kernels once now (cached in ~/.rnnkit/kernels), not at the first call.
	# Without a working C++ compiler the layers run the plain loop, so setup goes on.
	$(PYTHON) -c "from rnnkit.kernels.fused import compile_kernels; compile_kernels()" \
		|| echo "rnnkit: the fused CPU kernels could not be built (above); layers run the loop"
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(PYTHON) -m pip install --quiet $(TORCH) -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(RUNTIME)
	$(PYTHON) examples/textbook_loop.py
	$(VENV)/bin/rnnkit train charlm --out out/charlm

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test: lint
	$(PYTHON) -m pytest

clean:
	rm -rf $(VENV)
