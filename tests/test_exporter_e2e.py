"""All real: simulator -> poller -> NATS -> exporter -> Prometheus (with deploy/prometheus' rules).

The simulated devices serve pinned values (the simulator's overrides), so what
Prometheus answers can be compared with what the devices served, converted to
SI as docs/reference/axeos-api.md says (mV -> V, mA -> A). Skipped without the
`prometheus` binary, failed under CI=true.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from faststream import FastStream

from services.poller.app import create_app as create_poller
from services.poller.settings import PollerSettings
from services.simulator.server import RunningSimulator, start_simulator
from shared.ids import device_id_from_mac
from shared.models import DeviceAdded
from shared.registry import publish_added, publish_removed
from shared.settings import BusSettings
from shared.streams import ensure_streams
from tests.exporter_helpers import (  # noqa: F401 - the fixtures are used by name
    ExporterFactory,
    PrometheusFactory,
    prometheus_for_fixture,
    scalar,
    start_exporter_fixture,
    until,
    values,
)

INTERVAL = 0.5
HOSTNAMES = ["rig-a", "1-rig.local", "rig-c", "rig-c"]  # a leading digit, and a repeat


def served(i: int) -> dict[str, Any]:
    """What device i serves (AxeOS units). Device 0 is a stalled miner: 0 GH/s."""
    return {
        "hostname": HOSTNAMES[i], "hashRate": 0 if i == 0 else 1000.5 + i,
        "power": 15.25 + i, "voltage": 5125 + i, "current": 3000 + 10 * i,
        "coreVoltage": 1150, "coreVoltageActual": 1148 - i, "frequency": 525 + i,
        "temp": 55.5 + i, "fanrpm": 5000 + i, "sharesAccepted": 12_000 + i,
        "sharesRejected": i, "uptimeSeconds": 3600 + i, "freeHeap": 150_000 + i,
        "stratumURL": "mine.ocean.xyz", "stratumPort": 3334,
    }


def expected(i: int) -> dict[str, float]:
    """The labelled families as the exporter must show device i's served values."""
    s = served(i)
    return {
        "pluto_hashrate_ghs": s["hashRate"], "pluto_power_watts": s["power"],
        "pluto_input_voltage_volts": s["voltage"] / 1000, "pluto_input_current_amps": s["current"] / 1000,
        "pluto_core_voltage_volts": s["coreVoltage"] / 1000,
        "pluto_core_voltage_actual_volts": s["coreVoltageActual"] / 1000,
        "pluto_frequency_mhz": s["frequency"], "pluto_asic_temperature_celsius": s["temp"],
        "pluto_fan_rpm": s["fanrpm"], "pluto_shares_accepted_total": s["sharesAccepted"],
        "pluto_shares_rejected_total": s["sharesRejected"], "pluto_uptime_seconds": s["uptimeSeconds"],
        "pluto_free_heap_bytes": s["freeHeap"],
    }


PER_HOST = {  # the reference's per-host suffix -> the labelled family holding the same value
    "_hashrate_ghs": "pluto_hashrate_ghs", "_power_watts": "pluto_power_watts",
    "_voltage_volts": "pluto_input_voltage_volts", "_current_amps": "pluto_input_current_amps",
    "_core_voltage_volts": "pluto_core_voltage_volts",
    "_core_voltage_actual_volts": "pluto_core_voltage_actual_volts",
    "_frequency_mhz": "pluto_frequency_mhz", "_temperature_celsius": "pluto_asic_temperature_celsius",
    "_fanspeed_rpm": "pluto_fan_rpm", "_shares_accepted": "pluto_shares_accepted_total",
    "_shares_rejected": "pluto_shares_rejected_total", "_uptime_seconds": "pluto_uptime_seconds",
    "_free_heap_bytes": "pluto_free_heap_bytes",
}


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    sim = await start_simulator(devices=len(HOSTNAMES), seed=11)
    for i, name in enumerate(sim.fleet.names):
        sim.fleet.set_override(name, served(i))
    yield sim
    await sim.stop()


