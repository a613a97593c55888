"""The worker's consumer asks the broker for the fetch wait of the settings, not
Faust's fixed 1.5 s (streams/worker/fetch_wait.py). The stall it removes is measured by
bench/stream_throughput.py (docs/PERFORMANCE.md, "Idle while behind")."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.settings import Settings
from streams.worker.app import create_app


def _fetch_wait_ms_of_the_worker_consumer(settings: Settings) -> int:
    async def made() -> int:
        app = create_app(settings)
        faust_consumer: Any = app.consumer
        # What Faust's consumer thread runs when it starts (before it connects).
        consumer = faust_consumer._thread._create_worker_consumer(app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    return asyncio.run(made())


@pytest.mark.parametrize(("seconds", "expected_ms"), [(0.05, 50), (0.2, 200), (1.5, 1500)])
def test_the_worker_consumer_fetches_with_the_configured_wait(
    seconds: float, expected_ms: int
) -> None:
    settings = Settings(store="memory", incident_model="none", fetch_max_wait=seconds)
    assert _fetch_wait_ms_of_the_worker_consumer(settings) == expected_ms


def test_the_default_wait_is_short() -> None:
    assert Settings().fetch_max_wait == pytest.approx(0.05)
