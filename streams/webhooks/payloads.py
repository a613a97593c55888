"""Request bodies: the alert JSON as published (CONTRACT §2), or a Slack message.

``alert``: the bytes of the alerts-topic record, untouched, so a receiver reads exactly
what ``debitwatch alerts export`` would give it (one alert state, CONTRACT §2 fields).

``slack``: a Slack incoming-webhook message, ``text`` (the notification's fallback)
and ``blocks``. It names the terminal, merchant, amounts, money at risk, cause and the
support agent's explanation; not the card token: chat channels are read more widely
than the case system. Alerts carry no card number at all (CONTRACT §6).

>>> from models.alerts import Alert
>>> alert = Alert(alert_id="ud-1", kind="unmatched_debit", status="firing",
...     terminal_id="T-1", merchant_id="M-1", stan="000101",
...     transmitted_at="2026-11-27T09:00:00Z", card_token="tok_x", currency="INR",
...     terminal_amount_minor=125000, issuer_amount_minor=125000, at_risk_minor=125000,
...     evidence=[], detected_at="2026-11-27T09:06:01Z", explanation="Money taken.",
...     probable_cause="network_failure", severity="high", score=0.8)
>>> slack_message(alert)["text"]
'FIRING high unmatched_debit: terminal T-1, 1250.00 INR at risk'
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from models import currencies
from models.alerts import Alert, Status
from models.final_states import ALERT_DECODER

_ENCODER: Final = msgspec.json.Encoder()
_EMOJI: Final = {
    "critical": ":rotating_light:",
    "high": ":red_circle:",
    "medium": ":large_orange_circle:",
}


def body(format_name: str, raw: bytes) -> bytes:
    """The request body for ``format_name`` (``alert`` or ``slack``) of an alert record."""
    if format_name == "alert":
        return raw
    return _ENCODER.encode(slack_message(ALERT_DECODER.decode(raw)))


def slack_message(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook payload (``text`` + Block Kit ``blocks``) for ``alert``."""
    where = (
        f"terminal {alert.terminal_id}" if alert.terminal_id else f"merchant {alert.merchant_id}"
    )
    currency = alert.currency
    at_risk = _money(alert.at_risk_minor, currency)
    status = "ESCALATED" if alert.deadline_passed else str(alert.status).upper()
    summary = f"{status} {alert.severity} {alert.kind}: {where}"
    if alert.at_risk_minor:
        summary += f", {at_risk} at risk"
    icon = (
        ":white_check_mark:"
        if alert.status is Status.RESOLVED
        else _EMOJI.get(str(alert.severity), ":large_yellow_circle:")
    )
    fields = [
        ("Terminal", alert.terminal_id),
        ("Merchant", alert.merchant_id),
        ("STAN", alert.stan),
        ("Sale at", alert.transmitted_at),
        ("Terminal amount", _money(alert.terminal_amount_minor, currency)),
        ("Issuer amount", _money(alert.issuer_amount_minor, alert.issuer_currency or currency)),
        ("At risk", at_risk),
        ("Probable cause", str(alert.probable_cause)),
    ]
    lines = [f"{icon} *{_escape(summary)}*", _escape(alert.explanation)]
    if alert.status is Status.RESOLVED and alert.resolution:
        lines.append(f"Resolved: {_escape(alert.resolution)}")
    if alert.deadline:
        passed = " (passed)" if alert.deadline_passed else ""
        lines.append(f"Deadline: {alert.deadline}{passed}")
    return {
        "text": summary,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{label}*\n{_escape(value or '-')}"}
                    for label, value in fields
                ],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"alert {alert.alert_id} · detected {alert.detected_at} "
                        f"· score {alert.score:.2f}",
                    }
                ],
            },
        ],
    }


def _money(amount: int | None, currency: str | None) -> str:
    if amount is None:
        return "-"
    if currency and currencies.is_known(currency):
        return currencies.format_minor(amount, currency)
    return f"{amount} {currency or ''}".strip()


def _escape(text: str) -> str:
    """Slack mrkdwn's three control characters (its documented escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
