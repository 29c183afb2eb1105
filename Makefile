# Every target sets the machine up on its own first run: a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU wheel of torch; an open range would pull several GB of CUDA packages.
TORCH_PIN := torch==2.13.0
OUT ?= runs/demo
SHOWCASE := reports/demo

.PHONY: setup lint test test-fast demo demo-report bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check ser_ray tests

# Everything: lint, then every test (end-to-end, Ray and cluster tests included).
test: lint
	$(BIN)/python -m pytest

# The edit loop: lint and every test that needs neither Ray nor minutes (about 3.5 minutes here).
test-fast: lint
	$(BIN)/python -m pytest -m "not slow and not ray and not cluster"

demo: setup
	$(BIN)/ser-ray demo --out $(OUT)

# The committed showcase: a fresh full demo, its reports, figures and ledgers (no caches,
# checkpoints or corpus). The old showcase stays until the run ends, so a clean checkout
# reports its commit unmarked.
demo-report: setup
	rm -rf runs/demo-report runs/demo-report-cache
	$(BIN)/ser-ray demo --out runs/demo-report --cache runs/demo-report-cache
	rm -rf $(SHOWCASE)
	mkdir -p $(SHOWCASE)
	cp runs/demo-report/report.md $(SHOWCASE)/
	for study in ablation search; do \
	  mkdir -p $(SHOWCASE)/$$study && \
	  cp -r runs/demo-report/$$study/report.md runs/demo-report/$$study/results.csv \
	        runs/demo-report/$$study/figures runs/demo-report/$$study/study.json \
	        runs/demo-report/$$study/ledger.jsonl $(SHOWCASE)/$$study/; \
	done
	$(BIN)/ser-ray monitor runs/demo-report/search --port 18100 \
	  --screenshot $(SHOWCASE)/monitor.png

bench: setup
	$(BIN)/ser-ray bench scan
	$(BIN)/ser-ray bench features
	$(BIN)/ser-ray bench models
	$(BIN)/ser-ray bench scale
	$(BIN)/ser-ray bench train
	$(BIN)/ser-ray bench search

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
