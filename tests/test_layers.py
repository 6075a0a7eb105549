"""Imports flow one way (STYLE.md): cli -> app -> transports, api, pages -> hub -> storage."""

from __future__ import annotations

import ast
from pathlib import Path

import livefeed

PACKAGE = Path(livefeed.__file__).parent
PURE = {"events", "models", "errors", "limits", "settings", "stats", "lifecycle"}

# For each layer: the livefeed modules (by dotted prefix) it may import.
ALLOWED: dict[str, set[str]] = {
    "events": {"limits"},
    "models": {"limits", "errors"},
    "errors": set(),
    "limits": set(),
    "settings": set(),
    "stats": set(),
    "lifecycle": set(),
    "logs": set(),
    "metrics": {*PURE},
    "storage": {*PURE, "storage"},
    "hub": {*PURE, "storage"},
    "readers": set(),
    "subscription": {*PURE, "hub", "storage"},
    "http": PURE,
    "transports": {*PURE, "transports", "subscription", "hub", "readers", "storage", "http"},
    "api": {*PURE, "api", "http", "storage"},
    "pages": {*PURE, "http", "paths", "storage", "templating"},
    "editor": {*PURE, "editor", "http", "paths", "readers", "storage", "templating"},
    "templating": {*PURE, "paths"},
    "client": {*PURE, "__init__"},
    "paths": set(),
    "demo": {*PURE, "storage"},
    "embedded_redis": set(),
    "server": {*PURE, "readers", "protocols"},
    "protocols": {*PURE},
    "guard": {*PURE, "http"},
    "ingest": {*PURE, "storage"},
    "publish": {*PURE, "storage"},
    "app": {
        *PURE,
        "api",
        "transports",
        "pages",
        "editor",
        "hub",
        "readers",
        "storage",
        "demo",
        "http",
        "ingest",
        "metrics",
        "logs",
        "guard",
        "feeds",
        "embed",
        "cors",
        "push",
    },
    "cli": {
        *PURE,
        "app",
        "embedded_redis",
        "server",
        "__init__",
        "publish",
        "logs",
        "workers",
        "newsroom",
    },
    "newsroom": {*PURE, "client", "storage", "embedded_redis"},
    "workers": {"server"},
    "__main__": {"cli"},
    "__init__": {"publish"},
    "feeds": {*PURE, "storage", "templating"},
    "embed": {*PURE, "pages", "storage"},
    "cors": {*PURE},
    "push": {*PURE, "push", "http", "paths", "storage"},
}
# Who may talk to Redis directly (app only to map its errors to 503 answers).
REDIS_USERS = {"storage", "hub", "subscription", "app", "ingest", "publish", "newsroom", "push"}


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
                    "hub",
                    "storage",
                    "subscription",
                    *PURE,
                }:
                    violations.append(f"{path.relative_to(PACKAGE)} imports {name}")
                continue
            if target != layer and target not in ALLOWED[layer]:
                violations.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert violations == []
