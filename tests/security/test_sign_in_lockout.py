"""Sign-in lockout: wrong passwords for ``operator`` from one address must not lock the real
operator out from everywhere. Each browser here has its own loopback address (127.0.0.x),
so the server sees different clients exactly as it would on a network.
"""

from __future__ import annotations

import httpx

from livefeed import limits
from tests.conftest import LiveServer
from tests.editor_support import EditorBrowser
from tests.helpers import TIMEOUT


def browser_from(server: LiveServer, address: str) -> EditorBrowser:
    browser = EditorBrowser(server)
    transport = httpx.AsyncHTTPTransport(local_address=address)
    browser.client = httpx.AsyncClient(
        base_url=server.url, timeout=TIMEOUT, follow_redirects=False, transport=transport
    )
    return browser


async def test_guessing_the_operators_password_locks_the_guesser_not_the_operator(
    live_server: LiveServer,
) -> None:
    async with browser_from(live_server, "127.0.0.2") as attacker:
        for _ in range(limits.LOGIN_FAILURES_PER_NAME):
            assert (await attacker.try_login("operator", "wrong guess")).status_code == 401
        locked = await attacker.try_login("operator", "another guess")
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0
        # Locked for that name from that address, even with the right token.
        assert (await attacker.try_login("operator", live_server.token)).status_code == 429
    # The real operator, from a fresh address, signs in with the right token (slowed down
    # by the name-wide back-off, not refused).
    async with browser_from(live_server, "127.0.0.3") as operator:
        await operator.login("operator", live_server.token)


async def test_one_address_is_still_limited_across_names(live_server: LiveServer) -> None:
    async with browser_from(live_server, "127.0.0.10") as guesser:
        for i in range(limits.LOGIN_FAILURES_PER_ADDRESS):
            assert (await guesser.try_login(f"name{i}", "guess")).status_code == 401
        assert (await guesser.try_login("operator", live_server.token)).status_code == 429
    async with browser_from(live_server, "127.0.0.11") as operator:
        await operator.login("operator", live_server.token)
