"""``BulkSender`` (streams/bulk_send.py) on the real broker.

A flush with nothing shipped since the last wait (the last batch shipped had just
filled the in-flight window, or a second flush) once failed with "The future belongs to
a different loop": ``asyncio.gather()`` of no futures binds to the thread's default
loop, not the sender's own. ``bench/stream_throughput.py --transactions 200000`` hit it.
"""

from __future__ import annotations

from streams.bulk_send import BulkSender
from streams.kafka_clients import read_topic
from streams.settings import Settings
from streams.topics import create_topics


def test_flushing_with_nothing_in_flight_works_and_loses_nothing(settings: Settings) -> None:
    create_topics(settings)
    sender = BulkSender(settings, [settings.terminal_topic])
    for number in range(10):
        sender.send_event(settings.terminal_topic, b'{"n":%d}' % number)
    sender.flush()
    sender.flush()  # nothing shipped since the last wait
    sender.send_event(settings.terminal_topic, b'{"n":10}')
    sender.close()
    values = [
        record.value for record in read_topic(settings, settings.terminal_topic, until_idle=1.0)
    ]
    assert values == [b'{"n":%d}' % number for number in range(11)]
