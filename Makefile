# One entry point for everything; CI runs `make check` (via .ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := fixtures/flows/demo.jsonl

.PHONY: demo check lint types test proto proto-check bench bench-large fixtures golden e2e clean

$(BIN)/flowgen: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## demo: install into .venv; observe the demo capture into a fresh store, show the graph,
## generate policies into out/demo-policies and verify them against the same flows
demo: $(BIN)/flowgen
	rm -rf out/demo-store out/demo-policies
	$(BIN)/flowgen observe --input-file $(DEMO) --store out/demo-store --output text
	$(BIN)/flowgen graph --store out/demo-store
	$(BIN)/flowgen generate -A --default-deny --store out/demo-store --output-dir out/demo-policies --report out/demo-report.md
	$(BIN)/flowgen verify --policies out/demo-policies --store out/demo-store --exit-code

## check: lint, type check, tests and proto drift (what CI runs)
check: lint types proto-check test

lint: $(BIN)/flowgen
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(BIN)/flowgen
	$(BIN)/mypy

test: $(BIN)/flowgen
	$(BIN)/pytest

## proto: regenerate flowgen/_pb from proto/
proto: $(BIN)/flowgen
	$(BIN)/python scripts/genproto.py

proto-check: $(BIN)/flowgen
	$(BIN)/python scripts/genproto.py --check

## fixtures: rewrite the demo and scenario captures from their scripts (review the diff)
fixtures: $(BIN)/flowgen
	$(BIN)/python fixtures/make_demo.py > $(DEMO)
	$(BIN)/python fixtures/make_scenarios.py fixtures/flows/scenarios

## golden: rewrite the expected end-to-end outputs in fixtures/expected and the demo's pull
## request in docs/propose-example.md (review the diff)
golden: $(BIN)/flowgen
	FLOWGEN_UPDATE_GOLDEN=1 $(BIN)/pytest -q tests/test_golden.py tests/test_policies_cli.py::test_demo_policies_match_the_golden_files tests/test_scenarios.py tests/test_propose_body.py::test_the_docs_example_is_what_propose_writes

## bench: ingest, live-stream, observe, generate and Dask benchmarks (under 15 minutes on 2 cores; captures
## and stores are made once under bench/data/); each writes its section of docs/performance.md and the plot
bench: $(BIN)/flowgen
	$(BIN)/python bench/ingest.py --lines 1000000 --write docs/performance.md
	$(BIN)/python bench/observe.py --flows 200000 --write docs/performance.md
	$(BIN)/python bench/aggregate.py --sizes 1000000 --plain 1000000 --json bench/data/observe.json --write docs/performance.md
	$(BIN)/python bench/generate.py --workloads 100,1000,5000 --json bench/data/generate.json --write docs/performance.md
	$(BIN)/python bench/scaling.py --lines 1000000 --write docs/performance.md
	$(BIN)/python bench/plot.py --observe bench/data/observe.json --generate bench/data/generate.json --out docs/performance.png

## bench-large: the observe and generate sections again with 10M flows and 100,000 workloads (about 30 minutes)
bench-large: $(BIN)/flowgen
	$(BIN)/python bench/aggregate.py --sizes 1000000,10000000 --plain 1000000 --json bench/data/observe.json --write docs/performance.md
	$(BIN)/python bench/generate.py --workloads 100,1000,5000,20000,100000 --json bench/data/generate.json --write docs/performance.md
	$(BIN)/python bench/plot.py --observe bench/data/observe.json --generate bench/data/generate.json --out docs/performance.png

## e2e: kind + Cilium + Hubble Relay end-to-end check (skips without docker/kind/helm/kubectl; docs/e2e.md)
e2e: $(BIN)/flowgen
	FLOWGEN=$(BIN)/flowgen bash e2e/run.sh

clean:
	rm -rf $(VENV) bench/data .mypy_cache .pytest_cache .ruff_cache
