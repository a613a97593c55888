"""The undelivered states (streams/webhooks/ledger.py): FIFO per alert, only the head in flight."""

from __future__ import annotations

from streams.webhooks.ledger import (
    AlertQueue,
    DeliveryBook,
    DisabledMark,
    PendingState,
    decode_record,
    mark_record,
    offset_record,
    queue_record,
)

# The partitions' acknowledged ``~offset``: past every state below unless said otherwise.
CHECKPOINT = 1000


def state(
    webhook_id: str, status: str = "firing", at: float = 100.0, offset: int = 1
) -> PendingState:
    return PendingState(
        webhook_id=webhook_id, status=status, deadline_passed=False, alert=b"{}",
        offset=offset, enqueued_at=at, next_attempt=at,
    )  # fmt: skip


def always(_endpoint: str) -> bool:
    return True


def test_only_the_head_of_an_alert_is_ever_in_flight() -> None:
    book = DeliveryBook()
    book.add_partition(0, [], CHECKPOINT)
    book.enqueue(0, "cases", "ud-1", state("msg_firing"))
    book.enqueue(0, "cases", "ud-1", state("msg_resolved", "resolved", at=101.0))
    assert book.due(200.0, always) == [("cases", "ud-1")]
    # The resolved state waits behind the firing one, however due it is.
    assert book.due(500.0, always) == []
    book.pop_head(("cases", "ud-1"))  # firing delivered
    book.finish(("cases", "ud-1"))
    assert book.due(500.0, always) == [("cases", "ud-1")]
    assert book.queues[("cases", "ud-1")].states[0].webhook_id == "msg_resolved"
    assert book.pending() == 1


def test_a_retry_waits_for_its_time_and_other_alerts_go_meanwhile() -> None:
    book = DeliveryBook()
    book.add_partition(0, [], CHECKPOINT)
    book.enqueue(0, "cases", "ud-1", state("msg_1"))
    book.enqueue(0, "cases", "ud-2", state("msg_2", at=150.0))
    assert book.due(120.0, always) == [("cases", "ud-1")]
    book.queues[("cases", "ud-1")].states[0].next_attempt = 300.0  # failed: retry at 300
    book.finish(("cases", "ud-1"))
    assert book.next_due() == 150.0
    assert book.due(200.0, always) == [("cases", "ud-2")]
    assert book.due(299.0, always) == []
    assert book.due(300.0, always) == [("cases", "ud-1")]


def test_endpoints_without_a_free_slot_keep_their_due_queues() -> None:
    book = DeliveryBook()
    book.add_partition(0, [], CHECKPOINT)
    for n in range(3):
        book.enqueue(0, "slow", f"ud-{n}", state(f"msg_{n}", at=100.0 + n))
    book.enqueue(0, "fast", "ud-9", state("msg_9", at=103.0))
    assert book.due(200.0, lambda endpoint: endpoint == "fast") == [("fast", "ud-9")]
    assert book.due(200.0, always) == [("slow", "ud-0"), ("slow", "ud-1"), ("slow", "ud-2")]


def test_a_state_already_queued_is_not_queued_twice() -> None:
    book = DeliveryBook()
    book.add_partition(0, [], CHECKPOINT)
    assert book.enqueue(0, "cases", "ud-1", state("msg_1")) is not None
    assert book.enqueue(0, "cases", "ud-1", state("msg_1")) is None
    assert book.enqueue(0, "chat", "ud-1", state("msg_1")) is not None  # another endpoint
    assert book.pending() == 2


