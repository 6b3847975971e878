# The README's two commands: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
HOST ?= 127.0.0.1
PORT ?= 8000
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres

.PHONY: install run test test-sqlite test-pg lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Set up, migrate, load the demo ledger (first time only), mint an admin key, serve.
run: $(STAMP)
	$(BIN)/claimledger demo --if-empty
	@key=$$($(BIN)/claimledger keys create --name local-admin --role admin --replace --quiet); \
	echo ""; \
	echo "Claimledger is starting on http://$(HOST):$(PORT) (docs: http://$(HOST):$(PORT)/docs)"; \
	echo "The desk: open http://$(HOST):$(PORT)/ and sign in with this key."; \
	echo "Your admin API key (new each run; the previous local-admin key is revoked):"; \
	echo "  export CLAIMLEDGER_KEY=$$key"; \
	echo "Try:"; \
	echo "  curl -H \"Authorization: Bearer \$$CLAIMLEDGER_KEY\" http://$(HOST):$(PORT)/v1/claims"; \
	echo ""
	$(BIN)/claimledger serve --host $(HOST) --port $(PORT)

## Every test, on SQLite (and on PostgreSQL too when CLAIMLEDGER_TEST_DATABASE_URL is set).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

test-pg: $(STAMP)
	CLAIMLEDGER_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/pytest

## The code is wrapped by hand (ruff format would rewrite most files): lint is ruff's rules.
lint: $(STAMP)
	$(BIN)/ruff check .

# The bench's own tools (Datasette, py-spy) are the `bench` extra, not needed to run or test.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) claimledger.db claimledger.db-wal claimledger.db-shm
