"""Human-readable tables for the CLI (rich): the replay summary and the evaluation."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from models import currencies
from models.alerts import Alert
from models.evaluation import Evaluation
from streams.replay import ReplaySummary


def _money(amount: int, alpha: str) -> str:
    return currencies.format_minor(amount, alpha) if currencies.is_known(alpha) else str(amount)


def replay_summary(summary: ReplaySummary, console: Console) -> None:
    """Events, rejects by reason, alerts by kind, money at risk by currency."""
    head = Table(title="debitwatch replay", show_header=False, title_justify="left")
    head.add_column(style="bold")
    head.add_column(justify="right")
    head.add_row("capture lines", f"{summary.lines:,}")
    head.add_row("events accepted", f"{summary.events:,}")
    head.add_row("watermarks", f"{summary.watermarks:,}")
    head.add_row("redeliveries ignored", f"{summary.duplicates:,}")
    head.add_row("late events applied", f"{summary.late:,}")
    head.add_row("rejected", f"{sum(summary.rejected.values()):,}")
    head.add_row("time", f"{summary.seconds:.2f} s ({summary.events_per_second:,.0f} lines/s)")
    console.print(head)
    if summary.rejected:
        rejects = Table(title="rejected by reason", title_justify="left")
        rejects.add_column("reason")
        rejects.add_column("count", justify="right")
        for reason, count in sorted(summary.rejected.items()):
            rejects.add_row(str(reason), f"{count:,}")
        console.print(rejects)
    kinds = Table(title="alerts by kind", title_justify="left")
    kinds.add_column("kind")
    kinds.add_column("fired", justify="right")
    kinds.add_column("resolved", justify="right")
    kinds.add_column("firing at end", justify="right")
    names = sorted(
        {key.split("/")[0] for key in summary.published} | set(summary.firing),
    )
    for kind in names:
        kinds.add_row(
            kind,
            f"{summary.published.get(f'{kind}/firing', 0):,}",
            f"{summary.published.get(f'{kind}/resolved', 0):,}",
            f"{summary.firing.get(kind, 0):,}",
        )
    console.print(kinds)
    if summary.at_risk_by_currency:
        money = Table(title="money at risk (firing, per transaction)", title_justify="left")
        money.add_column("currency")
        money.add_column("at risk", justify="right")
        for alpha, amount in summary.at_risk_by_currency.items():
            money.add_row(alpha, _money(amount, alpha))
        console.print(money)


def top_alerts(alerts: list[Alert], count: int, console: Console) -> None:
    """The ``count`` most urgent firing alerts, each with its explanation."""
    ranked = sorted(alerts, key=lambda a: (-a.score, a.alert_id))[:count]
    if not ranked:
        return
    console.print(f"[bold]top {len(ranked)} firing alerts[/bold]")
    for alert in ranked:
        currency = alert.issuer_currency or alert.currency or "XXX"
        console.print(
            f"[bold]{alert.severity} {alert.score:.2f}[/bold]  {alert.kind} "
            f"({alert.probable_cause})  terminal {alert.terminal_id} stan {alert.stan} "
            f"sent {alert.transmitted_at}  at risk {_money(alert.at_risk_minor, currency)}",
            highlight=False,
        )
        console.print(f"    {alert.explanation}", highlight=False, soft_wrap=False)


def evaluation(result: Evaluation, console: Console) -> None:
    """Precision, recall and F1 per kind and overall; cause accuracy and confusion."""
    table = Table(title="detection vs ground truth", title_justify="left")
    for column in ("kind", "expected", "found", "TP", "FP", "FN"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for column in ("precision", "recall", "F1"):
        table.add_column(column, justify="right")
    rows = [*result.per_kind.items(), ("overall", result.overall)]
    for name, score in rows:
        table.add_row(
            name,
            f"{score.true_positives + score.false_negatives:,}",
            f"{score.true_positives + score.false_positives:,}",
            f"{score.true_positives:,}",
            f"{score.false_positives:,}",
            f"{score.false_negatives:,}",
            f"{score.precision:.4f}",
            f"{score.recall:.4f}",
            f"{score.f1:.4f}",
            style="bold" if name == "overall" else None,
        )
    console.print(table)
    if not result.causes:
        return
    console.print(
        f"probable cause accuracy on true positives: {result.cause_accuracy:.4f} "
        f"({sum(result.causes.values()):,} alerts); "
        f"paid-again accuracy: {result.paid_again_accuracy:.4f}"
    )
    confusion = Table(title="probable cause: injected vs attributed", title_justify="left")
    for column in ("injected", "attributed", "count", "share of injected"):
        confusion.add_column(
            column, justify="right" if column in ("count", "share of injected") else "left"
        )
    injected_totals: Counter[str] = Counter()
    for (truth, _predicted), n in result.causes.items():
        injected_totals[truth] += n
    for (truth, predicted), n in sorted(result.causes.items()):
        confusion.add_row(
            truth,
            predicted if predicted != truth else f"[green]{predicted}[/green]",
            f"{n:,}",
            f"{n / injected_totals[truth]:.1%}",
        )
    console.print(confusion)