def test_a_state_waits_for_the_checkpoint_past_it() -> None:
    """Queued at alerts offset 5, the state is attempted only once the ``~offset``
    checkpoint past it (6) is acknowledged. Attempted earlier, a worker killed after the
    receiver's 2xx but before that checkpoint would re-read offset 5 on restart, queue
    the state again and deliver it a second time."""
    book = DeliveryBook()
    book.add_partition(0, [], 5)  # everything before offset 5 is checkpointed
    book.add_partition(1, [], 0)
    book.enqueue(0, "cases", "ud-1", state("msg_1", offset=5))
    book.enqueue(0, "cases", "ud-0", state("msg_0", offset=4))  # restored, checkpointed
    book.enqueue(1, "cases", "ud-2", state("msg_2", offset=0))
    assert book.due(200.0, always) == [("cases", "ud-0")]
    book.offsets[0] = 6  # the agent: the checkpoint after offset 5 is acknowledged
    assert book.due(200.0, always) == [("cases", "ud-1")]
    assert book.due(200.0, always) == []  # partition 1 has no checkpoint past 0 yet
    book.offsets[1] = 1
    assert book.due(200.0, always) == [("cases", "ud-2")]


def test_a_disabled_endpoint_s_queues_are_hurried_to_their_dead_letters() -> None:
    book = DeliveryBook()
    book.add_partition(0, [], CHECKPOINT)
    book.enqueue(0, "gone", "ud-1", state("msg_1"))
    book.enqueue(0, "gone", "ud-2", state("msg_2"))
    book.enqueue(0, "cases", "ud-3", state("msg_3"))
    assert len(book.due(100.0, always)) == 3  # all three attempted, all failed ...
    for key in (("gone", "ud-2"), ("cases", "ud-3")):
        book.queues[key].states[0].next_attempt = 5000.0  # ... to be retried much later
        book.finish(key)
    # ("gone", "ud-1") is still in flight: its own attempt reschedules it when it ends.
    assert book.due(200.0, always) == []
    book.hurry("gone", 200.0)  # "gone" answered 410
    assert book.due(200.0, always) == [("gone", "ud-2")]
    assert book.queues[("gone", "ud-1")].states[0].next_attempt == 100.0
    assert book.queues[("cases", "ud-3")].states[0].next_attempt == 5000.0


def test_revoked_partitions_are_closed_then_dropped() -> None:
    book = DeliveryBook()
    book.add_partition(0, [], CHECKPOINT)
    book.add_partition(1, [], CHECKPOINT)
    book.enqueue(0, "cases", "ud-1", state("msg_1"))
    book.enqueue(1, "cases", "ud-2", state("msg_2"))
    book.closing.add(1)
    assert book.due(200.0, always) == [("cases", "ud-1")]
    book.drop_partitions({1})
    assert set(book.queues) == {("cases", "ud-1")} and book.partitions == {0}
    assert book.due(200.0, always) == []


def test_records_round_trip_and_an_empty_queue_is_a_deletion() -> None:
    queue = AlertQueue(endpoint="cases", alert_id="ud-1", partition=3,
                       states=[state("msg_1"), state("msg_2", "resolved")])  # fmt: skip
    key, value = queue_record(queue)
    assert value is not None
    stored = decode_record(key, value)
    assert stored is not None and stored.partition == 3 and stored.queue == queue
    restored = DeliveryBook()
    restored.add_partition(3, [stored.queue], CHECKPOINT)
    assert restored.due(1000.0, always) == [("cases", "ud-1")]

    assert queue_record(AlertQueue(endpoint="cases", alert_id="ud-1", partition=3, states=[])) == (
        key, None,
    )  # fmt: skip
    okey, ovalue = offset_record(3, 42)
    offset = decode_record(okey, ovalue)
    assert offset is not None and (offset.partition, offset.offset) == (3, 42)
    mark = DisabledMark(
        endpoint="cases", partition=3, fingerprint="ab", since=1.0, error="HTTP 410"
    )
    mkey, mvalue = mark_record(mark)
    decoded = decode_record(mkey, mvalue)
    assert decoded is not None and decoded.mark == mark
    assert decode_record(b"something-else", b"x") is None
    assert decode_record(key, b"not msgpack of a queue") is None
