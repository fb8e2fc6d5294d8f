"""`/healthz` and `/readyz` of the poller and the dashboards service (shared/health.py).

The helper on its own, then each service over a real nats-server (and the Grafana
double for the dashboards service): started while NATS is down, so /healthz answers
and /readyz says why not; ready once connected and caught up; out again while NATS
is away. Every wait is a condition polled against a deadline; nothing is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from faststream import FastStream

from pluto.natsd import NatsServer, free_port
from services.dashboards.app import create_app as create_dashboards
from services.dashboards.app import service_of
from services.poller.app import PollerService
from services.poller.app import create_app as create_poller
from services.poller.settings import PollerSettings
from services.simulator.server import RunningSimulator, start_simulator
from shared.health import Health, HealthServer
from shared.models import DeviceAdded
from shared.registry import publish_added
from shared.streams import ensure_streams
from tests.bus_helpers import wait_for
from tests.grafana_double import GrafanaDouble
from tests.grafana_double.harness import Fleet, eventually, settings_for


async def get(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.json()


async def refused(url: str) -> bool:
    try:
        await get(url)
    except aiohttp.ClientConnectionError:
        return True
    return False


def endpoint(server: HealthServer) -> str:
    assert server.url is not None, "the health endpoint is not serving"
    return server.url


@contextlib.asynccontextmanager
async def starting(app: FastStream) -> AsyncIterator[asyncio.Task[None]]:
    """`app.start()` in the background (it waits for NATS); the app is stopped on the way out."""
    task = asyncio.create_task(app.start())
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(BaseException):
            await task
        with contextlib.suppress(Exception):
            await app.stop()


# -- the helper -----------------------------------------------------------------------------------


class Switch:
    def __init__(self) -> None:
        self.health = Health(ready=False, reason="warming up", facts={"widgets": 3, "service": "spoof"})

    def __call__(self) -> Health:
        return self.health


async def test_readyz_follows_the_check_and_healthz_always_answers() -> None:
    check = Switch()
    server = HealthServer("unit", check, host="127.0.0.1", port=0)
    await server.start()
    base = endpoint(server)
    try:
        status, body = await get(base + "/readyz")
        assert (status, body) == (503, {"service": "unit", "ready": False, "reason": "warming up"})
        status, body = await get(base + "/healthz")
        assert status == 200
        assert body["alive"] is True and body["ready"] is False and body["reason"] == "warming up"
        assert body["widgets"] == 3
        assert body["service"] == "unit"  # a fact cannot pass for the fixed fields
        assert body["uptime_s"] >= 0

        check.health = Health(ready=True, facts={"widgets": 4})
        status, body = await get(base + "/readyz")
        assert (status, body) == (200, {"service": "unit", "ready": True})
        status, body = await get(base + "/healthz")
        assert status == 200 and body["ready"] is True and body["reason"] is None and body["widgets"] == 4
    finally:
        await server.stop()
    assert server.port is None and await refused(base + "/healthz")


async def test_a_failing_check_is_not_ready_but_still_alive(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> Health:
        raise KeyError("oops")

    server = HealthServer("unit", broken, host="127.0.0.1", port=0)
    await server.start()
    try:
        status, body = await get(endpoint(server) + "/readyz")
        assert status == 503 and "health check failed" in body["reason"]
        status, body = await get(endpoint(server) + "/healthz")
        assert status == 200 and body["alive"] is True and body["ready"] is False
    finally:
        await server.stop()
    assert "the health check failed" in caplog.text


async def test_a_taken_port_is_logged_and_the_service_carries_on(caplog: pytest.LogCaptureFixture) -> None:
    first = HealthServer("first", Switch(), host="127.0.0.1", port=0)
    await first.start()
    assert first.port is not None
    second = HealthServer("second", Switch(), host="127.0.0.1", port=first.port)
    try:
        with caplog.at_level(logging.ERROR, logger="shared.health"):
            await second.start()  # does not raise
        assert second.port is None and second.url is None
        assert "second: cannot serve /healthz" in caplog.text
        status, body = await get(endpoint(first) + "/healthz")
        assert status == 200 and body["service"] == "first"
    finally:
        await second.stop()
        await first.stop()


def test_default_ports_do_not_collide() -> None:
    from services.api.settings import ApiSettings
    from services.dashboards.settings import DashboardsSettings
    from services.exporter.settings import ExporterSettings

    ports = {
        "poller": PollerSettings.model_fields["health_port"].default,
        "dashboards": DashboardsSettings.model_fields["health_port"].default,
        "exporter": ExporterSettings.model_fields["port"].default,
        "api": ApiSettings.model_fields["port"].default,
    }
    assert ports["poller"] == 9111 and ports["dashboards"] == 9112
    assert len(set(ports.values())) == len(ports), ports
    for cls in (PollerSettings, DashboardsSettings):
        assert cls.model_fields["health_host"].default == "127.0.0.1"  # deploy/ sets 0.0.0.0


# -- the poller -----------------------------------------------------------------------------------


class HeldEvent(asyncio.Event):
    """Stands in for the poller's `registry_caught_up`: notes when the replay says it is
    done, and passes that on only when released, so the test can look in between."""

    def __init__(self) -> None:
        super().__init__()
        self.reached = False
        self._released = False

    def set(self) -> None:
        self.reached = True
        if self._released:
            super().set()

    def release(self) -> None:
        self._released = True
        if self.reached:
            super().set()


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    sim = await start_simulator(devices=2, seed=3)
    yield sim
    await sim.stop()


async def register(url: str, devices: dict[str, str]) -> None:
    async with await nats.connect(url) as nc:
        js = nc.jetstream()
        await ensure_streams(js)
        for device_id, device_url in devices.items():
            await publish_added(js, DeviceAdded(id=device_id, url=device_url, at=time.time()))


async def test_poller_is_ready_once_connected_and_caught_up(
    nats_server: NatsServer, simulator: RunningSimulator
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/"  # nothing listens: this device fails
    devices = {"health-ok-1": simulator.device_urls[0], "health-ok-2": simulator.device_urls[1]}
    await register(nats_server.url, {**devices, "health-down": nowhere})
    nats_server.stop()  # the poller starts before NATS is back

    settings = PollerSettings(nats_url=nats_server.url, interval_s=0.5, timeout_s=0.4, health_port=0)
    app = create_poller(settings, rng=random.Random(1))
    service = app.context.get("poller")
    assert isinstance(service, PollerService)
    held = HeldEvent()
    service.registry_caught_up = held  # before start: follow_registry is handed this one

    async with starting(app) as start:
        await wait_for(lambda: service.health_endpoint.port is not None, what="the health endpoint")
        base = endpoint(service.health_endpoint)
        status, body = await get(base + "/healthz")
        assert status == 200 and body["alive"] is True and body["nats_connected"] is False
        status, body = await get(base + "/readyz")
        assert (status, body["reason"]) == (503, "NATS not connected")

        await nats_server.start()
        await start  # connected; the replay runs
        await wait_for(lambda: held.reached, what="the end of the registry replay")
        status, body = await get(base + "/readyz")
        assert (status, body["reason"]) == (503, "replaying the device registry")
        status, body = await get(base + "/healthz")
        assert body["nats_connected"] is True and body["registry_caught_up"] is False

        held.release()
        status, body = await get(base + "/readyz")
        assert (status, body) == (200, {"service": "poller", "ready": True})

        async def polling() -> dict[str, Any] | None:
            _, facts = await get(base + "/healthz")
            done = facts["failing_devices"] == 1 and facts["readings_published"] >= 3
            return facts if done else None

        facts = await eventually(polling, what="every device polled, one failing")
        assert facts["devices_polled"] == 3 and facts["registry_caught_up"] is True

        # NATS goes away: not ready, still alive; back: ready again.
        nats_server.kill()
        await eventually(lambda: _status(base + "/readyz", 503), what="503 while NATS is away")
        status, body = await get(base + "/healthz")
        assert status == 200 and body["nats_connected"] is False
        await nats_server.start()
        await eventually(lambda: _status(base + "/readyz", 200), what="ready after NATS is back")

    assert await refused(base + "/healthz"), "the endpoint outlived the service"


async def _status(url: str, expected: int) -> bool:
    status, _ = await get(url)
    return status == expected


# -- the dashboards service ---------------------------------------------------------------------


@pytest.fixture
async def double(tmp_path: Path) -> AsyncIterator[GrafanaDouble]:
    grafana = GrafanaDouble(tmp_path / "dashboards", scan_interval=0.2)
    await grafana.start()
    yield grafana
    await grafana.stop()


async def test_dashboards_is_ready_while_consuming_and_says_whether_grafana_answers(
    nats_server: NatsServer, double: GrafanaDouble, tmp_path: Path
) -> None:
    nats_server.stop()  # the service starts before NATS is back
    app = create_dashboards(settings_for(nats_server.url, double.url, tmp_path / "dashboards", health_port=0))
    service = service_of(app)

    async with starting(app) as start:
        await wait_for(lambda: service.health_endpoint.port is not None, what="the health endpoint")
        base = endpoint(service.health_endpoint)
        status, body = await get(base + "/healthz")
        assert status == 200 and body["alive"] is True
        assert body["consumer_running"] is False and body["grafana_reachable"] is None
        status, body = await get(base + "/readyz")
        assert (status, body["reason"]) == (503, "NATS not connected")

        await nats_server.start()
        await start  # connected, consumer running
        status, body = await get(base + "/readyz")
        assert (status, body) == (200, {"service": "dashboards", "ready": True})

        async def facts_where(**wanted: Any) -> dict[str, Any] | None:
            _, facts = await get(base + "/healthz")
            return facts if all(facts[k] == v for k, v in wanted.items()) else None

        await eventually(lambda: facts_where(grafana_reachable=True), what="Grafana seen answering")

        fleet = await Fleet().start(nats_server.url)
        try:
            # Grafana down: the work waits, the service stays ready (retrying is its job).
            await double.stop()
            await fleet.add("healthrig01", "rig")
            await eventually(
                lambda: facts_where(grafana_reachable=False, events_awaiting_retry=1),
                what="Grafana seen down, the event waiting",
            )
            status, _ = await get(base + "/readyz")
            assert status == 200

            await double.start()
            await eventually(lambda: fleet.published("healthrig01"), what="the dashboard published")
            await eventually(
                lambda: facts_where(grafana_reachable=True, events_awaiting_retry=0, events_in_flight=0),
                what="nothing left waiting",
            )
        finally:
            await fleet.stop()

    assert await refused(base + "/healthz"), "the endpoint outlived the service"
