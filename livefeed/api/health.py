"""``/healthz`` (the process runs) and ``/readyz`` (it can serve readers now)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from livefeed.storage.connect import is_reachable


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = request.app.state
    checks: dict[str, str] = {}
    checks["redis"] = "ok" if await is_reachable(state.redis) else "failing: no answer to PING"
    checks["pubsub"] = "ok" if state.hub.is_ready else "failing: not subscribed or silent"
    checks["ingest"] = "ok" if state.ingest.is_running else "failing: consumer stopped"
    failing = [name for name, result in checks.items() if result != "ok"]
    if state.readers.going_away.is_set():
        failing.append("shutdown")
    if failing:
        body = {"status": "unavailable", "failing": failing, "checks": checks}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "2"})
    return JSONResponse({"status": "ok", "checks": checks})


routes = [Route("/healthz", healthz), Route("/readyz", readyz)]
