"""Every PromQL expression in every generated dashboard returns data from a real
Prometheus scraping the real exporter.

Processes: nats-server (fixture), the exporter (`python -m services.exporter`),
and the `prometheus` binary (Debian package) scraping it every second. This
test plays the poller: it registers two devices and publishes their readings
(all fields set, share counts rising) on the bus. One device changes its
hostname half-way: its dashboard's queries must still answer with one series.
Without the `prometheus` binary the test is skipped, except under CI, where
that is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import nats
import pytest

from services.dashboards.render import Renderer
from shared import subjects
from shared.models import DeviceAdded, DeviceReading, Firmware
from shared.settings import BusSettings
from tests.deploy_helpers import free_port, running_prometheus, stop
from tests.grafana_double.harness import eventually

DEVICES = {"aabbccddee01": "rig-one", "aabbccddee02": "rig-two"}


@pytest.fixture
def exporter(bus_settings: BusSettings, tmp_path: Path) -> Iterator[str]:
    """The real exporter in its own process; yields its /metrics URL."""
    port = free_port()
    env = {
        **os.environ,
        "PLUTO_NATS_URL": bus_settings.nats_url,
        "PLUTO_EXPORTER_HOST": "127.0.0.1",
        "PLUTO_EXPORTER_PORT": str(port),
        "PLUTO_EXPORTER_PER_HOST_NAMES": "false",
    }
    with open(tmp_path / "exporter.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.exporter"], env=env, stdout=log, stderr=log,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture
def prometheus(exporter: str, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus scraping the exporter every second, ready; yields its base URL."""
    config = (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: pluto\n"
        f"    static_configs:\n      - targets: ['{exporter}']\n"
    )
    with running_prometheus(config, tmp_path / "prometheus") as base:
        yield base


def reading(device_id: str, hostname: str, n: int) -> DeviceReading:
    now = time.time()
    return DeviceReading(
        device_id=device_id, ok=True, poll_started_at=now - 0.05, poll_finished_at=now,
        hostname=hostname, mac=device_id, firmware=Firmware.NEW, firmware_version="v2.4.0",
        asic_model="BM1366", board_version="204", device_model="Ultra", asic_count=1,
        hashrate_ghs=500.0 + n, hashrate_1m_ghs=499.0, hashrate_10m_ghs=498.0,
        hashrate_1h_ghs=497.0, hashrate_1d_ghs=496.0, expected_hashrate_ghs=510.0,
        error_percentage=0.5, power_watts=12.5, voltage_volts=5.1, current_amps=2.4,
        core_voltage_volts=1.2, core_voltage_actual_volts=1.19, frequency_mhz=525.0,
        efficiency_jth=25.0, asic_temp_celsius=55.0, temp2_celsius=50.0, vr_temp_celsius=60.0,
        fan_percent=70.0, fan_rpm=4200.0, fan2_rpm=4100.0, shares_accepted=1000 + 7 * n,
        shares_rejected=3 + n // 5, best_diff=1e9, best_session_diff=1e8,
        stratum_url="mine.ocean.xyz", stratum_port=3334, stratum_user="bc1q.worker",
        uptime_seconds=3600.0 + n, free_heap_bytes=150_000, wifi_rssi=-55.0,
    )  # fmt: skip


@pytest.fixture
async def playing_poller(bus_settings: BusSettings, broker: object) -> AsyncIterator[dict[str, str]]:
    """Registers the devices and publishes a reading per device every 0.5 s (`broker` declares
    the streams).

    Yields the current hostname per device; the test may change it.
    """
    hostnames = dict(DEVICES)
    client = await nats.connect(bus_settings.nats_url, name="test-poller")
    js = client.jetstream()
    for device_id, hostname in DEVICES.items():
        added = DeviceAdded(id=device_id, url=f"http://{hostname}.local/", hostname=hostname, at=time.time())
        await js.publish(subjects.device_added(device_id), added.model_dump_json().encode())

    async def play() -> None:
        n = 0
        while True:
            for device_id in DEVICES:
                message = reading(device_id, hostnames[device_id], n)
                await client.publish(subjects.reading(device_id), message.model_dump_json().encode())
            n += 1
            await asyncio.sleep(0.5)  # the poller's interval, shortened

    task = asyncio.create_task(play())
    try:
        yield hostnames
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.drain()


async def query(session: aiohttp.ClientSession, base: str, expr: str) -> list[dict]:
    async with session.get(f"{base}/api/v1/query", params={"query": expr}) as response:
        body = await response.json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


async def test_every_dashboard_expression_returns_data(
    prometheus: str, playing_poller: dict[str, str]
) -> None:
    pytest.importorskip("services.exporter.app", reason="the exporter (services/exporter) is not here")
    renderer = Renderer("pluto-prometheus")
    dashboards = [renderer.overview()] + [renderer.device(d, h) for d, h in DEVICES.items()]
    exprs = sorted({expr for dashboard in dashboards for expr in dashboard.exprs})
    assert len(exprs) > 30

    async with aiohttp.ClientSession() as session:

        async def answering() -> list[str] | None:
            silent = [e for e in exprs if not await query(session, prometheus, e)]
            return None if silent else exprs

        try:
            await eventually(answering, timeout=90, what="every expression to return data")
        except AssertionError:
            silent = [e for e in exprs if not await query(session, prometheus, e)]
            raise AssertionError(f"expressions without data: {silent}") from None

        # a renamed device keeps one series per device query: history stays continuous
        device_id = next(iter(DEVICES))
        playing_poller[device_id] = "rig-one-renamed"
        device_exprs = renderer.device(device_id, "any title").exprs
        hostname_changed = f'pluto_hashrate_ghs{{device="{device_id}",hostname="rig-one-renamed"}}'
        await eventually(
            lambda: query(session, prometheus, hostname_changed), timeout=60, what="renamed series"
        )
        for expr in device_exprs:
            result = await query(session, prometheus, expr)
            assert len(result) == 1, (expr, result)
