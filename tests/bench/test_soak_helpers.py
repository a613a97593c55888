"""The benchmarks' arithmetic: the memory soak, its chart, idle seconds of a CPU timeline
(bench/alert_latency.py, bench/svg_chart.py, bench/stream_common.py)."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

from bench.alert_latency import memory_summary
from bench.stream_common import seconds_nearly_idle
from bench.svg_chart import line_chart


def test_rss_growth_per_transaction_held() -> None:
    samples = [
        {"seconds": 0.0, "rss_bytes": 100_000_000, "transactions": 0},
        {"seconds": 60.0, "rss_bytes": 100_000_000 + 600 * 50_000, "transactions": 50_000},
        {"seconds": 360.0, "rss_bytes": 100_000_000 + 650 * 300_000, "transactions": 300_000},
    ]
    summary = memory_summary(samples)
    per = [row.get("bytes_per_transaction") for row in summary["samples"]]
    assert per == [None, 600.0, 650.0]
    assert summary["bytes_per_transaction_last"] == 650.0
    assert summary["bytes_per_transaction_max_after_5_min"] == 650.0
    assert summary["rss_at_end_bytes"] - summary["rss_at_start_bytes"] == 650 * 300_000


def test_the_chart_is_well_formed_svg_with_both_series() -> None:
    svg = line_chart(
        [0.0, 1.0, 2.0],
        [100.0, 130.0, 160.0],
        [None, 600.0, 620.0],
        title="t",
        x_label="minutes",
        left_label="MiB",
        right_label="bytes",
    )
    root = ElementTree.fromstring(svg)
    lines = [e for e in root.iter() if e.tag.endswith("polyline")]
    assert len(lines) == 2
    assert len(lines[0].attrib["points"].split()) == 3  # every RSS sample
    assert len(lines[1].attrib["points"].split()) == 2  # the first has no per-transaction value


def test_seconds_nearly_idle_counts_only_between_the_first_and_last_busy_second() -> None:
    # Start-up and the end (nothing left to do) are not waiting; the 0.2 and the 0.0
    # in between are.
    timeline = [0.0, 0.1, 0.9, 0.2, 1.0, 0.0, 0.6, 0.1, 0.0]
    assert seconds_nearly_idle(timeline) == 2
    assert seconds_nearly_idle([0.0, 0.3]) == 0
    assert seconds_nearly_idle(timeline, busy=0.95) == 0
