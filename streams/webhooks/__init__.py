"""Signed webhook delivery of alerts that never loses one (docs/webhooks.md).

``install_webhooks(app, settings)`` adds the sink to the worker's Faust app when an
endpoint is configured. One job per module:

* :mod:`~streams.webhooks.config`: endpoints from ``[[webhooks]]`` or the environment;
* :mod:`~streams.webhooks.signing`: Standard Webhooks headers, deterministic ids;
* :mod:`~streams.webhooks.payloads`: the alert JSON, or a Slack message;
* :mod:`~streams.webhooks.backoff`: which answers retry, and when (pure);
* :mod:`~streams.webhooks.ledger`: the undelivered states, as stored and in memory;
* :mod:`~streams.webhooks.store`: table writes, changelog first;
* :mod:`~streams.webhooks.transport`: one HTTP attempt;
* :mod:`~streams.webhooks.dead_letter`: the record of a state that will not be delivered;
* :mod:`~streams.webhooks.sink`: the Faust agent, table, dispatcher and hooks;
* :mod:`~streams.webhooks.receiver`, :mod:`~streams.webhooks.receiver_cli`:
  ``debitwatch webhook-receiver``, a receiver that verifies signatures.

Nothing heavy is imported here: the CLI imports ``receiver_cli`` for every command.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import faust

    from streams.settings import Settings
    from streams.webhooks.sink import WebhookSink


def install_webhooks(
    app: faust.App, settings: Settings, environ: Mapping[str, str] | None = None
) -> WebhookSink | None:
    """Add the webhook sink to ``app`` if an endpoint is configured (streams/webhooks/sink.py)."""
    from streams.webhooks.sink import install_webhooks as install  # noqa: PLC0415 (Faust)

    return install(app, settings, environ)


__all__ = ["install_webhooks"]
