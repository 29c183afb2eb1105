# Every target sets the machine up on its own first run: a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU wheel of torch; an open range would pull several GB of CUDA packages.
TORCH_PIN := torch==2.13.0
OUT ?= runs/demo

.PHONY: setup test test-fast demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

demo: setup
	$(BIN)/ser-ray demo --out $(OUT)

bench: setup
	$(BIN)/ser-ray bench scan

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
