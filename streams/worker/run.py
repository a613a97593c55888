"""``debitwatch worker``: run one Faust worker of the app until stopped (SIGTERM/Ctrl-C)."""

from __future__ import annotations

import dataclasses

import faust

from streams import gc_policy
from streams.settings import Settings
from streams.worker.app import create_app


def run_worker(settings: Settings, *, web_port: int | None = None, loglevel: str = "info") -> None:
    """Blocks until the worker stops; Faust handles signals and a clean shutdown."""
    if web_port is not None:
        settings = dataclasses.replace(settings, web_port=web_port)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    # Faust's terminal spinner sets the root logger to DEBUG, so aiokafka builds a debug
    # record for every message it sends (about 17% of the worker's CPU, measured in
    # docs/PERFORMANCE.md), and it writes cursor escape codes into the logs.
    worker.spinner = None
    # Fewer, later garbage collections; what start-up made is never garbage (measured:
    # docs/PERFORMANCE.md, "The garbage collector").
    gc_policy.apply(settings.gc_threshold, freeze=True)
    worker.execute_from_commandline()
