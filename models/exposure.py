"""Money at risk now: the firing alerts' amounts by currency (``debitwatch_money_at_risk``).

Kept per join partition beside the core, fed with every alert state change the core
makes, and rebuilt from the transaction states after a restore, so the gauge a worker
exports does not depend on when it last restarted. A transaction's alerts leave it when
the transaction's state expires (``retention`` after its window, 7 days by default): the
gauge covers what the detector still holds, the alerts topic keeps the rest.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping

from models import currencies
from models.alerts import Alert, Kind, Status
from models.instants import MICROS, micros_of
from models.reconciler import alert_currency
from models.scorer import at_risk
from models.transaction import FIRING, OVERDUE, Txn, transaction_key
from models.verdicts import fold


class Exposure:
    """transaction key -> {kind: (currency, at risk in minor units)} of firing alerts."""

    def __init__(self) -> None:
        self._by_txn: dict[str, dict[str, tuple[str, int]]] = {}

    @classmethod
    def of_states(cls, txns: Iterable[Txn]) -> Exposure:
        """What the restored transaction states say is firing (OVERDUE still fires)."""
        exposure = cls()
        for txn in txns:
            firing = [k for k, (status, _) in (txn.alerts or {}).items() if status in _FIRING]
            if not firing:
                continue
            facts = fold(txn)
            currency = currencies.alpha_of(alert_currency(facts))
            if currency is None:
                continue
            for kind in firing:
                risk = at_risk(Kind(kind), facts)
                if risk:
                    exposure._by_txn.setdefault(txn.key, {})[kind] = (currency, risk)
        return exposure

    def apply(self, alerts: Iterable[Alert]) -> None:
        """Alert state changes, in the order the core made them."""
        for alert in alerts:
            if alert.terminal_id is None or alert.stan is None or alert.transmitted_at is None:
                continue  # an incident: no money of its own
            second = micros_of(alert.transmitted_at) // MICROS
            key = transaction_key(alert.terminal_id, alert.stan, second)
            kind = str(alert.kind)
            if alert.status is Status.FIRING and alert.currency and alert.at_risk_minor:
                self._by_txn.setdefault(key, {})[kind] = (alert.currency, alert.at_risk_minor)
                continue
            held = self._by_txn.get(key)
            if held is not None and alert.status is Status.RESOLVED:
                held.pop(kind, None)
                if not held:
                    del self._by_txn[key]

    def forget(self, key: str) -> None:
        """The transaction's state expired (or was deleted)."""
        self._by_txn.pop(key, None)

    def totals(self) -> Mapping[str, int]:
        """Minor units at risk per currency."""
        total: collections.Counter[str] = collections.Counter()
        for kinds in self._by_txn.values():
            for currency, minor in kinds.values():
                total[currency] += minor
        return total

    def __len__(self) -> int:
        """Firing alerts with money at risk."""
        return sum(len(kinds) for kinds in self._by_txn.values())


_FIRING = (FIRING, OVERDUE)
