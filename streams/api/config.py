"""The API's settings: the optional bearer token and the alert index's memory bound.

Read like the stream settings (streams/settings.py): defaults, then the ``[api]`` table
of the TOML file named by ``DEBITWATCH_CONFIG``, then ``DEBITWATCH_API_*`` environment
variables. The token itself is a secret, so it comes only from the environment or from
a file (``DEBITWATCH_API_TOKEN`` / ``DEBITWATCH_API_TOKEN_FILE``, or ``token_file`` in the
TOML table), never from the TOML file, and is never part of a repr or a message.

>>> env = {"DEBITWATCH_API_TOKEN": "s3cret", "DEBITWATCH_API_MAX_ALERTS": "10"}
>>> config = api_config_from_env(env)
>>> config.auth_enabled, config.max_alerts, "s3cret" in repr(config)
(True, 10, False)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from models.config import ConfigError, parse_duration, read_tables

_PREFIX: Final = "DEBITWATCH_API_"
# An indexed alert costs about 2.9 KB of Python objects (measured with tracemalloc on
# simulated alerts, docs/api.md): 50,000 alerts are ~150 MB. A day of a large acquirer's
# ghost debits is well under that, and firing alerts are the last to be forgotten.
DEFAULT_MAX_ALERTS: Final = 50_000
DEFAULT_MAX_HISTORY: Final = 16
DEFAULT_PEER_TIMEOUT: Final = 5.0
_TOML_KEYS: Final = frozenset({"max_alerts", "max_history", "peer_timeout", "token_file"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class ApiConfig:
    """``token`` None: no authentication (the default; docs/api.md says when to turn it on).

    ``max_alerts``: alerts the in-memory index keeps (resolved ones are forgotten first,
    oldest update first); ``max_history``: states kept per alert (the newest);
    ``peer_timeout``: seconds to wait for another worker's answer about a transaction.
    """

    token: str | None = dataclasses.field(default=None, repr=False)
    max_alerts: int = DEFAULT_MAX_ALERTS
    max_history: int = DEFAULT_MAX_HISTORY
    peer_timeout: float = DEFAULT_PEER_TIMEOUT

    def __post_init__(self) -> None:
        if self.max_alerts < 1:
            raise ConfigError(f"api max_alerts must be >= 1, got {self.max_alerts}")
        if self.max_history < 1:
            raise ConfigError(f"api max_history must be >= 1, got {self.max_history}")
        if not 0 < self.peer_timeout <= 300:
            raise ConfigError(
                f"api peer_timeout must be > 0 and <= 300 seconds, got {self.peer_timeout}"
            )
        if self.token is not None and (not self.token or any(c.isspace() for c in self.token)):
            # A bearer token is one token68 word: a blank or spaced one cannot be sent.
            raise ConfigError("the API token must be non-empty and contain no whitespace")

    @property
    def auth_enabled(self) -> bool:
        return self.token is not None


def api_config_from_env(environ: Mapping[str, str] | None = None) -> ApiConfig:
    """Defaults < ``[api]`` of ``DEBITWATCH_CONFIG`` < ``DEBITWATCH_API_*``; ConfigError."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    token_file: str | None = None
    config_path = env.get("DEBITWATCH_CONFIG")
    if config_path:
        (table,) = read_tables(Path(config_path), "api")
        unknown = sorted(set(table) - _TOML_KEYS)
        if unknown:
            raise ConfigError(
                f"unknown setting(s) in {config_path} [api]: {', '.join(unknown)}"
                + (
                    " (the token comes only from the environment or a file: "
                    "DEBITWATCH_API_TOKEN, DEBITWATCH_API_TOKEN_FILE or token_file)"
                    if "token" in unknown
                    else ""
                )
            )
        for name, raw in table.items():
            if name == "token_file":
                token_file = str(raw)
            else:
                values[name] = _convert(name, raw, f"{config_path} [api]")
    for name in ("max_alerts", "max_history", "peer_timeout"):
        raw = env.get(_PREFIX + name.upper())
        if raw:
            values[name] = _convert(name, raw, f"${_PREFIX}{name.upper()}")
    token = env.get(_PREFIX + "TOKEN") or None
    token_file = env.get(_PREFIX + "TOKEN_FILE") or token_file
    if token is not None and token_file is not None:
        raise ConfigError(
            f"set only one of ${_PREFIX}TOKEN and ${_PREFIX}TOKEN_FILE (or [api] token_file)"
        )
    if token_file is not None:
        token = _read_token(Path(token_file))
    return ApiConfig(token=token, **values)


def _convert(name: str, raw: object, where: str) -> int | float:
    if name == "peer_timeout":
        try:
            return parse_duration(_number_or_text(raw) if isinstance(raw, str) else raw)
        except ConfigError as error:
            raise ConfigError(f"{where}: {name}: {error}") from error
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw)
        except ValueError:
            pass
    raise ConfigError(f"{where}: {name} must be an integer, got {raw!r}")


def _number_or_text(raw: str) -> float | str:
    """``"5"`` is five seconds, as in the stream settings; ``"5s"`` stays a string."""
    try:
        return float(raw)
    except ValueError:
        return raw


def _read_token(path: Path) -> str:
    """The token file's content without its trailing newline (how secrets are mounted)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"cannot read the API token file {path}: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"the API token file {path} is not UTF-8 text") from error
    if not token:
        raise ConfigError(f"the API token file {path} is empty")
    return token
