"""The worker's Prometheus metrics (docs/metrics.md): one registry per worker process.

Conventions (Prometheus' own, checked by ``tests/streams/test_metrics_naming.py``):
prefix ``debitwatch_``, base units in the name (``_seconds``, ``_bytes``), ``_total`` on
counters, histograms rather than summaries, and only bounded labels: source, type,
kind, status, severity, reason, currency, outcome, scope, stream, partition. Never a
terminal, merchant, card or transaction id. Every label value known up front is
exported at 0 from start, so a rate over a quiet series is 0, not "no data".

The hot path never touches this module per event: the worker folds counts it keeps
anyway (the core's :class:`~models.reconciler.Stats`, a batch's per-type counts) into
the counters once per batch, and the gauges that describe state (open transactions,
stream time, money at risk) are read from the partitions when Prometheus scrapes.
"""

from __future__ import annotations

import collections
import importlib.metadata
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from models import currencies
from models.alerts import Alert, Kind, Severity, Status
from models.incidents import IncidentScorer
from models.instants import micros_of
from models.validation import Reason

PREFIX: Final = "debitwatch_"

SOURCES: Final = ("terminal", "issuer")
EVENT_TYPES: Final[Mapping[str, tuple[str, ...]]] = {
    "terminal": ("request", "outcome", "reversal", "watermark"),
    "issuer": (
        "authorization",
        "hold",
        "hold_release",
        "debit",
        "reversal",
        "refund",
        "watermark",
    ),
}
KINDS: Final = tuple(str(kind) for kind in Kind)
STATUSES: Final = tuple(str(status) for status in Status)
SEVERITIES: Final = tuple(str(severity) for severity in Severity)
REASONS: Final = tuple(str(reason) for reason in Reason)
SCOPES: Final = ("terminal", "merchant")
# The consumer groups' input streams: the two input topics and the re-keyed topic.
STREAMS: Final = ("terminal", "issuer", "by_merchant")
# What happened to one webhook delivery attempt (docs/webhooks.md).
WEBHOOK_OUTCOMES: Final = ("delivered", "retried", "dead_lettered", "disabled", "filtered")

# From the sale to the alert: a window (5 min + 1 min grace by default) plus the
# stream's lag, so the buckets span seconds to an hour.
DETECTION_BUCKETS: Final = (
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 240.0, 360.0, 420.0, 480.0, 600.0, 900.0,
    1800.0, 3600.0,
)  # fmt: skip
SCORE_BUCKETS: Final = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
BATCH_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DELIVERY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PartitionView:
    """What a scrape reads of one join partition (streams.worker.partition_state)."""

    def __init__(
        self,
        open_transactions: Callable[[], int],
        oldest_open_us: Callable[[], int | None],
        stream_time_us: Callable[[], int | None],
        exposure: Callable[[], Mapping[str, int]],
        incidents_firing: Callable[[], Mapping[str, int]],
    ) -> None:
        self.open_transactions = open_transactions
        self.oldest_open_us = oldest_open_us
        self.stream_time_us = stream_time_us
        self.exposure = exposure
        self.incidents_firing = incidents_firing


