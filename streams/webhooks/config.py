"""Webhook endpoints: from ``[[webhooks]]`` tables of a TOML file, or one from the environment.

Read at worker start; a bad value stops the worker with a :class:`ConfigError` that says
which endpoint and which key (never the secret). Two sources, both optional:

* the ``[[webhooks]]`` array of tables of the file named by ``DEBITWATCH_WEBHOOKS_CONFIG``
  or, when that is unset, by ``DEBITWATCH_CONFIG`` (a separate file lets a deployment
  mount its endpoint list apart from the detection settings);
* one endpoint from ``DEBITWATCH_WEBHOOK_URL`` and ``DEBITWATCH_WEBHOOK_SECRET`` (or
  ``DEBITWATCH_WEBHOOK_SECRET_FILE``), the other keys as ``DEBITWATCH_WEBHOOK_<KEY>``:
  what docker-compose and the tests use.

>>> env = {"DEBITWATCH_WEBHOOK_URL": "http://127.0.0.1:8080/hook",
...        "DEBITWATCH_WEBHOOK_SECRET": "whsec_" + "QUJD" * 8,
...        "DEBITWATCH_WEBHOOK_KINDS": "unmatched_debit, duplicate_debit"}
>>> (endpoint,) = load_endpoints(env)
>>> endpoint.name, sorted(map(str, endpoint.kinds)), endpoint.retry.max_age
('default', ['duplicate_debit', 'unmatched_debit'], 259200.0)
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

from models.alerts import Alert, Kind, Severity, Status
from models.config import ConfigError, parse_duration, read_document
from streams.settings import Settings
from streams.webhooks.backoff import RetryPolicy

Format = Literal["alert", "slack"]
E = TypeVar("E", Kind, Status, Severity)
FORMATS: Final[tuple[Format, ...]] = ("alert", "slack")
ENV_PREFIX: Final = "DEBITWATCH_WEBHOOK_"
CONFIG_ENV: Final = "DEBITWATCH_WEBHOOKS_CONFIG"
DLQ_TOPIC_ENV: Final = "DEBITWATCH_WEBHOOK_DLQ_TOPIC"
TABLE: Final = "webhooks"
SECRET_PREFIX: Final = "whsec_"
# Standard Webhooks: a symmetric secret of 24 to 64 random bytes.
SECRET_BYTES: Final = (24, 64)
# Ranked for ``min_severity``: an endpoint takes its minimum and everything above it.
SEVERITY_RANK: Final = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}
# One attempt's limit. A worker losing a partition lets its in-flight attempts finish
# (timeout + 5 s) before it lets go; that must stay well below Faust's rebalance timeout
# (60 s), or the group evicts the worker while it still posts, and the partition's new
# owner attempts the same states at the same time.
MAX_TIMEOUT: Final = 30.0
# The retry horizon's upper bound: a state older than a week is history, not an alert,
# and its queue record would hold the retry table's changelog for that long.
MAX_AGE_LIMIT: Final = 7 * 86400.0
# Endpoint names end up in table keys, metrics-free log lines and dead-letter records.
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEYS: Final = frozenset(
    {
        "name", "url", "secret_env", "secret_file", "kinds", "min_severity", "statuses",
        "format", "timeout", "max_age", "backoff_initial", "backoff_max", "concurrency",
        "revision",
    }
)  # fmt: skip
# The environment shortcut's variables (tests/deploy checks compose files against them).
ENV_VARS: Final = tuple(
    sorted(
        {f"{ENV_PREFIX}{key.upper()}" for key in _KEYS - {"secret_env", "secret_file"}}
        | {f"{ENV_PREFIX}SECRET", f"{ENV_PREFIX}SECRET_FILE", CONFIG_ENV, DLQ_TOPIC_ENV}
    )
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Endpoint:
    """One receiver of signed alert webhooks and which alert states it wants.

    ``revision``: part of the endpoint's fingerprint with the URL. A receiver that
    answers HTTP 410 Gone disables the endpoint until its fingerprint changes: a new
    URL, or the same URL with ``revision`` raised by an operator (docs/webhooks.md).
    """

    name: str
    url: str
    secret: str = dataclasses.field(repr=False)
    kinds: frozenset[Kind] = frozenset(Kind)
    min_severity: Severity = Severity.LOW
    statuses: frozenset[Status] = frozenset(Status)
    format: Format = "alert"
    timeout: float = 10.0
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    concurrency: int = 4
    revision: int = 0

    def accepts(self, alert: Alert) -> bool:
        """Whether this endpoint wants ``alert`` (kind, status, severity filters)."""
        return (
            alert.kind in self.kinds
            and alert.status in self.statuses
            and SEVERITY_RANK[alert.severity] >= SEVERITY_RANK[self.min_severity]
        )

    @property
    def fingerprint(self) -> str:
        """What a 410 disabling is bound to: changing it re-enables the endpoint."""
        material = f"{self.url}\0{self.revision}".encode()
        return hashlib.blake2b(material, digest_size=8).hexdigest()


def load_endpoints(environ: Mapping[str, str] | None = None) -> list[Endpoint]:
    """Every configured endpoint (file first, then the environment's); [] for none."""
    env = os.environ if environ is None else environ
    endpoints: list[Endpoint] = []
    path_text = env.get(CONFIG_ENV) or env.get("DEBITWATCH_CONFIG")
    if path_text:
        path = Path(path_text)
        for index, table in enumerate(_webhook_tables(path)):
            where = f"{path} [[webhooks]] #{index + 1}"
            endpoints.append(endpoint_from_mapping(table, where=where, environ=env))
    shortcut = _from_environment(env)
    if shortcut is not None:
        endpoints.append(shortcut)
    seen: set[str] = set()
    for endpoint in endpoints:
        if endpoint.name in seen:
            raise ConfigError(f"webhook endpoint name {endpoint.name!r} is used twice")
        seen.add(endpoint.name)
    return endpoints


def dlq_topic(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """The topic of undeliverable webhooks: ``<app_id>.webhooks.dlq`` unless overridden.

    From the environment only: ``debitwatch topics create`` creates it, and it knows
    the environment and ``[kafka]``, not the endpoints' file.
    """
    env = os.environ if environ is None else environ
    return env.get(DLQ_TOPIC_ENV) or f"{settings.app_id}.webhooks.dlq"


def changelog_topic(settings: Settings) -> str:
    """Faust's changelog of the retry table (``<app_id>-webhooks-changelog``)."""
    return f"{settings.app_id}-{TABLE}-changelog"


def endpoint_from_mapping(
    table: Mapping[str, Any], *, where: str, environ: Mapping[str, str]
) -> Endpoint:
    """An :class:`Endpoint` from one ``[[webhooks]]`` table (values as TOML gives them)."""
    unknown = sorted(set(table) - _KEYS)
    if "secret" in unknown:
        raise ConfigError(
            f"{where}: 'secret' is not read from a file: name an environment variable "
            "with secret_env, or a file holding only the secret with secret_file"
        )
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}"
        )
    name = _text(table, "name", where)
    if not _NAME.match(name):
        raise ConfigError(
            f"{where}: name {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
            "(it is part of the retry table's keys: keep it stable)"
        )
    where = f"{where} ({name})"
    url = _url(_text(table, "url", where), where)
    secret = _secret(table, where, environ)
    try:
        initial = parse_duration(table.get("backoff_initial", RetryPolicy.initial))
        cap = parse_duration(table.get("backoff_max", RetryPolicy.cap))
        if cap < initial:
            raise ConfigError(f"backoff_max ({cap:g} s) is below backoff_initial ({initial:g} s)")
        max_age = parse_duration(table.get("max_age", RetryPolicy.max_age))
        retry = RetryPolicy(initial=initial, cap=cap, max_age=max_age)
        timeout = parse_duration(table.get("timeout", 10.0))
    except ValueError as error:  # ConfigError included: both say which value and why
        raise ConfigError(f"{where}: {error}") from error
    if not 0 < timeout <= MAX_TIMEOUT:
        raise ConfigError(
            f"{where}: timeout must be > 0 and at most {MAX_TIMEOUT:g} s (a worker handing "
            f"a partition over waits for its attempts; docs/webhooks.md), got {timeout:g} s"
        )
    if max_age > MAX_AGE_LIMIT:
        raise ConfigError(
            f"{where}: max_age must be at most {MAX_AGE_LIMIT / 86400:g} days, got {max_age:g} s"
        )
    return Endpoint(
        name=name,
        url=url,
        secret=secret,
        kinds=_choices(table, "kinds", Kind, where),
        min_severity=_choice(table, "min_severity", Severity, Severity.LOW, where),
        statuses=_choices(table, "statuses", Status, where),
        format=_format(table.get("format", "alert"), where),
        timeout=timeout,
        retry=retry,
        concurrency=_int(table, "concurrency", 4, where, minimum=1),
        revision=_int(table, "revision", 0, where, minimum=0),
    )


