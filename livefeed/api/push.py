"""``/api/push/key``, ``/api/push/subscriptions`` and the service worker at ``/sw.js``.

The service worker is served from the root so its scope covers every page.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from livefeed import errors
from livefeed.errors import InvalidInput, LivefeedError
from livefeed.push.service import PushService
from livefeed.push.subscriptions import check_endpoint, parse_subscription
from livefeed.services import services_of
from livefeed.web import paths
from livefeed.web.requests import client_address, is_allowed_origin, read_json


def _push(request: Request) -> PushService:
    return services_of(request).push.get()


def _same_site(request: Request) -> None:
    """Subscriptions are made by our own pages (or listed origins), never by a foreign one."""
    if not is_allowed_origin(request, services_of(request).settings.allowed_origins):
        error = LivefeedError(
            "push subscriptions are made from this site", code=errors.FORBIDDEN_ORIGIN
        )
        error.status = 403
        raise error


async def public_key(request: Request) -> Response:
    """The VAPID public key, for ``PushManager.subscribe({applicationServerKey})``."""
    return JSONResponse(
        {"public_key": _push(request).vapid.public_key},
        headers={"Cache-Control": "no-cache"},
    )


async def subscribe(request: Request) -> Response:
    _same_site(request)
    subscription = parse_subscription(await read_json(request))
    settings = services_of(request).settings
    await check_endpoint(subscription.endpoint, settings.push_allowed_endpoints)
    push = _push(request)
    await push.limiter.hit(
        "push subscription",
        client_address(request, settings.trusted_proxies),
        settings.push_subscribe_rate,
    )
    sid = await push.store.subscribe(subscription.endpoint, subscription.to_record())
    return JSONResponse({"id": sid}, status_code=201)


async def unsubscribe(request: Request) -> Response:
    _same_site(request)
    payload = await read_json(request)
    endpoint = payload.get("endpoint") if isinstance(payload, dict) else None
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidInput('expected {"endpoint": "<the subscription\'s endpoint>"}')
    await _push(request).store.unsubscribe(endpoint)
    return Response(status_code=204)


async def service_worker(request: Request) -> Response:
    return FileResponse(
        paths.STATIC_DIR / "sw.js",
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/api/push/key", public_key, methods=["GET"]),
        Route("/api/push/subscriptions", subscribe, methods=["POST"]),
        Route("/api/push/subscriptions", unsubscribe, methods=["DELETE"]),
        Route("/sw.js", service_worker, methods=["GET"]),
    ]
