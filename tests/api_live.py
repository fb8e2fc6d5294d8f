"""A live stack for synchronous tests (schemathesis, hypothesis): nats-server, an upstream
for the /grafana/ proxy and the gateway, served from an event loop in a background thread.

Also the echo upstream: a stand-in Grafana that records every request's headers.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from multidict import CIMultiDict

from pluto.natsd import NatsServer
from tests.api_helpers import BusWriter, Gateway, api_settings
from tests.bus_helpers import wait_for

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Received:
    method: str
    path_qs: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class EchoUpstream:
    """Answers anything with 200 and a few headers the proxy must rewrite; records what it got."""

    sub_path: str = "/grafana"
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> EchoUpstream:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._echo)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}{self.sub_path}"
        return self

    async def _echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(request.method, request.raw_path, CIMultiDict(request.headers), body))
        response = web.json_response({"path": request.path_qs, "method": request.method})
        response.headers["X-Frame-Options"] = "deny"
        response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors *"
        response.set_cookie("grafana_session", "upstream-session")
        return response

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class LiveStack:
    """Everything the gateway needs, running on its own loop until `close()`."""

    def __init__(self, tmp: Path, *, echo: bool = True, **settings: Any) -> None:
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-stack", daemon=True)
        self.echo = EchoUpstream() if echo else None
        self.nats: NatsServer | None = None
        self.gateway: Gateway | None = None
        self.bus: BusWriter | None = None
        self._settings = settings

    def run(self, coroutine: Awaitable[T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)  # type: ignore[arg-type]

    def start(self) -> LiveStack:
        self.thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        self.nats = NatsServer(self.tmp / "nats", log_file=self.tmp / "nats.log")
        await self.nats.start()
        self.bus = await BusWriter().start(self.nats.url)
        if self.echo is not None:
            await self.echo.start()
            self._settings.setdefault("grafana_url", self.echo.url)
        self.gateway = await Gateway(api_settings(self.nats.url, **self._settings)).start()
        await wait_for(self.gateway.ready, what="gateway views caught up")

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return self.gateway.url

    def close(self) -> None:
        async def stop() -> None:
            if self.gateway is not None:
                await self.gateway.stop()
            if self.bus is not None:
                await self.bus.stop()
            if self.echo is not None:
                await self.echo.stop()
            if self.nats is not None:
                self.nats.stop()

        try:
            self.run(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
