"""Imports flow one way (STYLE.md): cli -> app -> transports, api, pages -> fanout -> storage."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import livefeed

PACKAGE = Path(livefeed.__file__).parent
PURE = {"events", "models", "errors", "limits", "settings", "stats", "lifecycle"}
HANDLERS = {"transports", "api", "pages", "editor"}

# For each layer (a top-level module or package): the livefeed layers it may import.
# The diagram of STYLE.md: cli -> serving; cli -> app -> handlers -> fanout -> storage -> redis;
# ingest -> storage; web is the HTTP plumbing the handlers share; the pure core imports nothing.
# services is the typed object app builds and the handlers read: it names the services
# (fanout, storage, ingest, push) and imports no handler, so no handler reaches another.
ALLOWED: dict[str, set[str]] = {
    "events": {"limits"},
    "models": {"limits", "errors"},
    "errors": set(),
    "limits": set(),
    "settings": set(),
    "stats": set(),
    "lifecycle": set(),
    "logs": set(),
    "storage": PURE,
    "fanout": {*PURE, "storage"},
    "web": PURE,
    "transports": {*PURE, "services", "fanout", "storage", "web"},
    "api": {*PURE, "services", "push", "storage", "web"},
    "pages": {*PURE, "services", "storage", "web"},
    "editor": {*PURE, "services", "fanout", "storage", "web"},
    "push": {*PURE, "storage"},
    "ingest": {*PURE, "storage"},
    "services": {*PURE, "fanout", "storage", "ingest", "push"},
    "embedded_redis": set(),
    "serving": PURE,
    "app": {*PURE, *HANDLERS, "services", "push", "fanout", "storage", "web", "ingest", "logs"},
    "cli": {*PURE, "app", "serving", "embedded_redis", "storage", "logs", "__init__"},
    "__main__": {"cli"},
    "__init__": {"cli"},
}
# Who may talk to Redis directly (app only to map its errors to 503 answers).
REDIS_USERS = {"storage", "fanout", "app", "ingest", "cli", "push"}


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "livefeed":
                for alias in node.names:
                    is_module = (PACKAGE / alias.name).is_dir() or (
                        PACKAGE / f"{alias.name}.py"
                    ).exists()
                    names.add(f"livefeed.{alias.name}" if is_module else "livefeed")
            else:
                names.add(node.module)
    return names


def test_every_module_has_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        assert _layer(path) in ALLOWED, f"{path} is in no layer of tests/test_layers.py"


def test_no_import_points_up_the_layers() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        layer = _layer(path)
        for name in _imports(path):
            if name == "livefeed":
                target = "__init__"
            elif name.startswith("livefeed."):
                target = name.split(".")[1]
            else:
                if name.split(".")[0] == "redis" and layer not in REDIS_USERS:
                    violations.append(f"{path.relative_to(PACKAGE)} imports {name}")
                if name.split(".")[0] == "starlette" and layer in {
                    "fanout",
                    "storage",
                    *PURE,
                }:
                    violations.append(f"{path.relative_to(PACKAGE)} imports {name}")
                continue
            if target != layer and target not in ALLOWED[layer]:
                violations.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert violations == []


# `request.app.state`, `websocket.app.state`, `getattr(app, "state", ...)`: the untyped bag.
_APP_STATE = re.compile(r"\bapp\.state\b|getattr\(\s*[\w.]*\bapp\b")


def test_only_services_reads_app_state() -> None:
    """What the app holds is reached through ``services_of``, typed (STYLE.md)."""
    readers = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "services.py" and _APP_STATE.search(path.read_text())
    ]
    assert readers == []
