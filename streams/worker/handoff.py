"""A cheaper message hand-off from Faust's consumer to its streams (faust-streaming 0.15.3).

Faust's fetcher hands each message to the streams with
``await self.wait_first(callback(message), self.suspend_flow.wait())``
(``faust/transport/consumer.py``, ``_drain_messages``). ``mode``'s ``wait_first`` wraps
the callback, the suspend event and the service's stopped and crashed events in four
tasks, waits for the first, then cancels three: four task creations and an
``asyncio.wait`` for every message, about a third of the worker's time when profiled
(docs/PERFORMANCE.md).

While the flow is not suspended, the callback is simply awaited. It only blocks when a
stream's queue is full or Faust's flow control is paused; if a rebalance suspends the
flow meanwhile, the message is delivered once the flow resumes, carrying the old
consumer generation, and Faust's stream drops it (``Stream._c_aiter`` skips messages of
another generation) exactly as it drops the ones the original path abandons. Any other
call (or a suspended flow) takes the original path.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mode.services import WaitResults


def install(consumer: Any) -> None:
    """Give ``consumer`` (an app's ``app.consumer``) the fast hand-off."""
    original = consumer.wait_first
    suspended = consumer.suspend_flow.is_set
    stopped = consumer._stopped.is_set
    crashed = consumer._crashed.is_set

    async def wait_first(*coros: Any, timeout: Any = None) -> WaitResults:
        if (
            len(coros) == 2
            and timeout is None
            and asyncio.iscoroutine(coros[0])
            and asyncio.iscoroutine(coros[1])
            and not (suspended() or stopped() or crashed())
        ):
            coros[1].close()  # the suspend_flow.wait() we are not going to wait for
            result = await coros[0]
            return WaitResults([coros[0]], [result], False)
        results: WaitResults = await original(*coros, timeout=timeout)
        return results

    consumer.wait_first = wait_first
