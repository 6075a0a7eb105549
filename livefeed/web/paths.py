"""Where ``templates/`` and ``static/`` live, and the content hashes of static assets.

A repository checkout keeps them beside the package (``<repo>/templates``); an installed
wheel maps them into it (``livefeed/templates``). This module alone knows both layouts.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # livefeed/, from livefeed/web/


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"cannot find the {name}/ directory next to or inside {_PACKAGE}")


TEMPLATES_DIR = _find("templates")
STATIC_DIR = _find("static")


@cache
def asset_version(name: str) -> str:
    """A short content hash of ``static/<name>``, computed once per process."""
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]


def asset_url(name: str) -> str:
    """The URL of a static asset, carrying its content hash so it can be cached forever."""
    return f"/static/{name}?v={asset_version(name)}"


@cache
def import_map() -> str:
    """The pages' import map: every JS module's plain URL mapped to its versioned one.

    Modules import each other by plain relative URLs (``./render.js``); the browser
    resolves those to ``/static/live/render.js`` and this map turns that into the URL with
    the module's own content hash. A page therefore runs exactly the modules of the
    deploy that rendered it, each cacheable for good, and a deploy that changes one module
    changes one URL.
    """
    modules = sorted(p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*.js"))
    imports = {f"/static/{name}": asset_url(name) for name in modules}
    return json.dumps({"imports": imports}, separators=(",", ":"), sort_keys=True)


@cache
def script_src() -> str:
    """CSP ``script-src``: our own files, and the inline import map by its hash."""
    digest = base64.b64encode(hashlib.sha256(import_map().encode()).digest()).decode()
    return f"'self' 'sha256-{digest}'"


@cache
def release() -> str:
    """A short hash of what renders the pages: livefeed's code, templates and static files.
    Every process of one deploy computes the same; a deploy that changes any, another."""
    digest = hashlib.sha256()
    files = [(root, p) for root in (_PACKAGE, TEMPLATES_DIR, STATIC_DIR) for p in root.rglob("*")]
    for root, path in sorted(files):
        if path.is_file() and path.suffix != ".pyc":
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
