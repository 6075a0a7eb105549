"""livefeed: a real-time live news feed server."""

__version__ = "0.1.0"
