"""The record of an alert state that was not delivered to an endpoint, and will not be.

Written to the webhooks' dead-letter topic (``<app_id>.webhooks.dlq``), keyed by
``alert_id`` so one alert's records stay in order on one partition. It carries the alert
record as published, so an operator can deliver it by other means or replay it
(docs/webhooks.md). ``reason``:

* ``retries_exhausted``: no delivery within the endpoint's ``max_age`` (every answer but
  a 2xx and a 410 is retried until then, 4xx included);
* ``endpoint_disabled``: the endpoint answered 410 Gone (this state or an earlier one).

``refused`` and ``endpoint_removed`` were written by earlier versions and may still be
found in a retained topic; nothing writes them now.
"""

from __future__ import annotations

from typing import Final

import msgspec

from streams.webhooks.backoff import iso
from streams.webhooks.ledger import PendingState

REASONS: Final = ("retries_exhausted", "refused", "endpoint_disabled", "endpoint_removed")
_ENCODER: Final = msgspec.json.Encoder()


class WebhookDeadLetter(msgspec.Struct, kw_only=True):
    """One undeliverable alert state (JSON on the topic; times RFC 3339, UTC)."""

    endpoint: str
    webhook_id: str
    alert_id: str
    status: str
    deadline_passed: bool
    reason: str
    attempts: int
    first_attempt_at: str | None
    last_attempt_at: str | None
    dead_lettered_at: str
    last_error: str | None
    alert: msgspec.Raw


def dead_letter(
    endpoint: str, alert_id: str, state: PendingState, reason: str, error: str | None, now: float
) -> bytes:
    """The JSON of the dead-letter record for ``state``."""
    record = WebhookDeadLetter(
        endpoint=endpoint,
        webhook_id=state.webhook_id,
        alert_id=alert_id,
        status=state.status,
        deadline_passed=state.deadline_passed,
        reason=reason,
        attempts=state.attempts,
        first_attempt_at=None if state.first_attempt is None else iso(state.first_attempt),
        last_attempt_at=None if state.last_attempt is None else iso(state.last_attempt),
        dead_lettered_at=iso(now),
        last_error=error if error is not None else state.last_error,
        alert=msgspec.Raw(state.alert),
    )
    return _ENCODER.encode(record)


DEAD_LETTER_DECODER: Final = msgspec.json.Decoder(WebhookDeadLetter)
