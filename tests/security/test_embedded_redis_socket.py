"""The embedded Redis is never on TCP without a password.

When ``<data dir>/redis.sock`` was too long for a unix socket, it fell back to 127.0.0.1 with
no password: any local user could read and write the newsroom's Redis.
"""

from __future__ import annotations

import stat
from pathlib import Path
from urllib.parse import unquote

import redis

from tests.test_embedded_redis import Servers, servers  # noqa: F401 (the fixture)


def test_a_long_data_dir_gets_a_short_private_socket_not_tcp(
    tmp_path: Path,
    servers: Servers,  # noqa: F811
) -> None:
    data_dir = tmp_path / ("newsroom-" * 12)
    assert len(str(data_dir / "redis.sock")) >= 104
    server = servers.new(data_dir)

    url, _ = servers.start(server)

    assert url.startswith("unix://"), url
    socket_path = Path(unquote(url.removeprefix("unix://")))
    assert len(str(socket_path)) < 104
    socket_dir = socket_path.parent
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
    with redis.Redis.from_url(url) as client:
        assert client.ping()
        assert client.config_get("port") == {"port": "0"}  # no TCP listener at all
        assert client.config_get("dir") == {"dir": str(data_dir)}
    server.stop()
    assert not socket_dir.exists()
