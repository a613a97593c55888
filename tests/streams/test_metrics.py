"""The worker's metrics without Kafka: naming rules, bounded labels, state gauges.

The worker's own per-batch path is used (``route`` counting by type, ``PartitionState``
feeding, ``WorkerMetrics.count_*``, the scrape-time ``StateCollector``), only the
messages come from lists instead of topics. The live worker's /metrics is checked
against a real Prometheus in tests/kafka/test_observability.py.
"""

from __future__ import annotations

import collections
import re
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from models.config import DetectionConfig
from models.dead_letter import DeadLetter
from streams import metrics as m
from streams.metrics import PartitionView, StateCollector, WorkerMetrics
from streams.worker.ingest import route
from streams.worker.partition_state import Incoming, PartitionState
from tests.factories import encode, event, watermark

PARTITIONS = 4
CURRENCIES = ("EUR", "INR", "JPY")
ALLOWED_LABELS = {
    "source": set(m.SOURCES),
    "type": {t for types in m.EVENT_TYPES.values() for t in types},
    "kind": set(m.KINDS),
    "status": set(m.STATUSES),
    "severity": set(m.SEVERITIES),
    "reason": set(m.REASONS),
    "currency": set(CURRENCIES),
    "outcome": set(m.WEBHOOK_OUTCOMES),
    "scope": set(m.SCOPES),
    "stream": set(m.STREAMS),
    "partition": {str(p) for p in range(PARTITIONS)},
    "version": {"0.0-test"},
    "model_version": {"model-test"},
}
BASE_UNITS = re.compile(r"_(seconds|bytes|messages)(_total)?$")


class Worker:
    """The worker's metric path over in-memory partitions."""

    def __init__(self, tmp_path: Path) -> None:
        self.metrics = WorkerMetrics(version="0.0-test", model_version="model-test")
        self.states = {p: PartitionState(p, DetectionConfig()) for p in range(PARTITIONS)}
        (tmp_path / "store").mkdir(parents=True)
        (tmp_path / "store" / "000001.sst").write_bytes(b"x" * 1234)
        self.metrics.registry.register(
            StateCollector(
                lambda: {p: view(s) for p, s in self.states.items()},
                data_dir=tmp_path / "store",
                lag=lambda: {"by_merchant": 7},
            )
        )

    def ingest(self, source: str, raw: bytes, offset: int) -> None:
        self.ingest_batch([(source, raw, offset)])

    def ingest_batch(self, messages: list[tuple[str, bytes, int]]) -> None:
        """One batch as the worker takes it: ingest all, then the join per partition."""
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        by_partition: dict[int, list[Incoming]] = collections.defaultdict(list)
        for source, raw, offset in messages:
            routed = route(
                source,  # type: ignore[arg-type]
                raw,
                topic=source,
                partition=0,
                offset=offset,
                join_partitions=PARTITIONS,
                input_partitions=1,
                max_clock_skew=timedelta(seconds=120),
                counts=counts,
            )
            if isinstance(routed, DeadLetter):
                self.metrics.count_rejected([str(routed.reason)])
                continue
            for out in routed:
                by_partition[out.partition].append(Incoming(out.value, None))
        self.metrics.count_events(counts)
        for partition, incoming in by_partition.items():
            state = self.states[partition]
            dead = state.feed(incoming, wall_us=0)
            self.metrics.count_rejected(str(d.reason) for d in dead)
            self.metrics.count_alerts(state.take_alerts(), wall_us=2_000_000_000_000_000)
            state.take_writes()
            late, duplicates = state.counts_since_last()
            self.metrics.late.inc(late)
            self.metrics.duplicates.inc(duplicates)

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = generate_latest(self.metrics.registry).decode()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def view(state: PartitionState) -> PartitionView:
    reconciler = state.reconciler
    return PartitionView(
        open_transactions=lambda: reconciler.open_transactions,
        oldest_open_us=lambda: reconciler.oldest_open_us,
        stream_time_us=lambda: reconciler.progress.stream_time,
        exposure=state.exposure.totals,
        incidents_firing=state.incidents_firing,
    )


def ghost_debits(worker: Worker, terminals: int, every: int = 1) -> None:
    """Every ``every``-th terminal: one issuer debit with no terminal event (an unmatched
    debit each); the others: a terminal request the issuer never saw (no alert). Fired
    by watermarks an hour later (windows closed, states not yet expired)."""
    batch = [
        (
            "issuer" if i % every == 0 else "terminal",
            encode(
                event(
                    "debit" if i % every == 0 else "request",
                    1.0 + i * 0.001,
                    terminal=f"T{i:06d}",
                    merchant=f"M{i:06d}",
                    card=f"tok_{i:06d}",
                    currency=CURRENCIES[i % len(CURRENCIES)],
                    amount=1_000 + i,
                )
            ),
            i,
        )
        for i in range(terminals)
    ]
    batch.append(("issuer", b"{not json", terminals))
    worker.ingest_batch(batch)
    marks = [
        (source, encode(watermark(3600.0)), terminals + 1) for source in ("terminal", "issuer")
    ]
    worker.ingest_batch(marks)