@pytest.fixture
async def poller(bus_settings: BusSettings) -> AsyncIterator[FastStream]:
    app = create_poller(
        PollerSettings(nats_url=bus_settings.nats_url, interval_s=INTERVAL, timeout_s=0.4),
        rng=random.Random(3),
    )
    await app.start()
    yield app
    await app.stop()


async def test_prometheus_shows_what_the_simulated_devices_served(
    bus_settings: BusSettings, simulator: RunningSimulator, poller: FastStream,
    start_exporter: ExporterFactory, prometheus_for: PrometheusFactory,
) -> None:
    nc = await nats.connect(bus_settings.nats_url)
    js = nc.jetstream()
    await ensure_streams(js)
    ids: list[str] = []
    for i, name in enumerate(simulator.fleet.names):
        mac = simulator.fleet.describe(name).mac
        device_id = (mac and device_id_from_mac(mac)) or f"sim-{i}"
        ids.append(device_id)
        await publish_added(js, DeviceAdded(id=device_id, url=simulator.device_urls[i],
                                            hostname=HOSTNAMES[i], at=time.time() + i))
    app = await start_exporter(poll_interval=INTERVAL)
    prometheus = await prometheus_for(app)
    await until(prometheus, "hardware_online", len(ids), "every simulated device online")

    # Every family, per device, equals what the device served, in SI units.
    for name in expected(0):
        got = await values(prometheus, name)
        want = {ids[i]: expected(i)[name] for i in range(len(ids))}
        assert got == pytest.approx(want), name
    # The reference's per-host names, sanitized; the repeated hostname is told apart.
    prefixes = app.collector.prefixes()
    assert prefixes[ids[1]] == "_1__rig__local"
    assert prefixes[ids[2]] == "rig__c" and prefixes[ids[3]] == f"rig__c__{ids[3].replace('-', '__')}"
    for i, device_id in enumerate(ids):
        for suffix, family in PER_HOST.items():
            got_one = await scalar(prometheus, f"{prefixes[device_id]}{suffix}")
            assert got_one == pytest.approx(expected(i)[family]), (device_id, suffix)
    # The overview and the aggregations over it; zero hashrate is counted as zero.
    hashrates = [expected(i)["pluto_hashrate_ghs"] for i in range(len(ids))]
    power = sum(expected(i)["pluto_power_watts"] for i in range(len(ids)))
    assert await scalar(prometheus, "total_hashrate") == pytest.approx(sum(hashrates))
    assert await scalar(prometheus, "avg(pluto_hashrate_ghs)") == pytest.approx(sum(hashrates) / 4)
    assert await scalar(prometheus, "average_hashrate") == pytest.approx(sum(hashrates) / 4)
    assert await scalar(prometheus, "total_power_watts") == pytest.approx(power)
    assert await scalar(prometheus, "sum(pluto_power_watts)") == pytest.approx(power)
    assert await scalar(prometheus, "total_efficiency") == pytest.approx(power / sum(hashrates) * 1000)
    assert await scalar(prometheus, 'shares_by_pool_accepted{pool="Ocean Main"}') == sum(
        12_000 + i for i in range(4))
    assert await scalar(prometheus, "rig__a_hashrate_ghs") == 0.0  # zero, not a gap

    # A device that stops answering turns offline and leaves the totals.
    simulator.fleet.set_fault(simulator.fleet.names[3], "timeout")
    await until(prometheus, "hardware_offline", 1, "the silent device to turn offline")
    await until(prometheus, "total_hashrate", pytest.approx(sum(hashrates[:3])))
    assert (await values(prometheus, "pluto_device_up"))[ids[3]] == 0

    # A removed device's series end.
    await publish_removed(js, ids[2])
    await until(prometheus, "total_hardware", 3, "the removal")
    assert ids[2] not in await values(prometheus, "pluto_device_up")
    assert await scalar(prometheus, "rig__c_power_watts") is None
    await nc.close()
