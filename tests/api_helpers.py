"""Driving the API gateway in tests: start it on a free port, call it, feed the bus directly."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import nats
import pytest
from aiohttp import web
from nats.js import JetStreamContext
from yarl import URL

from services.api.app import create_app
from services.api.appkeys import VIEWS
from services.api.settings import ApiSettings
from services.api.views import Views
from shared import streams, subjects
from shared.models import DashboardState, DeviceAdded, DeviceReading
from shared.registry import publish_added, publish_removed
from shared.settings import BusSettings
from shared.streams import ensure_streams
from tests.bus_helpers import wait_for

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TOKEN = "test-operator-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def api_settings(nats_url: str, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "host": "127.0.0.1",
        "port": 0,
        "operator_token": TOKEN,
        "probe_timeout": 1.0,
        "register_wait": 5.0,
    }
    values.update(overrides)
    return ApiSettings(**values)


class Gateway:
    """The gateway app served on a free loopback port, in the test's event loop."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.app: web.Application | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None

    @property
    def views(self) -> Views:
        assert self.app is not None
        return self.app[VIEWS]

    async def start(self) -> Gateway:
        self.app = create_app(self.settings)
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def ready(self) -> bool:
        return self.app is not None and all(self.views.caught_up.values())


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return str(self.headers.get("Content-Type", "")).split(";")[0]


class Client:
    """An HTTP client for one base URL; every call returns status, headers and body."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())

    async def request(self, method: str, path: str | URL, **kwargs: Any) -> Answer:
        """`path` is appended to the base URL; a full `URL` (e.g. `encoded=True`) is sent as it is."""
        target = path if isinstance(path, URL) else self.base_url + path
        async with self._session.request(method, target, allow_redirects=False, **kwargs) as r:
            return Answer(r.status, r.headers, await r.read())

    async def get(self, path: str | URL, **kwargs: Any) -> Answer:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("POST", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("DELETE", path, **kwargs)

    async def close(self) -> None:
        await self._session.close()


def reading(device_id: str, *, ok: bool = True, at: float | None = None, **values: Any) -> DeviceReading:
    at = time.time() if at is None else at
    fields: dict[str, Any] = {
        "device_id": device_id,
        "ok": ok,
        "poll_started_at": at - 0.01,
        "poll_finished_at": at,
    }
    if not ok:
        fields.setdefault("error", "timeout")
        fields.setdefault("error_message", "no complete answer within 3s")
    fields.update(values)
    return DeviceReading(**fields)


class BusWriter:
    """Publishes registry events, readings and dashboard states as the other services would."""

    def __init__(self) -> None:
        self._nc: nats.NATS | None = None

    async def start(self, url: str) -> BusWriter:
        self._nc = await nats.connect(url, name="test-bus-writer")
        await ensure_streams(self.js)
        return self

    @property
    def js(self) -> JetStreamContext:
        assert self._nc is not None
        return self._nc.jetstream()

    async def add(
        self, device_id: str, url: str | None = None, hostname: str | None = None, **extra: Any
    ) -> None:
        event = DeviceAdded(
            id=device_id,
            url=url or f"http://{device_id}.local/",
            hostname=hostname,
            at=time.time(),
            **extra,
        )
        await publish_added(self.js, event)

    async def remove(self, device_id: str) -> None:
        await publish_removed(self.js, device_id)

    async def reading(self, value: DeviceReading) -> None:
        await self.js.publish(subjects.reading(value.device_id), value.model_dump_json().encode())

    async def dashboard(self, key: str, kind: str = "published", **fields: Any) -> DashboardState:
        token = fields.pop("access_token", hashlib.sha256(key.encode()).hexdigest()[:32])
        values: dict[str, Any] = {
            "kind": kind,
            "device_id": key,
            "dashboard_uid": "pluto-overview" if key == subjects.OVERVIEW_KEY else f"pluto-d-{key}",
            "title": fields.pop("title", key),
            "updated_at": time.time(),
        }
        if kind == "published":
            values.update(
                public_uid=f"pub-{key}",
                access_token=token,
                public_path=f"/grafana/public-dashboards/{token}",
                created_at=time.time() - 60,
            )
        values.update(fields)
        state = DashboardState(**values)
        await self.js.publish(
            subjects.dashboard_event(key, kind), state.model_dump_json().encode(), stream=streams.DASHBOARDS
        )
        return state

    async def raw(self, subject: str, data: bytes) -> None:
        await self.js.publish(subject, data)

    async def stop(self) -> None:
        if self._nc is not None:
            await self._nc.close()


# --- fixtures for the gateway's route tests (imported by name) -----------------------


@pytest.fixture(name="bus")
async def bus_fixture(bus_settings: BusSettings) -> AsyncIterator[BusWriter]:
    writer = await BusWriter().start(bus_settings.nats_url)
    yield writer
    await writer.stop()


@pytest.fixture(name="gateway")
async def gateway_fixture(bus_settings: BusSettings, bus: BusWriter) -> AsyncIterator[Gateway]:
    gw = await Gateway(api_settings(bus_settings.nats_url)).start()
    await wait_for(gw.ready, what="gateway views caught up")
    yield gw
    await gw.stop()


@pytest.fixture(name="client")
async def client_fixture(gateway: Gateway) -> AsyncIterator[Client]:
    c = Client(gateway.url)
    yield c
    await c.close()
