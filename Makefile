# debitwatch — one entry point for setting up, running and checking the project.
#
#   make demo    the live product: local Kafka, two workers, a minute of simulated traffic with
#                alerts shown live, evaluation, clean shutdown (README, first command; needs Java 17+
#                and Maven for the broker; options: make demo DEMO_ARGS="--duration-seconds 120")
#   make demo-offline  simulate traffic, replay it through the detector offline, evaluate
#   make test    lint, type-check and run the whole test suite (README, second command; CI)
#   make model   train the default incident model on simulated normal traffic
#   make bench   throughput and memory benchmarks (writes bench/results/*.json)
#   make bench-stream  stream workers on a local Kafka broker: throughput, alert latency,
#                recovery of 1M open transactions (~1 h; writes bench/results/*.json)
#   make profile instructions per line, stage by stage (needs valgrind)
#
# Everything installs into .venv from PyPI; nothing is installed system-wide.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
OUT    ?= out

DEMO_ARGS ?=
DEMO_TRANSACTIONS ?= 100000
DEMO_SEED ?= 7

# The incident model the workers and replays load by default (docs/incidents.md): trained
# on simulated everyday history (the default profile: ~3 % single-sale anomalies, no
# incidents), deterministic by seed; rebuilt when its code changes. Not committed: a
# model is data built from code.
MODEL       := models/data/incident-model.skops
MODEL_CODE  := models/incidents.py models/incident_state.py models/incident_features.py \
               models/incident_model.py models/incident_model_file.py \
               streams/train.py streams/simulator/profiles.py
MODEL_TRANSACTIONS ?= 200000
MODEL_SEED  ?= 101

.PHONY: install system test-tools kafka-jars model demo demo-offline test lint typecheck unit bench bench-stream profile clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" && command -v $(PYTHON) >/dev/null 2>&1 || { \
	  echo "debitwatch needs Python 3.11: '$(PYTHON)' was not found (set PYTHON=...)" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "debitwatch needs Python 3.11; $(PYTHON) is $$($(PYTHON) --version)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

$(MODEL): $(STAMP) $(MODEL_CODE)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BIN)/debitwatch simulate --profile default --transactions $(MODEL_TRANSACTIONS) \
	  --seed $(MODEL_SEED) -o "$$tmp/history.jsonl" --truth "$$tmp/truth.jsonl" && \
	$(BIN)/debitwatch train --from "$$tmp/history.jsonl" -o $@

model: $(MODEL)

demo: install kafka-jars model
	$(BIN)/debitwatch demo $(DEMO_ARGS)

demo-offline: install model
	@mkdir -p $(OUT)
	$(BIN)/debitwatch simulate --transactions $(DEMO_TRANSACTIONS) --profile default \
	  --seed $(DEMO_SEED) -o $(OUT)/capture.jsonl --truth $(OUT)/truth.jsonl
	$(BIN)/debitwatch replay $(OUT)/capture.jsonl -o $(OUT)/alerts.jsonl \
	  --dlq $(OUT)/dlq.jsonl --show-alerts 5
	$(BIN)/debitwatch evaluate --truth $(OUT)/truth.jsonl $(OUT)/alerts.jsonl \
	  --min-recall 1.0 --min-precision 1.0

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# The integration tests and the demo run a real Kafka broker from the official jars:
# What runs besides Python, from Debian's packages when missing (as root: CI), as
# command:package pairs. The broker's jars need Java 17+ and Maven (demo and tests); the
# tests also run Prometheus (promtool), Alertmanager (amtool), docker-compose (`config`
# needs no engine) on deploy/, Chromium for the triage page, kcat for the runbooks.
KAFKA_TOOLS := java:openjdk-17-jre-headless mvn:maven
TEST_TOOLS  := prometheus:prometheus promtool:prometheus amtool:prometheus-alertmanager \
               prometheus-alertmanager:prometheus-alertmanager \
               docker-compose:docker-compose chromium:chromium kcat:kcat
define debian_tools
	@missing=""; for pair in $(1); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $$(echo $$missing | tr ' ' '\n' | sort -u); \
	  else \
	    echo "debitwatch needs these Debian packages:$$missing (apt-get install ...)" >&2; \
	    exit 1; \
	  fi; \
	fi
endef

system:
	$(call debian_tools,$(KAFKA_TOOLS))

test-tools:
	$(call debian_tools,$(TEST_TOOLS))

kafka-jars: install system
	$(BIN)/python -c "from streams.kafka_local import ensure_jars; print(ensure_jars())"

unit: install test-tools kafka-jars model
	$(BIN)/pytest

test: lint typecheck unit

bench: install model
	$(BIN)/python bench/replay_throughput.py
	$(BIN)/python bench/open_state_memory.py

bench-stream: install model
	$(BIN)/python bench/stream_throughput.py --pyinstrument bench/data/stream_worker_profile.txt
	$(BIN)/python bench/alert_latency.py
	$(BIN)/python bench/recovery.py

profile: install
	$(BIN)/python bench/stage_instructions.py

clean:
	rm -rf $(VENV) $(OUT) $(MODEL) .pytest_cache .mypy_cache .ruff_cache
