"""The stream workers: a Faust app that runs the core (``models/``) on Kafka.

``wire`` says what travels on the re-keyed topic, ``ingest`` validates and routes input
messages, ``partition_state`` is one partition of the join (pure, tested without Kafka),
``app`` wires them into Faust agents, tables and a timer. docs/streaming.md explains the
design; CONTRACT §4 is what it must give: the replay's verdicts.
"""
