"""Simulator -> poller -> NATS, end to end, with the real nats-server."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import AsyncIterator

import nats
import pytest
from faststream import FastStream

from services.poller.app import create_app
from services.poller.settings import PollerSettings
from services.simulator.server import RunningSimulator, start_simulator
from shared.ids import device_id_from_mac
from shared.models import DeviceAdded, Firmware, ReadingError
from shared.registry import publish_added, publish_removed
from shared.settings import BusSettings
from shared.streams import ensure_streams
from tests.bus_helpers import BusTap, wait_for

INTERVAL = 0.5
TIMEOUT = 0.4


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    sim = await start_simulator(devices=12, seed=7)
    yield sim
    await sim.stop()


@pytest.fixture
async def tap(bus_settings: BusSettings) -> AsyncIterator[BusTap]:
    t = await BusTap().start(bus_settings.nats_url)
    yield t
    await t.stop()
    # Every simulated payload carries stratum and wifi passwords marked SIMSECRET.
    assert not any(b"SIMSECRET" in data for _, data in t.raw), "a secret reached the bus"


def poller_settings(bus_settings: BusSettings) -> PollerSettings:
    return PollerSettings(
        nats_url=bus_settings.nats_url,
        interval_s=INTERVAL,
        timeout_s=TIMEOUT,
        jitter=0.1,
        backoff_after=3,
        backoff_max_s=2.0,
        max_body_bytes=64 * 1024,
    )


@pytest.fixture
async def poller(bus_settings: BusSettings) -> AsyncIterator[FastStream]:
    app = create_app(poller_settings(bus_settings), rng=random.Random(1))
    await app.start()
    yield app
    await app.stop()


class Registry:
    """Registers simulator devices through device events, as `pluto devices add` does."""

    def __init__(self, url: str, sim: RunningSimulator) -> None:
        self.url, self.sim = url, sim
        self.ids: dict[str, str] = {}  # simulator name -> device id

    async def add(self, index: int) -> str:
        name = f"mockaxe{index + 1}"
        mac = self.sim.fleet.describe(name).mac
        device_id = (mac and device_id_from_mac(mac)) or f"sim-{index + 1}"
        async with await nats.connect(self.url) as nc:
            await ensure_streams(nc.jetstream())
            await publish_added(
                nc.jetstream(),
                DeviceAdded(id=device_id, url=self.sim.device_urls[index], hostname=name, at=time.time()),
            )
        self.ids[name] = device_id
        return device_id

    async def remove(self, device_id: str) -> None:
        async with await nats.connect(self.url) as nc:
            await publish_removed(nc.jetstream(), device_id)


@pytest.fixture
def registry(bus_settings: BusSettings, simulator: RunningSimulator) -> Registry:
    return Registry(bus_settings.nats_url, simulator)


async def test_both_firmware_generations_are_normalized(
    poller: FastStream, registry: Registry, simulator: RunningSimulator, tap: BusTap
) -> None:
    legacy_values = {
        "power": 15.25,
        "voltage": 5150,
        "current": 2200,
        "temp": 47.5,
        "hashRate": 0,
        "coreVoltage": 1200,
        "fanSpeedRpm": 3900,
        "sharesAccepted": 321,
        "bestDiff": "1.5M",
    }
    new_values = {
        "power": 0,
        "voltage": 12100,
        "current": 6100,
        "temp": 66,
        "vrTemp": 71,
        "hashRate": 3012.5,
        "hashRate_1m": 3001,
        "hashRate_10m": 2999,
        "hashRate_1h": 3005,
        "fanspeed": 0,
        "fanrpm": 5100,
        "sharesAccepted": 12345,
        "bestDiff": 7e9,
    }
    simulator.fleet.set_override("mockaxe1", legacy_values)
    simulator.fleet.set_override("mockaxe2", new_values)
    legacy_id, new_id = await registry.add(0), await registry.add(1)
    await wait_for(lambda: tap.count(legacy_id) >= 2 and tap.count(new_id) >= 2, what="readings")

    legacy, new = tap.latest(legacy_id), tap.latest(new_id)
    assert legacy and new and legacy.ok and new.ok
    assert legacy.firmware is Firmware.LEGACY and new.firmware is Firmware.NEW
    assert legacy.power_watts == 15.25 and legacy.voltage_volts == pytest.approx(5.15)
    assert legacy.current_amps == pytest.approx(2.2) and legacy.core_voltage_volts == pytest.approx(1.2)
    assert legacy.hashrate_ghs == 0 and legacy.efficiency_jth is None  # zero is a value
    assert legacy.fan_rpm == 3900 and legacy.shares_accepted == 321 and legacy.best_diff == 1.5e6
    assert legacy.hostname == "mockaxe1"
    assert new.power_watts == 0 and new.fan_percent == 0 and new.fan_rpm == 5100
    assert new.hashrate_ghs == 3012.5 and new.hashrate_1m_ghs == 3001 and new.vr_temp_celsius == 71
    assert new.voltage_volts == pytest.approx(12.1) and new.current_amps == pytest.approx(6.1)
    assert new.efficiency_jth == 0 and new.best_diff == 7e9
    assert new.poll_started_at <= new.poll_finished_at


async def test_removal_stops_polling(
    poller: FastStream, registry: Registry, simulator: RunningSimulator, tap: BusTap
) -> None:
    kept, removed = await registry.add(2), await registry.add(3)
    await wait_for(lambda: tap.count(kept) >= 2 and tap.count(removed) >= 2, what="readings")
    await registry.remove(removed)
    # The removed device may answer one request already in flight, then never again.
    await wait_for(lambda: tap.count(kept) >= 2, what="kept device still polled")
    polled_at_removal = simulator.fleet.request_count("mockaxe4")
    readings_at_removal = tap.count(removed)
    mark = tap.count(kept)
    await wait_for(lambda: tap.count(kept) >= mark + 4, what="four more polls of the kept device")
    assert simulator.fleet.request_count("mockaxe4") <= polled_at_removal + 1
    assert tap.count(removed) <= readings_at_removal + 1


async def test_restart_recovers_the_device_set_from_the_stream(
    bus_settings: BusSettings, registry: Registry, tap: BusTap
) -> None:
    ids = [await registry.add(i) for i in range(4)]
    await registry.remove(ids[3])
    first = create_app(poller_settings(bus_settings))
    await first.start()
    await wait_for(lambda: all(tap.count(i) >= 1 for i in ids[:3]), what="first readings")
    await first.stop()

    restarted_at = time.time()
    second = create_app(poller_settings(bus_settings))
    await second.start()
    try:
        await wait_for(
            lambda: all(any(r.poll_started_at >= restarted_at for r in tap.readings[i]) for i in ids[:3]),
            what="readings from the restarted poller",
        )
        assert not any(r.poll_started_at >= restarted_at for r in tap.readings.get(ids[3], []))
    finally:
        await second.stop()


FAULTS = [
    # (simulator fault, params, expected error kind or None for a partially valid reading)
    ("timeout", {}, ReadingError.TIMEOUT),
    ("status", {"code": 500}, ReadingError.HTTP_STATUS),
    ("invalid_json", {}, ReadingError.INVALID_JSON),
    ("oversized", {"size": 1024 * 1024}, ReadingError.BODY_TOO_LARGE),
    ("oversized", {"size": 1024 * 1024, "chunked": True}, ReadingError.BODY_TOO_LARGE),
    ("slow_body", {"interval": 0.2}, ReadingError.TIMEOUT),
    ("not_object", {}, ReadingError.INVALID_PAYLOAD),
    ("wrong_types", {}, None),
    ("bad_values", {}, None),
]


async def test_every_fault_yields_an_error_or_partial_reading_and_costs_no_other_device(
    poller: FastStream, registry: Registry, simulator: RunningSimulator, tap: BusTap
) -> None:
    faulty: dict[str, tuple[ReadingError | None, str]] = {}
    for index, (mode, params, expected) in enumerate(FAULTS):
        name = f"mockaxe{index + 1}"
        simulator.fleet.set_fault(name, mode, **params)
        faulty[await registry.add(index)] = (expected, mode)
    healthy = [await registry.add(i) for i in range(len(FAULTS), 12)]
    started = time.monotonic()

    def settled() -> bool:
        return all(tap.count(i) >= 2 for i in faulty) and all(tap.count(i) >= 6 for i in healthy)

    await wait_for(settled, timeout=30, what="error readings from every faulty device")
    for device_id, (expected, mode) in faulty.items():
        for reading in tap.readings[device_id]:
            if expected is None:
                assert reading.ok, (mode, reading)
                assert reading.invalid_fields, (mode, reading)
            else:
                assert not reading.ok and reading.error is expected, (mode, reading)
    for device_id in healthy:
        assert all(r.ok and not r.invalid_fields for r in tap.readings[device_id])
        arrivals = [t for t in tap.arrivals[device_id] if t >= started]
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        # Cadence kept: no gap longer than a jittered interval plus scheduling slack.
        assert max(gaps) < INTERVAL * 1.1 + 0.35, (device_id, gaps)


async def test_hanging_devices_cannot_take_the_slots_of_answering_ones(
    bus_settings: BusSettings, registry: Registry, simulator: RunningSimulator, tap: BusTap
) -> None:
    # Six hanging devices would need ~5 slots (0.4 s held every 0.5 s); answering ones
    # have 2. Once the hanging ones have failed, they queue for their own single slot.
    settings = poller_settings(bus_settings).model_copy(
        update={"max_in_flight": 2, "max_in_flight_failing": 1}
    )
    app = create_app(settings, rng=random.Random(1))
    await app.start()
    try:
        hanging = []
        for index in range(6):
            simulator.fleet.set_fault(f"mockaxe{index + 1}", "timeout")
            hanging.append(await registry.add(index))
        answering = [await registry.add(i) for i in range(6, 12)]
        await wait_for(
            lambda: all(tap.count(i) >= 1 for i in hanging), what="each hanging device failing once"
        )
        failed_at = time.monotonic()
        await wait_for(lambda: all(tap.count(i) >= 8 for i in answering), timeout=30, what="8 readings each")
    finally:
        await app.stop()
    assert all(r.error is ReadingError.TIMEOUT for i in hanging for r in tap.readings[i])
    for device_id in answering:
        assert all(r.ok for r in tap.readings[device_id])
        arrivals = [t for t in tap.arrivals[device_id] if t >= failed_at]
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert max(gaps) < INTERVAL * 1.1 + 0.35, (device_id, gaps)


HOSTILE = ["../../x", "a\"b{c}'d", "矿机-⛏", "1miner", "h" * 300, "pluto.readings.>", "*"]


async def test_hostile_hostnames_are_data_only(
    poller: FastStream, registry: Registry, simulator: RunningSimulator, tap: BusTap
) -> None:
    ids = {}
    for index, hostname in enumerate(HOSTILE):
        simulator.fleet.set_fault(f"mockaxe{index + 1}", "hostile_hostname", hostname=hostname)
        ids[await registry.add(index)] = hostname
    await wait_for(lambda: all(tap.count(i) >= 1 for i in ids), what="readings")
    for device_id, hostname in ids.items():
        reading = tap.latest(device_id)
        assert reading and reading.ok and reading.hostname == hostname[:256]
    assert {s for s, _ in tap.raw if s.startswith("pluto.readings.")} == {f"pluto.readings.{i}" for i in ids}


async def test_reboot_resets_counters_and_reads_as_unavailable_meanwhile(
    poller: FastStream, registry: Registry, simulator: RunningSimulator, tap: BusTap
) -> None:
    device_id = await registry.add(1)
    await wait_for(lambda: tap.count(device_id) >= 2, what="readings")
    before = tap.latest(device_id)
    assert before and before.shares_accepted is not None
    simulator.fleet.reboot("mockaxe2", seconds=1.2)
    await wait_for(
        lambda: any(r.error is ReadingError.HTTP_STATUS for r in tap.readings[device_id]),
        what="a 503 while rebooting",
    )
    await wait_for(
        lambda: (
            (tap.latest(device_id) or before).ok
            and tap.latest(device_id) is not before
            and (tap.latest(device_id).uptime_seconds or 1e9) < (before.uptime_seconds or 0)
        ),
        what="a reading after the reboot",
    )
    after = tap.latest(device_id)
    assert after and after.shares_accepted is not None and after.shares_accepted < before.shares_accepted


async def test_a_silent_device_is_backed_off_and_recovers(
    poller: FastStream, registry: Registry, simulator: RunningSimulator, tap: BusTap
) -> None:
    simulator.fleet.set_fault("mockaxe1", "status", code=500)
    failing, healthy = await registry.add(0), await registry.add(1)
    await wait_for(lambda: tap.count(healthy) >= 16, timeout=30, what="16 polls of the healthy device")
    # Without backoff both would have about the same count; with it (after 3 failures the
    # wait doubles up to 2 s = 4 intervals), the failing device is asked far less often.
    assert all(r.error is ReadingError.HTTP_STATUS for r in tap.readings[failing])
    assert tap.count(failing) <= tap.count(healthy) // 2, (tap.count(failing), tap.count(healthy))

    simulator.fleet.clear_fault("mockaxe1")
    await wait_for(
        lambda: (tap.latest(failing) or tap.readings[failing][0]).ok,
        timeout=10,
        what="the device answering again",
    )
    mark_failing, mark_healthy = tap.count(failing), tap.count(healthy)
    await wait_for(lambda: tap.count(healthy) >= mark_healthy + 6, what="six more healthy polls")
    assert tap.count(failing) >= mark_failing + 4, "cadence not restored after recovery"
