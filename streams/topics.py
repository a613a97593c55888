"""The topics debitwatch needs, created idempotently and checked before a worker starts.

Which topic has which partition count is not free (``streams.settings.Settings``): the
re-keyed topic and the alerts topic both have ``partitions``, because partition ``p`` of
the join writes its alerts to partition ``p`` of the alerts topic and reads them back
from there after a crash. A wrong count there silently breaks that de-duplication, so
:func:`check_topics` reports it. Input topics belong to the gateways and may have any
count; the tools only need them to exist.

The alerts topic is compacted (one record per ``alert_id`` survives, the latest state)
with ``min.compaction.lag.ms`` of a day, so a consumer tailing it never misses an
intermediate state change (a ``firing`` later superseded by ``resolved``) unless it
has been away for more than a day.

The webhook sink (docs/webhooks.md) has two more: its dead letters and the changelog of
its retry table, made whether or not an endpoint is configured yet, so configuring one
later needs no new ``topics create``.

>>> [spec.partitions for spec in topic_specs(Settings(partitions=8))]
[4, 4, 8, 8, 4, 4, 8, 8]
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError

from streams.kafka_clients import BrokerError, admin, describe
from streams.settings import Settings
from streams.webhooks.config import changelog_topic as webhooks_changelog
from streams.webhooks.config import dlq_topic as webhooks_dlq

ALERTS_MIN_COMPACTION_LAG_MS: Final = 86_400_000
_TOPIC_ALREADY_EXISTS: Final = 36
_CREATE_TIMEOUT_MS: Final = 30_000


@dataclasses.dataclass(frozen=True)
class TopicSpec:
    """A topic as debitwatch wants it. ``exact_partitions``: a different count is wrong."""

    name: str
    role: str
    partitions: int
    replication: int
    configs: dict[str, str]
    exact_partitions: bool


@dataclasses.dataclass(frozen=True)
class TopicOutcome:
    """What ``create_topics`` did with one topic: created it, or found it there."""

    name: str
    role: str
    partitions: int
    created: bool


def _ms(seconds: float) -> str:
    return str(round(seconds * 1000))


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics, inputs first, then the dead letters, then the workers' changelogs."""
    inputs = {"cleanup.policy": "delete", "retention.ms": _ms(settings.input_retention)}
    replication = settings.replication
    return [
        TopicSpec(
            settings.terminal_topic, "terminal input", settings.input_partitions,
            replication, inputs, exact_partitions=False,
        ),
        TopicSpec(
            settings.issuer_topic, "issuer input", settings.input_partitions,
            replication, inputs, exact_partitions=False,
        ),
        TopicSpec(
            settings.repartition_topic, "join input, by merchant",
            settings.partitions, replication, inputs, exact_partitions=True,
        ),
        TopicSpec(
            settings.alerts_topic, "alerts", settings.partitions, replication,
            {
                "cleanup.policy": "compact",
                "min.compaction.lag.ms": str(ALERTS_MIN_COMPACTION_LAG_MS),
            },
            exact_partitions=True,
        ),
        TopicSpec(
            settings.dlq_topic, "dead letters", settings.input_partitions, replication,
            {"cleanup.policy": "delete", "retention.ms": _ms(settings.dlq_retention)},
            exact_partitions=False,
        ),
        TopicSpec(
            webhooks_dlq(settings), "webhook dead letters", settings.input_partitions,
            replication,
            {"cleanup.policy": "delete", "retention.ms": _ms(settings.dlq_retention)},
            exact_partitions=False,
        ),
        *(
            TopicSpec(
                name, "worker state (changelog)", settings.partitions, replication,
                {"cleanup.policy": "compact"}, exact_partitions=True,
            )
            for name in settings.changelog_topics
        ),
        # Co-partitioned with the alerts topic: partition p's undelivered webhooks.
        TopicSpec(
            webhooks_changelog(settings), "webhook retry state (changelog)",
            settings.partitions, replication, {"cleanup.policy": "compact"},
            exact_partitions=True,
        ),
    ]  # fmt: skip


