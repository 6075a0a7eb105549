"""livefeed: a real-time live news feed server."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # `livefeed.publish_brief` without importing anything at `import livefeed`.
    if name == "publish_brief":
        from livefeed.cli.publish import publish_brief

        return publish_brief
    raise AttributeError(f"module 'livefeed' has no attribute {name!r}")
