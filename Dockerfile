# syntax=docker/dockerfile:1
#
# The debitwatch image: one `debitwatch` command, a stream worker by default.
#
#   docker build -t debitwatch:0.1.0 .
#   docker run --rm debitwatch:0.1.0 --help
#   docker run -e DEBITWATCH_BROKER=kafka://broker:9092 debitwatch:0.1.0          # a worker
#   docker run -e DEBITWATCH_BROKER=kafka://broker:9092 debitwatch:0.1.0 topics create
#
# docs/deploy.md explains the image; tests/deploy/test_compose.py parses every command
# below with the CLI's own parser, so a renamed option fails the test suite, not a build.

# --- build: the incident model, then one wheel per package ------------------------------
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel is built from: the package sources and the metadata pyproject names.
COPY pyproject.toml README.md ./
COPY models/ models/
COPY streams/ streams/

# A throwaway install to run the simulator and the trainer; the image gets a fresh one.
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/train \
    && /opt/train/bin/python -m pip install --upgrade pip==26.3 \
    && /opt/train/bin/python -m pip install /src

# The default incident model (docs/incidents.md), exactly as `make model` trains it: the
# same profile, transactions and seed, so the image scores like a checkout does. It is
# trained BEFORE the wheel is built because the wheel carries it as package data
# (pyproject: models = ["data/*.skops"]) and `incident_model = "default"` loads it from
# the installed package. The 200,000-sale history is deleted in the same layer.
RUN history="$(mktemp -d)" \
    && /opt/train/bin/debitwatch simulate --profile default --transactions 200000 \
       --seed 101 -o "$history/history.jsonl" --truth "$history/truth.jsonl" \
    && /opt/train/bin/debitwatch train --from "$history/history.jsonl" \
       -o models/data/incident-model.skops \
    && rm -rf "$history"

# Wheels of debitwatch (now with its model) and of every dependency: the final stage
# installs from these alone, with no compiler and no index.
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m pip install --upgrade pip==26.3 \
    && python -m pip wheel --wheel-dir /wheels /src

# --- the image -----------------------------------------------------------------------------
FROM python:3.11-slim

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/debitwatch/bin:$PATH \
    DEBITWATCH_DATA_DIR=/var/lib/debitwatch/state

# The wheels are bind-mounted from the build stage, so none of them stays in a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/debitwatch \
    && /opt/debitwatch/bin/python -m pip install --no-cache-dir --no-index \
       --find-links=/wheels debitwatch \
    && groupadd --system --gid 10001 debitwatch \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/debitwatch --shell /usr/sbin/nologin debitwatch \
    && mkdir -p /var/lib/debitwatch/state \
    && chown -R 10001:10001 /var/lib/debitwatch

# The worker's local RocksDB state lives in DEBITWATCH_DATA_DIR. No VOLUME on purpose: a
# volume would outlive the container and be shared by nothing, while the changelog topic
# already holds the state; a new container rebuilds it from there (docs/deploy.md).
WORKDIR /var/lib/debitwatch
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

# The worker's HTTP port (Settings.web_port): /metrics, /readyz, /healthz and the API.
EXPOSE 6066

# Ready = every assigned partition's state is restored. No curl in the slim image, so
# python's urllib: an HTTP error (503 while restoring) or no answer raises, exit 1.
# start-period covers loading the model and joining the group; a fresh worker restoring
# a large changelog stays "starting"/"unhealthy" until it has (docs/PERFORMANCE.md).
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DEBITWATCH_WEB_PORT', '6066') + '/readyz', timeout=4)"]

ENTRYPOINT ["debitwatch"]
CMD ["worker"]
