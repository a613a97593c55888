"""Alert records for the webhook tests (CONTRACT §2 fields, plausible values)."""

from __future__ import annotations

from typing import Any

from models.alerts import Alert, Cause, Kind, Severity, Status


def make_alert(**overrides: Any) -> Alert:
    values: dict[str, Any] = {
        "alert_id": "ud-79afa4b87276ea6aecbda54736d30883",
        "kind": Kind.UNMATCHED_DEBIT,
        "status": Status.FIRING,
        "terminal_id": "T-0042",
        "merchant_id": "M-0007",
        "stan": "000123",
        "transmitted_at": "2026-11-27T09:15:02Z",
        "card_token": "tok_abc",
        "currency": "INR",
        "terminal_amount_minor": 125000,
        "issuer_amount_minor": 125000,
        "at_risk_minor": 125000,
        "evidence": ["te-1", "ie-2"],
        "detected_at": "2026-11-27T09:21:02Z",
        "explanation": "The terminal showed a timeout, but the bank took the money <again>.",
        "probable_cause": Cause.NETWORK_FAILURE,
        "severity": Severity.HIGH,
        "score": 0.8,
    }
    values.update(overrides)
    return Alert(**values)
