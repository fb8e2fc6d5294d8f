"""Driving the dashboards service in tests and benchmarks: register devices on the
real bus, watch dashboard events, wait for conditions with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from faststream import FastStream
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from services.dashboards.app import DashboardsService, create_app, service_of
from services.dashboards.settings import DashboardsSettings
from shared import subjects
from shared.models import DashboardState, DeviceAdded, DeviceRemoved

SECRET = "test-secret-0123456789abcdef"


async def eventually(
    check: Callable[[], Any] | Callable[[], Awaitable[Any]],
    *,
    timeout: float = 20.0,
    what: str = "condition",
) -> Any:
    """Poll `check` (sync or async) until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    last: Any = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.1)


def settings_for(nats_url: str, grafana_url: str, folder: Path, **overrides: Any) -> DashboardsSettings:
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "grafana_url": grafana_url,
        "dashboards_dir": folder,
        "token_secret": SECRET,
        "retry_initial": 0.05,
        "retry_max": 0.5,
        "load_timeout": 15.0,
        "reconcile_interval": 30.0,
        "grafana_timeout": 3.0,
    }
    values.update(overrides)
    return DashboardsSettings(**values)


class Fleet:
    """Registers devices and records every dashboard event, over its own NATS connection."""

    def __init__(self) -> None:
        self.states: dict[str, DashboardState] = {}
        self.history: list[tuple[float, DashboardState]] = []
        self.added_at: dict[str, float] = {}
        self._nc: nats.NATS | None = None
        self._js: JetStreamContext | None = None

    async def start(self, url: str) -> Fleet:
        self._nc = await nats.connect(url, name="test-fleet")
        self._js = self._nc.jetstream()
        await self._nc.subscribe("pluto.dashboards.>", cb=self._on_state)
        await self._nc.flush()
        return self

    async def stop(self) -> None:
        if self._nc is not None:
            await self._nc.drain()

    async def _on_state(self, msg: Msg) -> None:
        state = DashboardState.model_validate_json(msg.data)
        key = msg.subject.split(".")[2]
        assert msg.subject == subjects.dashboard_event(key, state.kind)
        self.states[key] = state
        self.history.append((time.monotonic(), state))

    async def add(self, device_id: str, hostname: str | None = None, **extra: Any) -> None:
        assert self._js is not None
        event = DeviceAdded(
            id=device_id, url=f"http://{device_id}.local/", hostname=hostname, at=time.time(), **extra
        )
        self.added_at[device_id] = time.monotonic()
        await self._js.publish(subjects.device_added(device_id), event.model_dump_json().encode())

    async def remove(self, device_id: str) -> None:
        assert self._js is not None
        event = DeviceRemoved(id=device_id, at=time.time())
        await self._js.publish(subjects.device_removed(device_id), event.model_dump_json().encode())

    async def publish_raw(self, subject: str, data: bytes) -> None:
        assert self._js is not None
        await self._js.publish(subject, data)

    def published(self, key: str) -> DashboardState | None:
        state = self.states.get(key)
        return state if state is not None and state.kind == "published" else None

    def unpublished(self, key: str) -> DashboardState | None:
        state = self.states.get(key)
        return state if state is not None and state.kind == "unpublished" else None


class Service:
    """The dashboards service app, started and stopped in the test's loop."""

    def __init__(self, settings: DashboardsSettings) -> None:
        self.settings = settings
        self.app: FastStream | None = None

    @property
    def service(self) -> DashboardsService:
        assert self.app is not None
        return service_of(self.app)

    async def start(self) -> Service:
        self.app = create_app(self.settings)
        await self.app.start()
        return self

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.stop()
            self.app = None
