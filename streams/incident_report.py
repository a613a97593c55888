"""Printing the incident side of ``debitwatch evaluate`` (a rich table)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from models.evaluation import IncidentScore


def incidents(result: IncidentScore, out: Console, span_days: float | None) -> None:
    table = Table(title="incidents: injected vs detected (terminal_incident alerts)")
    for name in ("incident", "injected", "detected", "rate"):
        table.add_column(name, justify="left" if name == "incident" else "right")
    for incident, (injected, detected) in sorted(result.by_type.items()):
        rate = detected / injected if injected else 1.0
        table.add_row(incident, f"{injected}", f"{detected}", f"{rate:.1%}")
    table.add_row("all", f"{result.injected}", f"{result.detected}", f"{result.detection_rate:.1%}")
    out.print(table)
    median = result.median_delay_s
    delays = sorted(result.delays_s)
    if median is not None:
        p90 = delays[min(len(delays) - 1, int(0.9 * len(delays)))]
        out.print(
            f"detection delay from onset (event time): median {median:.0f} s, "
            f"p90 {p90:.0f} s, max {delays[-1]:.0f} s"
        )
    alerts = sum(result.alerts_per_incident.values())
    if result.injected:
        out.print(
            f"incident alerts matching an injected incident: {alerts} "
            f"({alerts / result.injected:.1f} per incident)"
        )
    false = len(result.false_alerts)
    per_day = f" ({false / span_days:.2f} per simulated day)" if span_days else ""
    out.print(f"false incidents: {false}{per_day}")
