"""Logging: one line per event that matters, plain for a terminal or JSON for collectors."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

PLAIN = "plain"
JSON = "json"
# Attributes every LogRecord has; anything else was passed with `extra=` and is kept.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators: in a
# plain log line a "\n" from a request path (%0a) would forge a line of its own.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    return match[0].encode("unicode_escape").decode("ascii")


class PlainFormatter(logging.Formatter):
    """One line per record: control characters in the message are escaped (``\\n``)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _CONTROL.sub(_escape, super().formatMessage(record))


def configure_logging(level: str, fmt: str) -> None:
    """Route livefeed's and uvicorn's loggers to stderr in the chosen format."""
    handler = logging.StreamHandler()
    if fmt == JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(PlainFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # livefeed logs each request itself, with its request id.
    logging.getLogger("uvicorn.access").disabled = True
