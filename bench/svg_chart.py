"""A line chart as a small standalone SVG file (no plotting library in the venv).

    .venv/bin/python bench/svg_chart.py bench/results/alert_latency.json docs/img/soak_rss.svg

Draws the soak's RSS samples (``memory.samples`` of ``bench/alert_latency.py``'s
results): RSS in MiB, and the RSS growth per transaction held in bytes, against minutes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 70, 70, 30, 45


def _scale(values: Sequence[float], low: float, high: float) -> list[float]:
    top = max(values) if values else 1.0
    top = top * 1.1 if top > 0 else 1.0
    return [high - (v / top) * (high - low) for v in values]


def line_chart(
    xs: Sequence[float],
    left: Sequence[float],
    right: Sequence[float | None],
    *,
    title: str,
    x_label: str,
    left_label: str,
    right_label: str,
) -> str:
    """Two series on one x axis: ``left`` (solid, left scale), ``right`` (dashed)."""
    x_max = max(xs) if xs else 1.0
    plot_w = WIDTH - LEFT - RIGHT

    def x_of(x: float) -> float:
        return LEFT + (x / x_max) * plot_w if x_max else LEFT

    ys_left = _scale(left, TOP, HEIGHT - BOTTOM)
    right_points = [(x, y) for x, y in zip(xs, right, strict=True) if y is not None]
    ys_right = _scale([y for _, y in right_points], TOP, HEIGHT - BOTTOM)
    left_path = " ".join(f"{x_of(x):.1f},{y:.1f}" for x, y in zip(xs, ys_left, strict=True))
    right_path = " ".join(
        f"{x_of(x):.1f},{y:.1f}" for (x, _), y in zip(right_points, ys_right, strict=True)
    )
    left_top = max(left) * 1.1 if left else 1.0
    right_values = [y for _, y in right_points]
    right_top = max(right_values) * 1.1 if right_values else 1.0
    bottom = HEIGHT - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="14">{title}</text>',
        f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="black"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="black"/>',
        f'<line x1="{WIDTH - RIGHT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{bottom}" '
        'stroke="black"/>',
    ]
    for i in range(5):
        fraction = i / 4
        y = bottom - fraction * (bottom - TOP)
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{left_top * fraction:.0f}</text>"
        )
        parts.append(
            f'<text x="{WIDTH - RIGHT + 6}" y="{y + 4:.1f}">{right_top * fraction:.0f}</text>'
        )
        x = LEFT + fraction * plot_w
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">'
            f"{x_max * fraction:.0f}</text>"
        )
    parts += [
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle">{x_label}</text>',
        f'<text x="14" y="{HEIGHT / 2}" transform="rotate(-90 14 {HEIGHT / 2})" '
        f'text-anchor="middle" fill="#1f4e9a">{left_label}</text>',
        f'<text x="{WIDTH - 12}" y="{HEIGHT / 2}" transform="rotate(90 {WIDTH - 12} '
        f'{HEIGHT / 2})" text-anchor="middle" fill="#b3401a">{right_label}</text>',
        f'<polyline fill="none" stroke="#1f4e9a" stroke-width="2" points="{left_path}"/>',
        f'<polyline fill="none" stroke="#b3401a" stroke-width="2" stroke-dasharray="6 4" '
        f'points="{right_path}"/>',
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def main() -> int:
    results, out = Path(sys.argv[1]), Path(sys.argv[2])
    samples = json.loads(results.read_text())["memory"]["samples"]
    minutes = [s["seconds"] / 60 for s in samples]
    rss = [s["rss_bytes"] / 2**20 for s in samples]
    per = [s.get("bytes_per_transaction") for s in samples]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        line_chart(
            minutes,
            rss,
            per,
            title="Worker RSS over the soak",
            x_label="minutes of traffic",
            left_label="RSS, MiB (solid)",
            right_label="RSS growth per transaction held, bytes (dashed)",
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
