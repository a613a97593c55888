"""Standard Webhooks signatures (https://www.standardwebhooks.com) and deterministic ids.

Every request carries ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``
(``v1,`` + base64 HMAC-SHA256 of ``"<id>.<timestamp>.<body>"`` with the endpoint's
secret), made by the ``standardwebhooks`` library that receivers verify with.

The id names one *state change* of one alert, so a receiver can de-duplicate on it:

* the same state delivered again (a retry, a worker restart) keeps its id;
* each state change gets its own: ``firing``, the escalation when the regulatory
  deadline passes (``firing`` again with ``deadline_passed``), ``resolved``, and a
  re-fire after a resolution (a new ``detected_at``) or its later resolution (a new
  ``resolved_at``). Without the last two, a receiver de-duplicating on the id would
  drop a genuine second episode of the same alert.

>>> from models.alerts import Kind, Status
>>> webhook_id_of("ud-79afa4b87276ea6aecbda54736d30883", Status.FIRING, False,
...               "2026-11-27T09:21:02Z", None)
'msg_ca069089d2af29d5ef75999ed2f536ff'
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Final

from standardwebhooks import Webhook

from models.alerts import Alert

ID_PREFIX: Final = "msg_"


def webhook_id(alert: Alert) -> str:
    """The ``webhook-id`` of this alert state (same state, same id; see module doc)."""
    return webhook_id_of(
        alert.alert_id,
        str(alert.status),
        alert.deadline_passed,
        alert.detected_at,
        alert.resolved_at,
    )


def webhook_id_of(
    alert_id: str,
    status: str,
    deadline_passed: bool,
    detected_at: str,
    resolved_at: str | None,
) -> str:
    # blake2b as models.alerts.alert_id does; NUL separates fields no id contains.
    material = "\0".join(
        (alert_id, status, "1" if deadline_passed else "0", detected_at, resolved_at or "")
    ).encode()
    return ID_PREFIX + hashlib.blake2b(material, digest_size=16).hexdigest()


class Signer:
    """Signs request bodies for one endpoint's secret (``whsec_...``)."""

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)

    def headers(self, message_id: str, body: bytes, at: float) -> dict[str, str]:
        """The three Standard Webhooks headers for ``body`` sent at Unix time ``at``.

        The timestamp is the attempt's, not the alert's: receivers refuse signatures
        older than five minutes (replay protection), so each retry is signed anew,
        under the same id.
        """
        moment = datetime.fromtimestamp(int(at), tz=UTC)
        signature = self._webhook.sign(message_id, moment, body.decode("utf-8"))
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(at)),
            "webhook-signature": signature,
        }
