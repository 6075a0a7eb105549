"""Settings: one frozen object, read once from ``LIVEFEED_*`` env vars and ``serve`` flags.

``SETTINGS`` is the single list of settings: it generates the CLI flags and the env var
names, renders the README table (``python -m livefeed settings-table``), and
``tests/test_docs.py`` fails when the README misses one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

ENV_PREFIX = "LIVEFEED_"
_RATE = re.compile(r"\s*(\d{1,6})\s*/\s*(second|minute|hour)\s*")
_WINDOWS = {"second": 1, "minute": 60, "hour": 3600}


class SettingsError(ValueError):
    """A setting has a value livefeed cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` events per ``window`` seconds."""

    count: int
    window: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = _RATE.fullmatch(text)
        if match is None or int(match[1]) < 1:
            raise ValueError(f"expected N/second, N/minute or N/hour, got {text!r}")
        return cls(int(match[1]), _WINDOWS[match[2]])

    def __str__(self) -> str:
        unit = {v: k for k, v in _WINDOWS.items()}[self.window]
        return f"{self.count}/{unit}"


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"expected a whole number of 0 or more, got {text!r}")
    return value


def _phrases(text: str) -> tuple[str, ...]:
    return tuple(p.strip().lower() for p in text.split(",") if p.strip())


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(f"expected a port number, got {text!r}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 3600:
        raise ValueError(f"expected seconds from 0 to 3600, got {text!r}")
    return value


def _log_format(text: str) -> str:
    if text not in {"plain", "json"}:
        raise ValueError(f"expected plain or json, got {text!r}")
    return text


def _networks(text: str) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def _origins(text: str) -> tuple[str, ...]:
    return tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())


def _optional_port(text: str) -> int | None:
    return _port(text) if text.strip() else None


def _optional(text: str) -> str | None:
    return text or None


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the settings table."""

    name: str
    default: str
    help: str
    parse: Callable[[str], Any] = str
    secret: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _secret(name: str, help: str) -> Setting:
    """A setting that holds a secret: empty unless set, and masked wherever it is shown."""
    return Setting(name, "", help, _optional, secret=True)


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "Address to listen on."),
    Setting("port", "8000", "Port to listen on (0 picks a free one).", _port),
    _secret(
        "redis_url",
        "Redis URL (redis://, rediss://, unix://; redis+cluster://host:port; "
        "redis+sentinel://[user:pass@]host:port[,host:port...]/<master>[?db=N], and "
        "rediss+ for TLS). Empty: start an embedded Redis in DATA_DIR.",
    ),
    Setting("redis_prefix", "livefeed:", "Prefix of every Redis key and channel livefeed uses."),
    Setting(
        "redis_min_replicas",
        "0",
        "Replicas that must confirm a write (WAIT) before it is answered 201; else 503 with "
        "Retry-After. 0: answer once the primary has it.",
        _non_negative_int,
    ),
    Setting(
        "data_dir",
        "./.livefeed",
        "Where the embedded Redis keeps its data (AOF) and socket.",
        Path,
    ),
    Setting(
        "redis_server",
        "",
        "The redis-server/valkey-server binary for the embedded Redis. Empty: search PATH.",
        _optional,
    ),
    _secret(
        "editor_token",
        "Operator token for editor writes (Authorization: Bearer). Empty: generated and "
        "printed once at start.",
    ),
    _secret(
        "secret_key",
        "Key that signs editor session cookies. Empty: a random key kept in Redis, shared by "
        "every process.",
    ),
    Setting(
        "allowed_origins",
        "",
        "Comma-separated browser origins allowed besides the site's own (WebSocket, SSE, and "
        "CORS on GET lists, feeds and /events). Empty: same origin only.",
        _origins,
    ),
    Setting(
        "trusted_proxies",
        "",
        "Comma-separated addresses or networks (CIDR) of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto / Forwarded are believed. Empty: none, "
        "loopback included.",
        _networks,
    ),
    Setting(
        "max_connections_per_ip",
        "100",
        "Live connections (WebSocket + SSE) one client address may hold per process.",
        _positive_int,
    ),
    Setting(
        "history_size",
        "1000",
        "Events kept per topic; a reader who missed at most this many resumes without loss.",
        _positive_int,
    ),
    Setting(
        "comment_rate",
        "5/minute",
        "Comments one client address may post: N/second, N/minute or N/hour.",
        Rate.parse,
    ),
    Setting(
        "report_rate",
        "10/hour",
        "Comment reports one client address may send: N/second, N/minute or N/hour.",
        Rate.parse,
    ),
    Setting(
        "comment_blocklist",
        "",
        "Comma-separated words or phrases (case-insensitive, whole words) that hold a comment"
        " for moderation.",
        _phrases,
    ),
    Setting(
        "comment_max_links",
        "2",
        "A comment with more links than this is held for moderation.",
        _non_negative_int,
    ),
    Setting("workers", "1", "Server processes sharing the port.", _positive_int),
    Setting(
        "drain_seconds",
        "4",
        "On shutdown, readers are sent away (1001) at moments spread over this many seconds.",
        _seconds,
    ),
    Setting("demo", "false", "Load the demo article and its briefs once (idempotent).", _bool),
    Setting("log_level", "info", "Log level: debug, info, warning, error."),
    Setting("log_format", "plain", "Log lines: plain (for a terminal) or json.", _log_format),
    Setting(
        "metrics_port",
        "",
        "Serve /metrics on this internal port instead of the public one (with --workers N, "
        "worker i on METRICS_PORT+i). Empty: on the public port.",
        _optional_port,
    ),
    _secret(
        "metrics_token",
        "If set, /metrics needs Authorization: Bearer <this token>.",
    ),
    Setting(
        "embed_origins",
        "",
        "Comma-separated origins whose pages may frame /embed/read-next (frame-ancestors). "
        "Empty: no site may frame it.",
        _origins,
    ),
    _secret(
        "vapid_private_key",
        "Web Push VAPID private key (base64url raw P-256 key or PEM). Empty: a key pair "
        "generated once and kept in Redis.",
    ),
    Setting(
        "vapid_subject",
        "mailto:newsroom@example.com",
        "Web Push VAPID contact (mailto: or https: URL) push services may use to reach you.",
    ),
    Setting(
        "push_allowed_endpoints",
        "",
        "Comma-separated URL prefixes admitted as push endpoints besides public https:// "
        "hosts (e.g. a test push service on http://127.0.0.1). Empty: none.",
        _origins,
    ),
    Setting(
        "push_subscribe_rate",
        "10/minute",
        "Push subscriptions one client address may create: N/second, N/minute or N/hour.",
        Rate.parse,
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, parsed and frozen. Build with ``Settings.load`` or ``Settings()``."""

    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str | None = None
    redis_prefix: str = "livefeed:"
    redis_min_replicas: int = 0
    data_dir: Path = Path("./.livefeed")
    redis_server: str | None = None
    editor_token: str | None = None
    secret_key: str | None = None
    allowed_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    max_connections_per_ip: int = 100
    history_size: int = 1000
    comment_rate: Rate = Rate(5, 60)
    report_rate: Rate = Rate(10, 3600)
    comment_blocklist: tuple[str, ...] = ()
    comment_max_links: int = 2
    workers: int = 1
    drain_seconds: float = 4.0
    demo: bool = False
    log_level: str = "info"
    log_format: str = "plain"
    metrics_port: int | None = None
    metrics_token: str | None = None
    embed_origins: tuple[str, ...] = ()
    vapid_private_key: str | None = None
    vapid_subject: str = "mailto:newsroom@example.com"
    push_allowed_endpoints: tuple[str, ...] = ()
    push_subscribe_rate: Rate = Rate(10, 60)

    @classmethod
    def load(
        cls, env: Mapping[str, str], overrides: Mapping[str, str | None] | None = None
    ) -> Settings:
        """Defaults, then ``LIVEFEED_*`` from ``env``, then ``overrides`` (CLI flags, as text)."""
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = env.get(setting.env, setting.default)
            override = overrides.get(setting.name) if overrides else None
            if override is not None:
                raw = override
            try:
                values[setting.name] = setting.parse(str(raw))
            except ValueError as exc:
                raise SettingsError(f"{setting.env} / {setting.flag}: {exc}") from None
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """Every setting as its ``LIVEFEED_*`` variable, unmasked: how worker processes get them."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, tuple):
                text = ",".join(str(v) for v in value)
            else:
                text = "" if value is None else str(value)
            env[_BY_NAME[f.name].env] = text
        return env

    def public(self) -> dict[str, str]:
        """Every setting as text for the startup log, secrets masked."""
        shown = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if _BY_NAME[f.name].secret and value:
                shown[f.name] = "********"
            elif isinstance(value, tuple):
                shown[f.name] = ",".join(str(v) for v in value)
            else:
                shown[f.name] = "" if value is None else str(value)
        return shown


def settings_table() -> str:
    """The README's configuration table, in Markdown."""
    rows = ["| env var | flag | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default else "(empty)"
        rows.append(f"| `{s.env}` | `{s.flag}` | {default} | {s.help} |")
    return "\n".join(rows)


def mask_url(url: str) -> str:
    """``url`` with its password (and user) replaced, fit for logs and messages.

    Both places a Redis URL can carry a secret are masked: ``user:password@`` and the
    ``?password=`` (and ``?username=``) query parameters, which redis-py accepts too.
    """
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    masked = f"{scheme}{sep}***@{host}" if at and credentials else url
    return _SECRET_PARAM.sub(r"\1***", masked)


# Also the sentinels' own password, which a Sentinel URL carries as a query parameter.
_SECRET_PARAM = re.compile(
    r"([?&;](?:password|username|user|pass|sentinel_password)=)[^&;#]*", re.IGNORECASE
)
