"""Helpers and fixtures for the exporter tests: readings, a running exporter, scraping, waiting."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import nats
import pytest
from nats.aio.client import Client as NATS
from prometheus_client.parser import text_string_to_metric_families

from pluto.prometheusd import PrometheusProcess
from services.exporter.app import ExporterApp, create_app
from services.exporter.settings import ExporterSettings
from shared import subjects
from shared.models import DeviceAdded, DeviceReading, DeviceRemoved
from shared.settings import BusSettings
from shared.streams import ensure_streams


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")

T = TypeVar("T")


def require_binary(name: str) -> str:
    """The binary's path; without it: fail under CI, skip elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not on PATH (Debian package `prometheus` brings prometheus and promtool)"
        if in_ci():
            pytest.fail(f"CI=true and {message}")
        pytest.skip(message)
    return path


def make_reading(device_id: str, t: float | None = None, **fields: Any) -> DeviceReading:
    """A successful new-firmware reading with plausible values; `fields` override any."""
    t = time.time() if t is None else t
    values: dict[str, Any] = dict(
        device_id=device_id, ok=True, poll_started_at=t - 0.05, poll_finished_at=t,
        hostname=f"host-{device_id}", firmware="new", firmware_version="v2.5.0",
        asic_model="BM1370", board_version="601", device_model="Gamma", asic_count=1,
        hashrate_ghs=1000.5, hashrate_1m_ghs=1001.25, hashrate_10m_ghs=999.75,
        hashrate_1h_ghs=1000.125, hashrate_1d_ghs=998.5, expected_hashrate_ghs=1100.0,
        error_percentage=0.25, power_watts=15.5, voltage_volts=5.125, current_amps=3.025,
        core_voltage_volts=1.15, core_voltage_actual_volts=1.148, frequency_mhz=525.0,
        efficiency_jth=15.49, asic_temp_celsius=55.5, temp2_celsius=50.25, vr_temp_celsius=60.75,
        fan_percent=80.0, fan_rpm=5000.0, fan2_rpm=4800.0, shares_accepted=12_345,
        shares_rejected=12, best_diff=4.93e9, best_session_diff=1.25e6,
        stratum_url="mine.ocean.xyz", stratum_port=3334, uptime_seconds=3600.0,
        free_heap_bytes=150_000, wifi_rssi=-50.0,
    )
    values.update(fields)
    return DeviceReading(**values)


def nan_reading_json(device_id: str, attr: str) -> bytes:
    """A reading whose `attr` is the JSON extension `NaN` (pydantic would write null)."""
    data = make_reading(device_id, **{attr: 1.0}).model_dump_json()
    assert f'"{attr}":1.0' in data
    return data.replace(f'"{attr}":1.0', f'"{attr}":NaN').encode()


def error_reading(device_id: str, t: float | None = None) -> DeviceReading:
    t = time.time() if t is None else t
    return DeviceReading(device_id=device_id, ok=False, error="timeout",
                         error_message="no answer in 3 s", poll_started_at=t - 3,
                         poll_finished_at=t)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample of an exposition, keyed by (name, labels). Fails on a duplicate."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the one sample of `name` whose labels include `labels`, else None."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else None


def names(samples: Samples) -> set[str]:
    return {n for n, _ in samples}


async def wait_for(
    condition: Callable[[], Awaitable[T | None]], *, timeout: float = 10.0, what: str = "condition"
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    last = await condition()
    while not last:
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)
        last = await condition()
    return last


async def scrape(app: ExporterApp) -> Samples:
    async with aiohttp.ClientSession() as session:
        async with session.get(app.metrics_url) as resp:
            assert resp.status == 200, await resp.text()
            return parse_metrics(await resp.text())


class Bus:
    """A nats-py client on the test's nats-server, publishing the contract's messages."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.js = nc.jetstream()

    async def reading(self, reading: DeviceReading) -> None:
        await self.js.publish(subjects.reading(reading.device_id), reading.model_dump_json().encode())

    async def raw(self, subject: str, data: bytes) -> None:
        await self.js.publish(subject, data)

    async def added(self, device_id: str, hostname: str | None = None, at: float | None = None) -> None:
        event = DeviceAdded(id=device_id, url=f"http://{device_id}.local/", hostname=hostname,
                            at=time.time() if at is None else at)
        await self.js.publish(subjects.device_added(device_id), event.model_dump_json().encode())

    async def removed(self, device_id: str, at: float | None = None) -> None:
        event = DeviceRemoved(id=device_id, at=time.time() if at is None else at)
        await self.js.publish(subjects.device_removed(device_id), event.model_dump_json().encode())


# Fixtures are registered under their `name`; test modules import the function
# (`bus_fixture`) and ask for the name (`bus`), so nothing shadows anything.
@pytest.fixture(name="bus")
async def bus_fixture(bus_settings: BusSettings) -> AsyncIterator[Bus]:
    nc = await nats.connect(bus_settings.nats_url)
    await ensure_streams(nc.jetstream())
    yield Bus(nc)
    await nc.close()


ExporterFactory = Callable[..., Awaitable[ExporterApp]]


@pytest.fixture(name="start_exporter")
async def start_exporter_fixture(bus_settings: BusSettings) -> AsyncIterator[ExporterFactory]:
    """Start exporters on the test's NATS (ready when returned); all stopped at teardown."""
    apps: list[ExporterApp] = []

    async def start(wait_ready: bool = True, **overrides: Any) -> ExporterApp:
        settings = ExporterSettings(
            nats_url=overrides.pop("nats_url", bus_settings.nats_url),
            host="127.0.0.1", port=0, **overrides,
        )
        app = create_app(settings)
        apps.append(app)
        await app.start()
        if wait_ready:
            await app.wait_ready(15)
        return app

    yield start
    for app in apps:
        await app.stop()


# --- a real Prometheus ----------------------------------------------------------------------

PrometheusFactory = Callable[[ExporterApp], Awaitable[PrometheusProcess]]


@pytest.fixture(name="prometheus_for")
async def prometheus_for_fixture(tmp_path: Path) -> AsyncIterator[PrometheusFactory]:
    require_binary("prometheus")
    started: list[PrometheusProcess] = []

    async def start(app: ExporterApp) -> PrometheusProcess:
        prometheus = PrometheusProcess(
            [f"127.0.0.1:{app.port}"], scrape_interval="250ms",
            workdir=tmp_path / f"prometheus-{len(started)}",
        )
        started.append(prometheus)
        await prometheus.start()
        return prometheus

    yield start
    for prometheus in started:
        await prometheus.stop()


async def values(prometheus: PrometheusProcess, expr: str) -> dict[str, float]:
    """`expr`'s result by device (`""` for a series without a device label)."""
    result = await prometheus.query(expr)
    return {r["metric"].get("device", ""): float(r["value"][1]) for r in result}


async def scalar(prometheus: PrometheusProcess, expr: str) -> float | None:
    found = await values(prometheus, expr)
    assert len(found) <= 1, (expr, found)
    return next(iter(found.values()), None)


async def until(prometheus: PrometheusProcess, expr: str, expected: Any, what: str = "") -> None:
    async def matches() -> bool:
        got = await scalar(prometheus, expr)
        return got == expected if not isinstance(expected, float) else (
            got is not None and math.isclose(got, expected, rel_tol=1e-9))

    await wait_for(matches, timeout=20, what=what or f"{expr} == {expected}")
