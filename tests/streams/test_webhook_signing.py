"""Webhook ids, signatures and bodies (streams/webhooks/signing.py, payloads.py)."""

from __future__ import annotations

import base64
import json
import time

import msgspec
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from models.alerts import Kind, Severity, Status
from streams.webhooks.payloads import body, slack_message
from streams.webhooks.signing import Signer, webhook_id
from tests.streams.webhook_alerts import make_alert

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"t" * 32).decode()


def test_one_id_per_state_change_and_the_same_id_for_the_same_state() -> None:
    firing = make_alert()
    escalated = make_alert(deadline_passed=True, severity=Severity.CRITICAL, score=0.95)
    resolved = make_alert(status=Status.RESOLVED, resolved_at="2026-11-27T11:00:00Z",
                          resolution="refunded")  # fmt: skip
    refired = make_alert(detected_at="2026-11-28T10:00:00Z")
    resolved_again = make_alert(status=Status.RESOLVED, detected_at="2026-11-28T10:00:00Z",
                                resolved_at="2026-11-28T12:00:00Z")  # fmt: skip
    ids = [webhook_id(a) for a in (firing, escalated, resolved, refired, resolved_again)]
    assert len(set(ids)) == 5
    assert all(i.startswith("msg_") and len(i) == 36 for i in ids)
    # The same state published again (another worker, a rerun) keeps its id, even when
    # fields that do not name the state differ (a score recomputed later).
    assert webhook_id(make_alert(score=0.3, explanation="other words")) == ids[0]
    other_alert = make_alert(alert_id="ud-00000000000000000000000000000000")
    assert webhook_id(other_alert) != ids[0]


def test_signatures_verify_with_the_secret_and_fail_with_another() -> None:
    raw = msgspec.json.encode(make_alert())
    now = time.time()
    headers = Signer(SECRET).headers("msg_abc", raw, now)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-timestamp"] == str(int(now))
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(raw, headers)["alert_id"] == make_alert().alert_id
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER).verify(raw, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(raw.replace(b"T-0042", b"T-0043"), headers)
    with pytest.raises(WebhookVerificationError):  # replayed ten minutes later
        Webhook(SECRET).verify(raw, Signer(SECRET).headers("msg_abc", raw, now - 600))


def test_the_alert_format_sends_the_published_bytes_untouched() -> None:
    raw = msgspec.json.encode(make_alert())
    assert body("alert", raw) is raw


def test_the_slack_format() -> None:
    alert = make_alert()
    message = json.loads(body("slack", msgspec.json.encode(alert)))
    assert message["text"] == "FIRING high unmatched_debit: terminal T-0042, 1250.00 INR at risk"
    text = json.dumps(message)
    assert "tok_abc" not in text  # the card token stays out of chat
    section, fields, context = message["blocks"]
    assert "&lt;again&gt;" in section["text"]["text"]  # Slack's escaping
    labels = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in fields["fields"]}
    assert labels["*Merchant*"] == "M-0007" and labels["*At risk*"] == "1250.00 INR"
    assert alert.alert_id in context["elements"][0]["text"]


def test_slack_says_resolved_escalated_and_merchant_incidents() -> None:
    resolved = slack_message(make_alert(status=Status.RESOLVED, resolution="refunded",
                                        resolved_at="2026-11-27T11:00:00Z", at_risk_minor=0))  # fmt: skip
    assert resolved["text"] == "RESOLVED high unmatched_debit: terminal T-0042"
    assert "Resolved: refunded" in resolved["blocks"][0]["text"]["text"]
    escalated = slack_message(make_alert(deadline_passed=True, deadline="2026-12-02T09:15:02Z"))
    assert escalated["text"].startswith("ESCALATED")
    assert "(passed)" in escalated["blocks"][0]["text"]["text"]
    incident = slack_message(
        make_alert(kind=Kind.TERMINAL_INCIDENT, terminal_id=None, stan=None, currency=None,
                   terminal_amount_minor=None, issuer_amount_minor=None, at_risk_minor=0)
    )  # fmt: skip
    assert incident["text"] == "FIRING high terminal_incident: merchant M-0007"
