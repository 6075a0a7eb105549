"""``/healthz`` (the process runs) and ``/readyz`` (it can serve readers now)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from livefeed.services import services_of
from livefeed.storage.connect import deployment, is_reachable, role


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = services_of(request)
    checks: dict[str, str] = {}
    reachable = await is_reachable(state.redis)
    checks["redis"] = "ok" if reachable else "failing: no answer to PING"
    # Which server answers: after a failover, operators check it is the new primary. Not
    # asked of a Redis that did not answer the PING: /readyz must answer within 2 s.
    redis_role = await role(state.redis) if reachable else "unknown"
    if redis_role == "slave":
        checks["redis"] = "failing: talking to a replica (a failover is under way)"
    redis = {"deployment": deployment(state.settings.redis_url or ""), "role": redis_role}
    checks["pubsub"] = "ok" if state.hub.is_ready else "failing: not subscribed or silent"
    checks["ingest"] = "ok" if state.ingest.is_running else "failing: consumer stopped"
    failing = [name for name, result in checks.items() if result != "ok"]
    if state.readers.going_away.is_set():
        failing.append("shutdown")
    if failing:
        body = {"status": "unavailable", "failing": failing, "checks": checks, "redis": redis}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "2"})
    return JSONResponse({"status": "ok", "checks": checks, "redis": redis})


routes = [Route("/healthz", healthz), Route("/readyz", readyz)]