def test_every_metric_follows_the_naming_rules(tmp_path: Path) -> None:
    worker = Worker(tmp_path)
    ghost_debits(worker, 30)
    text = generate_latest(worker.metrics.registry).decode()
    families = list(text_string_to_metric_families(text))
    assert len(families) >= 25
    for family in families:
        assert family.name.startswith("debitwatch_"), family.name
        assert family.documentation.strip(), f"{family.name} has no help text"
        assert family.type in ("counter", "gauge", "histogram"), (family.name, family.type)
        names = {sample.name for sample in family.samples}
        if family.type == "counter":
            assert names == {family.name + "_total"}, names  # no _created series either
        if family.type == "histogram":
            assert names == {family.name + s for s in ("_bucket", "_count", "_sum")}
        for unit in ("seconds", "bytes"):
            if unit in family.name:
                assert BASE_UNITS.search(family.name + "_total"), family.name
        assert not re.search(r"_(ms|milliseconds|minutes|kb|mb|percent)\b", family.name)
        for sample in family.samples:
            for label, value in sample.labels.items():
                if label == "le":
                    continue
                assert label in ALLOWED_LABELS, f"{family.name}: label {label}"
                assert value in ALLOWED_LABELS[label], f"{family.name}: {label}={value}"


def test_known_label_values_are_exported_at_zero_from_start(tmp_path: Path) -> None:
    series = Worker(tmp_path).scrape()
    for source, types in m.EVENT_TYPES.items():
        for kind in types:
            key = ("debitwatch_events_total", (("source", source), ("type", kind)))
            assert series[key] == 0
    for reason in m.REASONS:
        assert series[("debitwatch_rejected_events_total", (("reason", reason),))] == 0
    alerts = [k for k in series if k[0] == "debitwatch_alerts_total"]
    assert len(alerts) == len(m.KINDS) * len(m.STATUSES) * len(m.SEVERITIES)
    for outcome in m.WEBHOOK_OUTCOMES:
        assert series[("debitwatch_webhook_deliveries_total", (("outcome", outcome),))] == 0
    assert (
        series[
            ("debitwatch_build_info", (("model_version", "model-test"), ("version", "0.0-test")))
        ]
        == 1
    )


def test_series_do_not_grow_with_terminals_merchants_or_cards(tmp_path: Path) -> None:
    """100,000 distinct terminals, merchants and cards (2,000 alerts): the same series as
    300 of them."""
    few, many = Worker(tmp_path / "few"), Worker(tmp_path / "many")
    ghost_debits(few, 300, every=10)
    ghost_debits(many, 100_000, every=50)
    small, large = few.scrape(), many.scrape()
    assert set(small) == set(large)
    fired = ("debitwatch_alerts_total", "kind", "unmatched_debit", "status", "firing")
    total = sum(
        v for (name, labels), v in large.items()
        if name == fired[0] and dict(labels)["kind"] == fired[2] and dict(labels)["status"] == fired[4]
    )  # fmt: skip
    assert total == 2_000
    for _name, labels in large:
        for _label, value in labels:
            assert not re.search(r"^(T|M|tok_)\d{6}$", value), value


def test_state_gauges_read_the_partitions(tmp_path: Path) -> None:
    worker = Worker(tmp_path)
    for i in range(6):  # open: no watermark yet
        raw = encode(event("debit", 1.0, terminal=f"T{i}", stan=f"{i:06d}", amount=500))
        worker.ingest("issuer", raw, i)
    for source in ("terminal", "issuer"):  # progress 100 s past BASE: all still open
        worker.ingest(source, encode({"type": "watermark", "event_id": f"w-{source}",
                                      "occurred_at": "2026-11-27T09:01:40Z"}), 99)  # fmt: skip
    series = worker.scrape()
    open_total = sum(v for (n, _), v in series.items() if n == "debitwatch_open_transactions")
    assert open_total == 6
    ages = [v for (n, _), v in series.items() if n == "debitwatch_oldest_open_window_age_seconds"]
    assert ages and max(ages) == pytest.approx(100.0)
    assert series[("debitwatch_state_store_bytes", ())] == 1234
    assert series[("debitwatch_consumer_lag_messages", (("stream", "by_merchant"),))] == 7
    assert series[("debitwatch_consumer_lag_messages", (("stream", "terminal"),))] == 0


def test_money_at_risk_follows_firing_and_resolution_and_survives_a_restore(
    tmp_path: Path,
) -> None:
    worker = Worker(tmp_path)
    ghost_debits(worker, 30)
    series = worker.scrape()
    # 30 debits of 1,000 + i minor units, currencies in turn; JPY has no minor unit.
    expected = {c: sum(1_000 + i for i in range(30) if CURRENCIES[i % 3] == c) for c in CURRENCIES}
    at_risk = {
        dict(k[1])["currency"]: v for k, v in series.items() if k[0] == "debitwatch_money_at_risk"
    }
    assert at_risk == pytest.approx(
        {"EUR": expected["EUR"] / 100, "INR": expected["INR"] / 100, "JPY": expected["JPY"]}
    )
    detected = {
        dict(k[1])["currency"]: v
        for k, v in series.items()
        if k[0] == "debitwatch_money_detected_total"
    }
    assert detected == pytest.approx(at_risk)

    # A late reversal of terminal T000000's debit resolves its alert: out of the gauge.
    state = next(
        s for s in worker.states.values() if any("T000000/" in k for k in s.reconciler.store)
    )
    live_before = dict(state.exposure.totals())
    worker.ingest("issuer", encode(event("reversal", 900.0, terminal="T000000", merchant="M000000",
                                         card="tok_000000", currency="EUR", amount=1_000)), 10**6)  # fmt: skip
    after = dict(state.exposure.totals())
    assert after["EUR"] == live_before["EUR"] - 1_000

    # A restarted worker rebuilds the same exposure from the transaction states alone.
    blobs = [(key, txn.to_bytes()) for key, txn in state.reconciler.store.items()]
    restored = PartitionState(state.partition, DetectionConfig(), txns=blobs)
    assert dict(restored.exposure.totals()) == after
