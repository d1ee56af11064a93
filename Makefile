# edgevision — the two commands a newcomer needs: `make test` and `make demo`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist workers; 2 cores here
WORKERS ?= 2

.PHONY: setup test test-all demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch/torchvision first, pinned: pip takes them from the local disk on the reference machines
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	# constraints.txt: the versions tested together, so the resolver has nothing to search
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

test: setup
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -n $(WORKERS) -m "not slow" tests; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

test-all: setup
	$(BIN)/python -m pytest -q -n $(WORKERS) tests

demo: setup
	$(BIN)/edgevision demo

bench: setup
	$(BIN)/python benchmarks/vs_timm.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info
