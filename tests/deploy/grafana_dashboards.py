"""Read the committed Grafana dashboards (``deploy/grafana/dashboards/*.json``).

The tests check the files Grafana will load, not the generator's output in memory: the
generator (``deploy/grafana/build_dashboards.py``) is run only as a subprocess, through
its ``--check``, which proves the two are the same.

>>> sorted(board["uid"] for board in load_dashboards().values())
['debitwatch-overview', 'debitwatch-pipeline', 'debitwatch-terminals']
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[2]
GRAFANA_DIR: Final = ROOT / "deploy" / "grafana"
DASHBOARD_DIR: Final = GRAFANA_DIR / "dashboards"
GENERATOR: Final = GRAFANA_DIR / "build_dashboards.py"
PROVISIONING_DIR: Final = GRAFANA_DIR / "provisioning"
DASHBOARD_FILES: Final = ("overview.json", "terminals.json", "pipeline.json")


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Each committed dashboard by file name."""
    return {
        name: json.loads((DASHBOARD_DIR / name).read_text(encoding="utf-8"))
        for name in DASHBOARD_FILES
    }


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside rows too (a collapsed row nests its panels)."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries() -> list[tuple[str, str, str]]:
    """``(dashboard uid, panel title, PromQL expr)`` of every target of every panel."""
    return [
        (board["uid"], panel.get("title", ""), target.get("expr", ""))
        for board in load_dashboards().values()
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]
