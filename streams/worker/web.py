"""The worker's operational endpoints on its web port (Faust's aiohttp server).

``/metrics`` (Prometheus text format, docs/metrics.md), ``/healthz`` (the process
answers) and ``/readyz`` (every assigned partition's state is restored: a worker that
is still reading its changelog answers 503, so a load balancer or Kubernetes waits).
None of them needs the API token: probes and scrapers carry no credentials by
convention, and these pages hold no transaction data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust
from aiohttp.web import Response
from faust import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.metrics import WorkerMetrics


def install_metrics_page(app: faust.App, metrics: WorkerMetrics, ready: Callable[[], bool]) -> None:
    """Add /metrics, /healthz and /readyz to ``app``'s web server."""

    @app.page("/metrics")
    async def metrics_page(self: web.View, request: web.Request) -> Any:
        metrics.ready.set(1 if ready() else 0)
        # aiohttp's Response, as Faust's own Prometheus page does: the exposition
        # format's content type carries parameters that ``content_type=`` refuses.
        return Response(
            body=generate_latest(metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    @app.page("/healthz")
    async def healthz(self: web.View, request: web.Request) -> Any:
        return self.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(self: web.View, request: web.Request) -> Any:
        if ready():
            return self.json({"status": "ready"})
        return self.json(
            {"status": "not ready", "detail": "restoring partition state or rebalancing"},
            status=503,
        )
