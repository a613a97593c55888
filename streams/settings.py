"""Stream settings: where Kafka is, which topics, how the workers keep state.

Read in this order, later wins: defaults, the ``[kafka]``, ``[detection]`` and
``[deadlines]`` (models/deadlines.py; file only) tables of
the TOML file named by ``DEBITWATCH_CONFIG`` (or ``--config``), then environment
variables. Every name is in docs/configuration.md.

>>> s = Settings.from_env({"DEBITWATCH_PARTITIONS": "8", "DEBITWATCH_APP_ID": "dw-test"})
>>> s.partitions, s.repartition_topic, s.broker
(8, 'dw-test-events-by-merchant', 'kafka://127.0.0.1:9092')
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from models.config import (
    ConfigError,
    DetectionConfig,
    detection_config_from_mapping,
    parse_duration,
    read_tables,
)
from models.deadlines import DeadlineConfig, deadline_config_from_mapping
from streams.gc_policy import DEFAULT_THRESHOLD as DEFAULT_GC_THRESHOLD
from streams.gc_policy import parse_threshold as parse_gc_threshold

Guarantee = Literal["at_least_once"]
StoreKind = Literal["rocksdb", "memory"]

_PREFIX: Final = "DEBITWATCH_"
STATE_TABLES: Final = ("txns",)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a worker, the CLI tools and the tests need to find and shape Kafka.

    ``partitions`` is the partition count of the join: the re-keyed topic, the state
    changelogs and the alerts topic all have it, so partition ``p`` of the join writes
    its alerts to partition ``p`` of the alerts topic (what the crash-proof
    de-duplication reads back, docs/streaming.md). Input topics may have any count.
    """

    broker: str = "kafka://127.0.0.1:9092"
    app_id: str = "debitwatch"
    terminal_topic: str = "pos.terminal.events"
    issuer_topic: str = "bank.issuer.events"
    alerts_topic: str = "debitwatch.alerts"
    dlq_topic: str = "debitwatch.dlq"
    repartition_topic_name: str | None = None
    partitions: int = 4
    input_partitions: int = 4
    replication: int = 1
    input_retention: float = 7 * 86400.0
    alerts_retention: float = 30 * 86400.0
    dlq_retention: float = 30 * 86400.0
    processing_guarantee: Guarantee = "at_least_once"
    store: StoreKind = "rocksdb"
    data_dir: Path = Path(".debitwatch")
    web_port: int = 6066
    batch_size: int = 5000
    batch_within: float = 0.1
    tick_interval: float = 1.0
    session_timeout: float = 45.0
    # How long the broker may hold a fetch that finds no new record (Kafka's
    # fetch.max.wait.ms). aiokafka keeps one fetch in flight per broker and leaves out of
    # it the partitions whose records are not yet consumed, so a long wait on quiet
    # partitions stalls the busy ones (streams/worker/fetch_wait.py). Faust fixes 1.5 s.
    fetch_max_wait: float = 0.05
    # CPython's garbage collector thresholds in the worker (streams/gc_policy.py).
    gc_threshold: str = DEFAULT_GC_THRESHOLD
    # Faust's standby copies of other workers' table partitions. 0: Faust reads standby
    # changelogs one record at a time, which cost two workers ~12 s of CPU each on the
    # 50k-transaction capture, while a new owner catches up from the changelog in bulk
    # (streams/worker/changelog_catch_up.py; docs/PERFORMANCE.md, "Scale-out").
    standby_replicas: int = 0
    # The incident model (docs/incidents.md): "default" (trained by `make model` into the
    # package), "none" (no terminal_incident alerts), or the path of a skops file.
    incident_model: str = "default"
    detection: DetectionConfig = dataclasses.field(default_factory=DetectionConfig)
    deadlines: DeadlineConfig = dataclasses.field(default_factory=DeadlineConfig)

    def __post_init__(self) -> None:
        if self.partitions < 1 or self.input_partitions < 1:
            raise ConfigError("partitions and input_partitions must be >= 1")
        if self.replication < 1:
            raise ConfigError("replication must be >= 1")
        if self.standby_replicas < 0:
            raise ConfigError("standby_replicas must be >= 0")
        parse_gc_threshold(self.gc_threshold)  # a ConfigError if malformed
        if not 0 < self.fetch_max_wait <= 30:
            raise ConfigError("fetch_max_wait must be > 0 and <= 30 seconds")
        if self.processing_guarantee != "at_least_once":
            raise ConfigError(
                f"processing_guarantee {self.processing_guarantee!r} is not supported: "
                "debitwatch runs at_least_once and de-duplicates alerts itself; "
                "faust-streaming's exactly_once sends outside its transactions "
                "(docs/streaming.md)"
            )
        if self.store not in ("rocksdb", "memory"):
            raise ConfigError(f"store must be rocksdb or memory, got {self.store!r}")

    @property
    def repartition_topic(self) -> str:
        """The join's input: every valid event, keyed by transaction, by merchant."""
        return self.repartition_topic_name or f"{self.app_id}-events-by-merchant"

    @property
    def bootstrap(self) -> str:
        """``host:port`` list for kafka-python / aiokafka (no ``kafka://``)."""
        parts = self.broker.replace(";", ",").split(",")
        return ",".join(p.strip().removeprefix("kafka://") for p in parts if p.strip())

    @property
    def changelog_topics(self) -> list[str]:
        """Faust's changelog of the join's table (``<app_id>-<table>-changelog``).

        ``topics create`` makes them up front with the join's partition count: a worker
        that creates them itself can read their partition count as 0 in its first
        second and fail Faust's co-partitioning check (seen with faust-streaming 0.15.3).
        """
        return [f"{self.app_id}-{table}-changelog" for table in STATE_TABLES]

    def source_topic(self, source: str) -> str:
        return self.terminal_topic if source == "terminal" else self.issuer_topic

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, config_path: Path | None = None
    ) -> Settings:
        """Defaults < TOML file (``config_path`` or ``DEBITWATCH_CONFIG``) < environment."""
        env = os.environ if environ is None else environ
        path = config_path or (
            Path(env[_PREFIX + "CONFIG"]) if env.get(_PREFIX + "CONFIG") else None
        )
        values: dict[str, Any] = {}
        detection: dict[str, Any] = {}
        if path is not None:
            kafka_table, detection, deadlines = read_tables(path, "kafka", "detection", "deadlines")
            values.update(_convert(kafka_table, f"{path} [kafka]"))
            values["deadlines"] = deadline_config_from_mapping(deadlines)
        for name in _FIELDS:
            raw = env.get(_PREFIX + name.upper())
            if raw is not None and raw != "":
                values.update(_convert({name: raw}, f"${_PREFIX}{name.upper()}"))
        for name in _DETECTION_FIELDS:
            raw = env.get(_PREFIX + name.upper())
            if raw is not None and raw != "":
                detection[name] = _number_or_text(raw)
        try:
            values["detection"] = detection_config_from_mapping(detection)
        except ConfigError as error:
            raise ConfigError(f"detection settings: {error}") from error
        return cls(**values)


_FIELDS: Final = tuple(
    f.name for f in dataclasses.fields(Settings) if f.name not in ("detection", "deadlines")
)
_DETECTION_FIELDS: Final = tuple(f.name for f in dataclasses.fields(DetectionConfig))
_INTS: Final = frozenset(
    {"partitions", "input_partitions", "replication", "web_port", "batch_size", "standby_replicas"}
)
_DURATIONS: Final = frozenset(
    {
        "input_retention",
        "alerts_retention",
        "dlq_retention",
        "batch_within",
        "tick_interval",
        "session_timeout",
        "fetch_max_wait",
    }
)


def _number_or_text(raw: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def _convert(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(table) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"unknown setting(s) in {where}: {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for name, raw in table.items():
        if name in _INTS:
            try:
                out[name] = int(raw)
            except (TypeError, ValueError) as error:
                raise ConfigError(f"{where}: {name} must be an integer, got {raw!r}") from error
        elif name in _DURATIONS:
            out[name] = parse_duration(_number_or_text(raw) if isinstance(raw, str) else raw)
        elif name == "data_dir":
            out[name] = Path(str(raw))
        else:
            out[name] = str(raw)
    return out
