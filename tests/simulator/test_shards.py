"""Sharded runs: independent parts, merged by arrival second, reproducible."""

from __future__ import annotations

import io
import json
from collections import Counter

from streams.simulator.generator import SimulationConfig
from streams.simulator.shards import AUTO_SHARD_FROM, auto_shards, run_sharded, shard_config

CONFIG = SimulationConfig(transactions=3_000, seed=5, merchants=7, terminals=30, cards=101)


def run(shards: int) -> tuple[bytes, list[str]]:
    out = io.BytesIO()
    _, truth, _ = run_sharded(CONFIG, shards, out)
    return out.getvalue(), [record.alert_id for record in truth]


def test_shards_split_the_run_without_losing_any_of_it() -> None:
    parts = [shard_config(CONFIG, shard, 3) for shard in range(3)]
    assert sum(part.transactions for part in parts) == CONFIG.transactions
    assert sum(part.terminals for part in parts) == CONFIG.terminals
    assert sum(part.cards for part in parts) == CONFIG.cards
    assert sum(part.rate for part in parts) == CONFIG.rate
    assert len({part.seed for part in parts}) == 3
    assert not any(part.final_watermarks for part in parts)


def test_a_sharded_run_is_reproducible_byte_for_byte() -> None:
    assert run(2) == run(2)


def test_shards_have_disjoint_terminals_and_event_ids_and_keys() -> None:
    capture, truth = run(2)
    events = [json.loads(line)["event"] for line in capture.splitlines()]
    ids = Counter((e["event_id"], e.get("terminal_id")) for e in events)
    assert {e["event_id"][:3] for e in events if e["type"] != "watermark"} == {
        "te0",
        "ie0",
        "te1",
        "ie1",
    }
    terminals_by_shard: dict[bool, set[str]] = {True: set(), False: set()}
    for e in events:
        if e["type"] != "watermark":
            terminals_by_shard[e["event_id"][2] == "1"].add(e["terminal_id"])
    assert not terminals_by_shard[True] & terminals_by_shard[False]
    redeliveries = sum(count - 1 for count in ids.values())
    assert len(ids) == len(events) - redeliveries  # ids repeat only as redeliveries
    assert len(truth) == len(set(truth))
    assert [e["type"] for e in events[-2:]] == ["watermark", "watermark"]


def test_auto_shards_depends_on_the_size_not_the_machine() -> None:
    assert auto_shards(AUTO_SHARD_FROM - 1) == 1
    assert auto_shards(AUTO_SHARD_FROM) == 2
