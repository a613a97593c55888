"""The last published state of every alert: the firing set that CONTRACT §4 fixes.

Alerts are a changelog keyed by ``alert_id``; a consumer that keeps the last record per
id knows which alerts are firing now. The replay summary, ``debitwatch evaluate`` and the
equivalence tests all reduce an alert stream this way.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from models.alerts import Alert, Status

ALERT_DECODER = msgspec.json.Decoder(Alert)


class FinalStates:
    """The last published state of every alert: the firing set and money at risk."""

    def __init__(self) -> None:
        self.last: dict[str, Alert] = {}

    def add(self, alert: Alert) -> None:
        self.last[alert.alert_id] = alert

    def firing(self) -> list[Alert]:
        return [a for a in self.last.values() if a.status is Status.FIRING]

    def at_risk_by_currency(self) -> dict[str, int]:
        """Per currency, the sum over transactions of the largest firing ``at_risk``.

        One transaction can fire several kinds about the same money (a timed-out sale
        debited twice is an unmatched debit *and* a duplicate); summing per alert would
        count it twice.
        """
        per_txn: dict[tuple[str | None, str | None, str | None], tuple[str, int]] = {}
        for alert in self.firing():
            key = (alert.terminal_id, alert.stan, alert.transmitted_at)
            currency = alert.issuer_currency or alert.currency or "XXX"
            best = per_txn.get(key)
            if best is None or alert.at_risk_minor > best[1]:
                per_txn[key] = (currency, alert.at_risk_minor)
        totals: dict[str, int] = {}
        for currency, amount in per_txn.values():
            totals[currency] = totals.get(currency, 0) + amount
        return dict(sorted(totals.items()))

    @classmethod
    def of(cls, alerts: Iterable[Alert]) -> FinalStates:
        states = cls()
        for alert in alerts:
            states.add(alert)
        return states


def firing_set(alerts: Iterable[Alert]) -> set[tuple[str, str, str | None, str | None, str | None]]:
    """(alert_id, kind, terminal_id, stan, transmitted_at) of every alert firing at the end."""
    return {
        (a.alert_id, a.kind.value, a.terminal_id, a.stan, a.transmitted_at)
        for a in FinalStates.of(alerts).firing()
    }
