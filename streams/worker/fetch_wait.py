"""The broker's wait for a fetch that finds nothing new (Kafka's ``fetch.max.wait.ms``).

aiokafka's fetcher keeps one fetch request in flight per broker, and leaves out of it
every partition whose fetched records the worker has not consumed yet. So while the
join works through its records, the next fetch asks only for the other partitions; if
those are quiet (the input caught up, a partition with no traffic), the broker holds
the request for the whole wait before it answers, and the join's next records cannot be
fetched until it does. faust-streaming 0.15.3 fixes that wait at 1.5 s
(``AIOKafkaConsumerThread._create_worker_consumer``), which left a worker idle for
most of every other second once its input was read (docs/PERFORMANCE.md, "Idle while
behind"). A short wait costs the broker a few empty fetches a second on an idle worker.
"""

from __future__ import annotations

from typing import Any


def set_fetch_max_wait(consumer: Any, seconds: float) -> None:
    """Make Faust's worker consumer ``consumer`` (not started yet) fetch with a broker
    wait of ``seconds`` instead of Faust's fixed 1.5 s."""
    thread = consumer._thread  # Faust's AIOKafkaConsumerThread, made with the consumer
    create = thread._create_worker_consumer
    wait_ms = max(1, round(seconds * 1000))

    def create_with_wait(transport: Any) -> Any:
        aiokafka_consumer = create(transport)
        # Read by AIOKafkaConsumer.start() when it makes its Fetcher.
        aiokafka_consumer._fetch_max_wait_ms = wait_ms
        return aiokafka_consumer

    thread._create_worker_consumer = create_with_wait
