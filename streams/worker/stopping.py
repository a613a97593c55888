"""Stopping a worker whose durable writes failed: Faust's crash, with a deadline.

``app.crash(error)`` asks Faust to stop the worker; its shutdown then stops the agents,
the consumer and the producer, and can wait a long time on a broker that refuses what
it is flushing (seen: a webhooks changelog refusing records, worker still up after
three minutes on a loaded machine). A worker that cannot make its state durable must
not keep consuming, so if the clean stop has not ended the process within ``grace``
seconds it exits at once, as ``kill -9`` would: nothing was committed past the failed
write, and the next worker restores from the changelog (docs/streaming.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Final

import faust

log = logging.getLogger("debitwatch.worker")

# A distinct exit status for "stopped because Kafka refused a state write" (EX_SOFTWARE).
EXIT_WRITE_FAILED: Final = 70
GRACE_SECONDS: Final = 30.0


def crash_worker(app: faust.App, error: BaseException, grace: float = GRACE_SECONDS) -> Any:
    """Start Faust's crash of ``app`` and arm the hard exit; returns the crash's future."""
    loop = asyncio.get_event_loop()
    loop.call_later(grace, _exit_now, grace)
    return asyncio.ensure_future(app.crash(error))


def _exit_now(grace: float) -> None:
    log.error("the worker did not stop within %.0f s of a failed state write: exiting", grace)
    logging.shutdown()
    os._exit(EXIT_WRITE_FAILED)
