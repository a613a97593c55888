"""The ingest step without Kafka: validation, re-keying, watermark copies (§1.3, §5)."""

from __future__ import annotations

from datetime import timedelta

from models.dead_letter import DeadLetter
from models.validation import Reason
from streams.worker.ingest import route
from streams.worker.wire import (
    ORIGIN_HEADER,
    WatermarkControl,
    decode_control,
    decode_origin,
    join_partition,
    origin_lane,
)
from tests.factories import encode, event, watermark

SKEW = timedelta(seconds=120)


def _route(raw: bytes, source: str = "terminal", partition: int = 2, offset: int = 41) -> object:
    return route(
        source,  # type: ignore[arg-type]
        raw,
        topic="pos.terminal.events",
        partition=partition,
        offset=offset,
        join_partitions=4,
        input_partitions=3,
        max_clock_skew=SKEW,
    )


def test_a_valid_event_goes_to_its_merchants_partition_keyed_by_transaction() -> None:
    raw = encode(event("request", 0.1, terminal="T-0042", stan="000777", merchant="M-17"))
    sends = _route(raw)
    assert isinstance(sends, list) and len(sends) == 1
    (send,) = sends
    assert send.partition == join_partition("M-17", 4)
    assert send.key == b"T-0042/000777/1795770000"
    assert send.value == b'{"source":"terminal","event":' + raw + b"}"
    origin = dict(send.headers)[ORIGIN_HEADER]
    assert decode_origin(origin) == ("pos.terminal.events", 2, 41)
    assert origin_lane(origin) == 2  # input partition 2: the join's lane
    assert origin_lane(None) == 0
    assert origin_lane(b"garbage") == 0


def test_the_partition_is_the_java_clients_murmur2_of_the_merchant() -> None:
    # Test vectors of Kafka's own UtilsTest.testMurmur2 (signed 32-bit results); the Java
    # client partitions a keyed record by toPositive(murmur2(key)) % partitions.
    vectors = {
        "21": -973932308,
        "foobar": -790332482,
        "a-little-bit-long-string": -985981536,
        "a-little-bit-longer-string": -1486304829,
        "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        "abc": 479470107,
    }
    for key, signed in vectors.items():
        assert join_partition(key, 2**31) == signed & 0x7FFFFFFF
        assert join_partition(key, 7) == (signed & 0x7FFFFFFF) % 7


def test_a_watermark_is_copied_to_every_partition_with_its_input_partition() -> None:
    sends = _route(encode(watermark(400.0, event_id="wm-1")), partition=1)
    assert isinstance(sends, list)
    assert [send.partition for send in sends] == [0, 1, 2, 3]
    controls = [decode_control(send.value) for send in sends]
    assert all(isinstance(c, WatermarkControl) for c in controls)
    assert {(c.input_partition, c.input_partitions) for c in controls} == {(1, 3)}  # type: ignore[union-attr]


def test_bad_input_becomes_a_dead_letter_with_its_coordinates() -> None:
    dead = _route(b"{not json", partition=0, offset=7)
    assert isinstance(dead, DeadLetter)
    assert (dead.reason, dead.topic, dead.partition, dead.offset) == (
        Reason.INVALID_JSON, "pos.terminal.events", 0, 7,
    )  # fmt: skip
    assert dead.raw_bytes() == b"{not json"


def test_a_pan_is_masked_in_the_dead_letter() -> None:
    raw = encode(event("request", 0.1, card="4111111111111111"))
    dead = _route(raw)
    assert isinstance(dead, DeadLetter)
    assert dead.reason == Reason.PAN_DETECTED
    assert b"4111111111111111" not in dead.raw_bytes()
    assert "4111111111111111" not in dead.detail


def test_a_null_value_is_refused_not_crashed_on() -> None:
    dead = route(
        "issuer", None, topic="bank.issuer.events", partition=0, offset=3,
        join_partitions=4, input_partitions=1, max_clock_skew=SKEW,
    )  # fmt: skip
    assert isinstance(dead, DeadLetter)
    assert dead.reason == Reason.INVALID_JSON