class WorkerMetrics:
    """Every metric of one worker process, in its own registry (no global state)."""

    def __init__(
        self,
        *,
        version: str,
        model_version: str,
        registry: CollectorRegistry | None = None,
    ) -> None:
        # No ``*_created`` series: they double every counter's series for a timestamp
        # no dashboard or rule here reads (process-wide: one worker per process).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.build_info = Gauge(
            PREFIX + "build_info",
            "Always 1: the running version and the incident model's version.",
            ["version", "model_version"],
            registry=r,
        )
        self.build_info.labels(version=version, model_version=model_version).set(1)
        self.events = Counter(
            PREFIX + "events_total",
            "Valid input events taken in by ingest, by source and type.",
            ["source", "type"],
            registry=r,
        )
        self.rejected = Counter(
            PREFIX + "rejected_events_total",
            "Input messages refused and written to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.late = Counter(
            PREFIX + "late_events_total",
            "Events applied after their transaction's window had closed (CONTRACT §3).",
            registry=r,
        )
        self.duplicates = Counter(
            PREFIX + "duplicate_events_total",
            "Redelivered events (an event_id already applied), ignored.",
            registry=r,
        )
        self.alerts = Counter(
            PREFIX + "alerts_total",
            "Alert state changes published to the alerts topic.",
            ["kind", "status", "severity"],
            registry=r,
        )
        self.money_detected = Counter(
            PREFIX + "money_detected_total",
            "Money at risk of every alert fired, in the currency's major unit.",
            ["currency"],
            registry=r,
        )
        self.detection_latency = Histogram(
            PREFIX + "detection_latency_seconds",
            "From a sale's transmitted_at to its first alert being published (wall clock).",
            ["kind"],
            buckets=DETECTION_BUCKETS,
            registry=r,
        )
        self.incident_score = Histogram(
            PREFIX + "incident_score",
            "Anomaly scores of the incident model, one per terminal or merchant assessed.",
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            PREFIX + "batch_duration_seconds",
            "Time the join takes for one batch: core, alerts, state writes.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_events = Counter(
            PREFIX + "join_messages_total",
            "Messages of the re-keyed topic processed by the join (events and controls).",
            registry=r,
        )
        self.rebalances = Counter(
            PREFIX + "rebalances_total",
            "Partition assignments received by this worker (consumer group rebalances).",
            registry=r,
        )
        self.recovery = Gauge(
            PREFIX + "last_recovery_duration_seconds",
            "How long the last restore of partitions' state took.",
            registry=r,
        )
        self.recovered_states = Counter(
            PREFIX + "recovered_states_total",
            "Transaction and incident states restored from the changelogged table.",
            registry=r,
        )
        self.ready = Gauge(
            PREFIX + "ready",
            "1 when every assigned partition's state is restored (what /readyz says).",
            registry=r,
        )
        self.webhook_deliveries = Counter(
            PREFIX + "webhook_deliveries_total",
            "Webhook delivery attempts and decisions, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.webhook_latency = Histogram(
            PREFIX + "webhook_delivery_duration_seconds",
            "Time of one webhook HTTP attempt, until the receiver answered or it failed.",
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.webhook_pending = Gauge(
            PREFIX + "webhook_pending_deliveries",
            "Webhook deliveries waiting for a (re)try.",
            registry=r,
        )
        self.webhook_disabled = Gauge(
            PREFIX + "webhook_endpoints_disabled",
            "Webhook endpoints disabled by an HTTP 410 Gone from the receiver.",
            registry=r,
        )
        self._zero_known_labels()

    def _zero_known_labels(self) -> None:
        for source, types in EVENT_TYPES.items():
            for kind in types:
                self.events.labels(source=source, type=kind)
        for reason in REASONS:
            self.rejected.labels(reason=reason)
        for kind in KINDS:
            self.detection_latency.labels(kind=kind)
            for status in STATUSES:
                for severity in SEVERITIES:
                    self.alerts.labels(kind=kind, status=status, severity=severity)
        for outcome in WEBHOOK_OUTCOMES:
            self.webhook_deliveries.labels(outcome=outcome)

    # ------------------------------------------------------------ per batch

    def count_events(self, counts: Mapping[tuple[str, str], int]) -> None:
        for (source, kind), count in counts.items():
            self.events.labels(source=source, type=kind).inc(count)

    def count_rejected(self, reasons: Iterable[str]) -> None:
        for reason, count in collections.Counter(reasons).items():
            self.rejected.labels(reason=reason).inc(count)

    def count_alerts(self, alerts: Iterable[Alert], wall_us: int) -> None:
        for alert in alerts:
            self.alerts.labels(
                kind=str(alert.kind), status=str(alert.status), severity=str(alert.severity)
            ).inc()
            if alert.status is not Status.FIRING or alert.deadline_passed:
                continue  # a resolution or an escalation: not a new detection
            if alert.currency is not None and alert.at_risk_minor:
                self.money_detected.labels(currency=alert.currency).inc(
                    major_units(alert.at_risk_minor, alert.currency)
                )
            if alert.transmitted_at is not None:
                sale_us = micros_of(alert.transmitted_at)
                self.detection_latency.labels(kind=str(alert.kind)).observe(
                    max(0.0, (wall_us - sale_us) / 1e6)
                )


class ObservedScorer:
    """An incident scorer whose every score lands in ``debitwatch_incident_score``.

    The tracker scores each step's rows in one call, so this costs one histogram
    observation per terminal or merchant per 15 s step, never one per event.
    """

    def __init__(self, scorer: IncidentScorer, histogram: Histogram) -> None:
        self._scorer = scorer
        self._observe = histogram.observe
        self.min_attempts = scorer.min_attempts
        self.usual = scorer.usual
        self.deviations = scorer.deviations

    def assess(self, rows: NDArray[np.float64]) -> list[tuple[bool, float]]:
        verdicts = self._scorer.assess(rows)
        for _abnormal, score in verdicts:
            self._observe(score)
        return verdicts


def version() -> str:
    """The installed debitwatch's version (pyproject's), or "unknown" from a source tree."""
    try:
        return importlib.metadata.version("debitwatch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def major_units(minor: int, currency: str) -> float:
    """An amount in minor units as the currency's major unit (paise to rupees)."""
    return minor / 10.0 ** currencies.exponent(currency)


class StateCollector(Collector):
    """Gauges read from the partitions at scrape time: nothing to keep up to date."""

    def __init__(
        self,
        partitions: Callable[[], Mapping[int, PartitionView]],
        *,
        data_dir: Path | None = None,
        lag: Callable[[], Mapping[str, int]] | None = None,
        wall_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    ) -> None:
        self._partitions = partitions
        self._data_dir = data_dir
        self._lag = lag
        self._wall_us = wall_us

    def collect(self) -> Iterator[Metric]:
        views = dict(self._partitions())
        now = self._wall_us()
        open_txns = GaugeMetricFamily(
            PREFIX + "open_transactions",
            "Transactions whose window has not closed yet, per join partition.",
            labels=["partition"],
        )
        oldest = GaugeMetricFamily(
            PREFIX + "oldest_open_window_age_seconds",
            "Stream time minus the sale time of the oldest open transaction, per partition.",
            labels=["partition"],
        )
        stream_time = GaugeMetricFamily(
            PREFIX + "stream_time_seconds",
            "The partition's stream time (CONTRACT §3) as a Unix time.",
            labels=["partition"],
        )
        stream_lag = GaugeMetricFamily(
            PREFIX + "stream_time_lag_seconds",
            "Wall clock minus stream time, per partition (grows while a feed is stalled).",
            labels=["partition"],
        )
        at_risk = GaugeMetricFamily(
            PREFIX + "money_at_risk",
            "Money at risk of the alerts firing now, in the currency's major unit.",
            labels=["currency"],
        )
        firing = GaugeMetricFamily(
            PREFIX + "incidents_firing",
            "Terminal and merchant incidents firing now.",
            labels=["scope"],
        )
        exposure: collections.Counter[str] = collections.Counter()
        incidents: collections.Counter[str] = collections.Counter(dict.fromkeys(SCOPES, 0))
        for partition, view in sorted(views.items()):
            label = [str(partition)]
            open_txns.add_metric(label, view.open_transactions())
            current = view.stream_time_us()
            if current is not None:
                stream_time.add_metric(label, current / 1e6)
                stream_lag.add_metric(label, (now - current) / 1e6)
                oldest_us = view.oldest_open_us()
                oldest.add_metric(
                    label, 0.0 if oldest_us is None else max(0.0, (current - oldest_us) / 1e6)
                )
            exposure.update(view.exposure())
            incidents.update(view.incidents_firing())
        for currency, minor in sorted(exposure.items()):
            at_risk.add_metric([currency], major_units(minor, currency))
        for scope, count in sorted(incidents.items()):
            firing.add_metric([scope], count)
        yield from (open_txns, oldest, stream_time, stream_lag, at_risk, firing)
        if self._data_dir is not None:
            size = GaugeMetricFamily(
                PREFIX + "state_store_bytes",
                "Bytes on disk of the worker's state stores (RocksDB files).",
            )
            size.add_metric([], directory_bytes(self._data_dir))
            yield size
        if self._lag is not None:
            lag = GaugeMetricFamily(
                PREFIX + "consumer_lag_messages",
                "Messages not yet read from this worker's assigned partitions, by stream.",
                labels=["stream"],
            )
            lags = dict.fromkeys(STREAMS, 0) | dict(self._lag())
            for stream, count in lags.items():
                lag.add_metric([stream], count)
            yield lag


def directory_bytes(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                continue  # RocksDB removed it between the listing and the stat
    return total