def _describe(client: Any, names: list[str]) -> dict[str, dict[str, Any]]:
    """name -> kafka-python topic metadata, for the topics that exist."""
    found: dict[str, dict[str, Any]] = {}
    for topic in client.describe_topics(names):
        if topic.get("error_code", 0) == 0 and topic.get("partitions"):
            found[topic["name"]] = topic
    return found


def create_topics(settings: Settings) -> list[TopicOutcome]:
    """Create whichever topics are missing; existing ones are reported, never altered.

    Idempotent: a second run creates nothing. Raises BrokerError if the broker is
    unreachable or refuses a topic (e.g. replication above the number of brokers).
    """
    specs = topic_specs(settings)
    try:
        with admin(settings) as client:
            existing = _describe(client, [spec.name for spec in specs])
            wanted = {
                spec.name: {
                    "num_partitions": spec.partitions,
                    "replication_factor": spec.replication,
                    "configs": spec.configs,
                }
                for spec in specs
                if spec.name not in existing
            }
            created: set[str] = set()
            if wanted:
                response = client.create_topics(
                    wanted, timeout_ms=_CREATE_TIMEOUT_MS, raise_errors=False
                )
                for result in response["topics"]:
                    code = result.get("error_code", 0)
                    if code == 0:
                        created.add(result["name"])
                    elif code != _TOPIC_ALREADY_EXISTS:  # lost a race: fine
                        message = result.get("error_message") or f"error code {code}"
                        raise BrokerError(f"cannot create topic {result['name']!r}: {message}")
                client.wait_for_topics(sorted(created), timeout_ms=_CREATE_TIMEOUT_MS)
                existing.update(_describe(client, [n for n in wanted if n not in created]))
    except KafkaError as error:
        raise BrokerError(f"cannot create topics: {describe(error)}") from error
    return [
        TopicOutcome(
            spec.name,
            spec.role,
            spec.partitions if spec.name in created else len(existing[spec.name]["partitions"]),
            created=spec.name in created,
        )
        for spec in specs
    ]


def _cleanup_policies(client: Any, names: list[str]) -> dict[str, str]:
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, name, ["cleanup.policy"]) for name in names
    ]
    described = client.describe_configs(resources, config_filter="all")
    topics = described.get("topic", {})
    return {
        name: str((topics.get(name, {}).get("cleanup.policy") or {}).get("value", ""))
        for name in names
    }


def check_topics(settings: Settings) -> list[str]:
    """Problems that would make the workers misbehave; an empty list when all is well.

    Reported: a missing topic; a re-keyed or alerts topic whose partition count is not
    ``partitions``; a topic with fewer replicas than ``replication``; an alerts topic
    that is not compacted. Raises BrokerError if the broker cannot be asked.
    """
    specs = topic_specs(settings)
    problems: list[str] = []
    try:
        with admin(settings) as client:
            existing = _describe(client, [spec.name for spec in specs])
            alerts = settings.alerts_topic
            policies = _cleanup_policies(client, [alerts]) if alerts in existing else {}
    except KafkaError as error:
        raise BrokerError(f"cannot describe topics: {describe(error)}") from error
    for spec in specs:
        topic = existing.get(spec.name)
        if topic is None:
            problems.append(f"{spec.name} ({spec.role}): missing")
            continue
        partitions = topic["partitions"]
        if spec.exact_partitions and len(partitions) != spec.partitions:
            problems.append(
                f"{spec.name} ({spec.role}): {len(partitions)} partitions, "
                f"expected {spec.partitions} (the join's partition count)"
            )
        replicas = min(len(p.get("replica_nodes") or []) for p in partitions)
        if replicas < spec.replication:
            problems.append(
                f"{spec.name} ({spec.role}): replication {replicas}, expected {spec.replication}"
            )
    if alerts in policies and "compact" not in policies[alerts].split(","):
        problems.append(
            f"{alerts} (alerts): cleanup.policy is {policies[alerts] or 'unknown'!r}, "
            "expected 'compact' (the latest state of every alert must be kept)"
        )
    return problems
