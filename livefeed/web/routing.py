"""One route per address, its handler chosen by the request's method."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Handler = Callable[[Request], Awaitable[Response]]


def resource(path: str, **handlers: Handler) -> Route:
    """The route of ``path``, with a handler per method: ``resource(path, GET=a, POST=b)``.

    One route per address, so a method it does not take is answered 405 with every method
    it does take in ``Allow``. HEAD is served by the GET handler, as Starlette does.
    """
    if len(handlers) == 1:
        [(method, handler)] = handlers.items()
        return Route(path, handler, methods=[method])

    async def by_method(request: Request) -> Response:
        handler = handlers.get(request.method) or handlers["GET"]  # HEAD: GET's handler
        return await handler(request)

    by_method.__name__ = "_".join(handler.__name__ for handler in handlers.values())
    return Route(path, by_method, methods=list(handlers))
