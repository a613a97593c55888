"""Detection settings (CONTRACT §2 and §3), with their defaults and a TOML loader.

Durations are written in TOML as seconds (``300``) or with a unit (``"300s"``, ``"5m"``,
``"2h"``, ``"7d"``, ``"500ms"``). Unknown keys are errors, not silently ignored: a typo in
``retenion`` would otherwise keep a 7-day default nobody asked for.

>>> parse_duration("5m"), parse_duration(90), parse_duration("1.5s")
(300.0, 90.0, 1.5)
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from pathlib import Path
from typing import Any, Final

_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION: Final = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)\s*$")


class ConfigError(ValueError):
    """A configuration value or file that cannot be used; the message says which and why."""


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a string with a unit."""
    if isinstance(value, bool):
        raise ConfigError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ConfigError(f"expected a duration like 300, '300s', '5m', '7d'; got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"durations must be finite and not negative: {value!r}")
    return seconds


@dataclasses.dataclass(frozen=True, kw_only=True)
class DetectionConfig:
    """How the core judges transactions. Times in seconds.

    ``match_window`` and ``grace``: a transaction's window closes when stream time
    passes ``transmitted_at + match_window + grace`` (CONTRACT §3).
    ``retention``: how long after its window a transaction's state is kept, so late
    events can still resolve or fire its alerts; later events are ``too_late``.
    ``max_clock_skew``: how far the parties' clocks may disagree; an event whose
    ``transmitted_at`` is later than its own ``occurred_at`` by more is rejected.
    ``idle_advance``: wall-clock silence after which a source's progress moves on its own
    (used by the stream workers only; replays never read the wall clock).
    ``amount_tolerance_minor`` / ``amount_tolerance_ratio``: an issuer amount within
    ``max(minor, ratio * terminal_amount)`` of the terminal's is not an
    ``amount_mismatch`` (defaults: exact).
    ``paid_again_window``: a completed sale at the same terminal, by the same card or of
    the same amount, this soon after a ghost debit means the cardholder paid twice.
    ``default_terminal_timeout``: how long a terminal waits for the host when its own
    events do not tell us (no request event): used to tell a late issuer from a lost reply.
    """

    match_window: float = 300.0
    grace: float = 60.0
    max_clock_skew: float = 120.0
    retention: float = 7 * 86400.0
    idle_advance: float = 30.0
    amount_tolerance_minor: int = 0
    amount_tolerance_ratio: float = 0.0
    paid_again_window: float = 300.0
    default_terminal_timeout: float = 30.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{field.name} must be finite and not negative: {value!r}")
        if self.match_window <= 0:
            raise ConfigError("match_window must be > 0")


_DURATION_FIELDS: Final = frozenset(
    f.name for f in dataclasses.fields(DetectionConfig) if f.type in ("float", float)
) - {"amount_tolerance_ratio"}


def detection_config_from_mapping(table: dict[str, Any]) -> DetectionConfig:
    """Build a :class:`DetectionConfig` from the ``[detection]`` table of a TOML file."""
    known = {f.name for f in dataclasses.fields(DetectionConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) in [detection]: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    values: dict[str, Any] = {}
    for name, raw in table.items():
        if name in _DURATION_FIELDS:
            values[name] = parse_duration(raw)
        elif name == "amount_tolerance_minor":
            if not isinstance(raw, int) or isinstance(raw, bool):
                raise ConfigError(f"amount_tolerance_minor must be an integer, got {raw!r}")
            values[name] = raw
        elif name == "amount_tolerance_ratio":
            if not isinstance(raw, int | float) or isinstance(raw, bool):
                raise ConfigError(f"amount_tolerance_ratio must be a number, got {raw!r}")
            values[name] = float(raw)
    return DetectionConfig(**values)


def read_document(path: Path) -> dict[str, Any]:
    """A whole TOML config file, or ConfigError saying why it cannot be read."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from error


def read_tables(path: Path, *names: str) -> list[dict[str, Any]]:
    """The named top-level tables of a TOML file (empty when absent), or ConfigError."""
    document = read_document(path)
    tables = []
    for name in names:
        table = document.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        tables.append(table)
    return tables


def load_config(path: Path) -> DetectionConfig:
    """Read a TOML file; only its ``[detection]`` table concerns the core."""
    (table,) = read_tables(path, "detection")
    return detection_config_from_mapping(table)