def _webhook_tables(path: Path) -> list[Mapping[str, Any]]:
    tables = read_document(path).get("webhooks", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{path}: webhooks must be an array of tables ([[webhooks]])")
    return tables


def _from_environment(env: Mapping[str, str]) -> Endpoint | None:
    """The one-endpoint shortcut: ``DEBITWATCH_WEBHOOK_URL`` and friends."""
    url = env.get(ENV_PREFIX + "URL", "")
    if not url:
        return None
    table: dict[str, Any] = {"name": env.get(ENV_PREFIX + "NAME") or "default", "url": url}
    for key in _KEYS - {"name", "url", "secret_env", "secret_file"}:
        raw = env.get(ENV_PREFIX + key.upper(), "")
        if raw:
            table[key] = [p.strip() for p in raw.split(",")] if key in _LISTS else raw
    if env.get(ENV_PREFIX + "SECRET_FILE"):
        table["secret_file"] = env[ENV_PREFIX + "SECRET_FILE"]
    else:
        table["secret_env"] = ENV_PREFIX + "SECRET"
    return endpoint_from_mapping(table, where=f"${ENV_PREFIX}URL", environ=env)


_LISTS: Final = frozenset({"kinds", "statuses"})


def _text(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {key} is required (a non-empty string)")
    return value.strip()


def _url(url: str, where: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: url must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        # A password in the URL would be logged with it; receivers authenticate us by
        # the signature instead.
        raise ConfigError(f"{where}: url must not carry a user or password")
    return url


def _secret(table: Mapping[str, Any], where: str, environ: Mapping[str, str]) -> str:
    has_env, has_file = "secret_env" in table, "secret_file" in table
    if has_env == has_file:
        raise ConfigError(f"{where}: give exactly one of secret_env and secret_file")
    if has_env:
        variable = _text(table, "secret_env", where)
        secret = environ.get(variable, "").strip()
        if not secret:
            raise ConfigError(f"{where}: environment variable {variable} is unset or empty")
    else:
        path = Path(_text(table, "secret_file", where))
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(
                f"{where}: cannot read secret_file {path}: {error.strerror}"
            ) from error
    check_secret(secret, where)
    return secret


def check_secret(secret: str, where: str) -> None:
    """A Standard Webhooks secret: ``whsec_`` and base64 of 24-64 bytes (never echoed)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ConfigError(
            f"{where}: the secret must be 'whsec_' followed by base64 (docs/webhooks.md "
            "shows how to make one)"
        )
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as error:
        raise ConfigError(f"{where}: the secret after 'whsec_' is not valid base64") from error
    low, high = SECRET_BYTES
    if not low <= len(raw) <= high:
        raise ConfigError(f"{where}: the secret must decode to {low}-{high} bytes")


def _choices(table: Mapping[str, Any], key: str, enum: type[E], where: str) -> frozenset[E]:
    raw = table.get(key)
    if raw is None:
        return frozenset(enum)
    if not isinstance(raw, list) or not raw or not all(isinstance(v, str) for v in raw):
        raise ConfigError(f"{where}: {key} must be a non-empty list of strings")
    return frozenset(_member(enum, value, key, where) for value in raw)


def _choice(table: Mapping[str, Any], key: str, enum: type[E], default: E, where: str) -> E:
    raw = table.get(key)
    if raw is None:
        return default
    if not isinstance(raw, str):
        raise ConfigError(f"{where}: {key} must be a string")
    return _member(enum, raw, key, where)


def _member(enum: type[E], value: str, key: str, where: str) -> E:
    try:
        return enum(value.strip())
    except ValueError:
        known = ", ".join(str(member) for member in enum)
        raise ConfigError(f"{where}: {key}: unknown value {value!r}; known: {known}") from None


def _format(raw: object, where: str) -> Format:
    for known in FORMATS:
        if raw == known:
            return known
    raise ConfigError(f"{where}: format must be one of {', '.join(FORMATS)}, got {raw!r}")


def _int(table: Mapping[str, Any], key: str, default: int, where: str, *, minimum: int) -> int:
    raw = table.get(key, default)
    try:
        value = int(raw) if isinstance(raw, int | str) and not isinstance(raw, bool) else None
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ConfigError(f"{where}: {key} must be an integer >= {minimum}, got {raw!r}")
    return value
