"""The exporter's HTTP side: `/metrics` for Prometheus, `/healthz` and `/readyz` for operators."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .collector import CONTENT_TYPE, FleetCollector

_GZIP_MIN_BYTES = 64 * 1024


def build_web_app(
    collector: FleetCollector,
    *,
    ready: Callable[[], bool],
    waiting_for: Callable[[], str],
    health: Callable[[], dict[str, Any]],
) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        if not ready():
            # Partial data would show wrong totals: say what is missing instead.
            return web.Response(status=503, text=f"not ready: {waiting_for()}\n")
        body = collector.render()
        headers = {"Content-Type": CONTENT_TYPE}
        if len(body) >= _GZIP_MIN_BYTES and "gzip" in request.headers.get("Accept-Encoding", ""):
            # zlib releases the GIL: compress off the loop so readings keep flowing.
            body = await asyncio.get_running_loop().run_in_executor(
                None, gzip.compress, body, 1
            )
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response(health())

    async def readyz(request: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {waiting_for()}\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
