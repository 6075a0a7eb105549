"""Where ``templates/`` and ``static/`` live, and the content hashes of static assets.

A repository checkout keeps them beside the package (``<repo>/templates``); an installed
wheel maps them into it (``livefeed/templates``). This module alone knows both layouts.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"cannot find the {name}/ directory next to or inside {_PACKAGE}")


TEMPLATES_DIR = _find("templates")
STATIC_DIR = _find("static")

# Modules under live/ import each other by plain relative URLs, so the version of the
# entry point must change whenever any of them changes.
_BUNDLES = {"live/main.js": "live"}


@cache
def asset_version(name: str) -> str:
    """A short content hash of ``static/<name>`` (and the modules it imports), computed once."""
    digest = hashlib.sha256()
    bundle = _BUNDLES.get(name)
    files = sorted((STATIC_DIR / bundle).rglob("*.js")) if bundle else [STATIC_DIR / name]
    for path in files:
        digest.update(path.relative_to(STATIC_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def asset_url(name: str) -> str:
    """The URL of a static asset, carrying its content hash so it can be cached forever."""
    return f"/static/{name}?v={asset_version(name)}"
