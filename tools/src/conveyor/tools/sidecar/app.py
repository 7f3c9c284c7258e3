"""The sidecar's HTTP surface: the invocation websocket, the tool list, probes and metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from conveyor.tools.protocol import PROTOCOL
from conveyor.tools.sidecar.service import Sidecar


def create_app(sidecar: Sidecar) -> Starlette:
    async def invocations(ws: WebSocket) -> None:
        await sidecar.serve(ws)

    async def tools(request: Request) -> Response:
        return JSONResponse(sidecar.specs())

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        # Fail closed: a tool whose sandbox cannot be set up is listed with the reason.
        refused = any(
            tool.network in sidecar.pool.refused for tool in sidecar.config.tools.values()
        )
        unavailable = sidecar.unavailable()
        # Not ready while a built-in tool cannot be served: the operator turns this into a
        # Degraded condition with the reasons (docs/deploy.md, "Tool sandbox in the pod"). An
        # MCP server that failed is listed too, but keeps no other tool from being served.
        body = {
            "ready": sidecar.pool.is_warm()
            and sidecar.mcp.listed
            and not sidecar.draining
            and not refused,
            "unavailable": unavailable,
            "draining": sidecar.draining,
            "protocol": PROTOCOL,
            "workers_ready": sum(len(r) for r in sidecar.pool.ready.values()),
            "isolation": sidecar.pool.applied,
        }
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(sidecar.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sidecar.start()
        try:
            yield
        finally:
            await sidecar.close()

    return Starlette(
        routes=[
            WebSocketRoute("/v1/invocations", invocations),
            Route("/v1/tools", tools),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ],
        lifespan=lifespan,
    )
