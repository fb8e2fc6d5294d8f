"""The AxeOS device simulator, over real HTTP against an in-process server."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.simulator.__main__ import load_settings, parse_args
from services.simulator.faults import HOSTILE_HOSTNAMES, StatusFault, parse_fault_arg
from services.simulator.profiles import POOLS, format_difficulty
from services.simulator.server import RunningSimulator, start_simulator

ROOT = Path(__file__).resolve().parents[1]
REBOOT_S = 0.3
LEGACY_ONLY = {"fanSpeedRpm", "wifiPassword"}
NEW_ONLY = {
    "hashRate_1m", "hashRate_10m", "hashRate_1h", "hashRate_1d", "expectedHashrate",
    "errorPercentage", "vrTemp", "fanrpm", "fan2rpm", "axeOSVersion", "wifiPass", "temp2",
    "deviceModel", "wifiRSSI", "sharesRejectedReasons",
}  # fmt: skip
COMMON = {
    "hostname", "macAddr", "ipv4", "ssid", "wifiStatus", "ASICModel", "boardVersion",
    "asicCount", "smallCoreCount", "version", "runningPartition", "coreVoltage",
    "coreVoltageActual", "frequency", "temp", "power", "voltage", "current", "hashRate",
    "fanspeed", "sharesAccepted", "sharesRejected", "bestDiff", "bestSessionDiff",
    "uptimeSeconds", "freeHeap", "stratumURL", "stratumPort", "stratumUser", "stratumPassword",
    "fallbackStratumURL", "fallbackStratumPort", "fallbackStratumUser", "fallbackStratumPassword",
}  # fmt: skip


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    running = await start_simulator(6, seed=7, reboot_seconds=REBOOT_S)
    yield running
    await running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


def info_url(sim: RunningSimulator, index: int) -> str:
    return f"{sim.device_urls[index - 1]}/api/system/info"


async def get_info(http: aiohttp.ClientSession, sim: RunningSimulator, index: int) -> Any:
    async with http.get(info_url(sim, index)) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "application/json"
        return json.loads(await resp.read())


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 3.0) -> None:
    """Poll `check` until it holds; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.02)


def in_range(value: Any, low: float, high: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high


# --- normal behaviour -------------------------------------------------------------------


async def test_legacy_field_set(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    body = await get_info(http, sim, 1)
    assert COMMON | LEGACY_ONLY <= body.keys()
    assert not NEW_ONLY & body.keys()
    assert body["hostname"] == "mockaxe1"
    assert body["macAddr"] == "02:00:00:00:00:01"
    assert body["version"] == "v2.1.0"
    assert re.fullmatch(r"\d+(\.\d+)?[kMGTP]?", body["bestDiff"])
    assert isinstance(body["bestSessionDiff"], str)
    assert in_range(body["power"], 10, 20)
    assert in_range(body["voltage"], 5000, 6000)
    assert in_range(body["current"], 2000, 3000)
    assert in_range(body["temp"], 30, 70)
    assert in_range(body["hashRate"], 700, 800)
    assert in_range(body["sharesAccepted"], 10_000, 30_000)
    assert in_range(body["sharesRejected"], 0, 100)
    assert body["stratumPassword"] == "SIMSECRET-mockaxe1-stratum"
    assert body["fallbackStratumPassword"] == "SIMSECRET-mockaxe1-fallback"
    assert body["wifiPassword"] == "SIMSECRET-mockaxe1-wifi"


async def test_new_field_set(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    body = await get_info(http, sim, 2)
    assert COMMON | NEW_ONLY <= body.keys()
    assert not LEGACY_ONLY & body.keys()
    assert body["hostname"] == "mockaxe2"
    assert body["macAddr"] == "02:00:00:00:00:02"
    assert body["version"] == body["axeOSVersion"] == "v2.15.0"
    assert isinstance(body["bestDiff"], int) and isinstance(body["bestSessionDiff"], int)
    assert in_range(body["power"], 30, 80)
    assert in_range(body["voltage"], 11_000, 13_000)
    assert in_range(body["current"], 6000, 7000)
    assert in_range(body["temp"], 30, 80)
    assert in_range(body["vrTemp"], 60, 80)
    for key in ("hashRate", "hashRate_1m", "hashRate_10m", "hashRate_1h", "hashRate_1d"):
        assert in_range(body[key], 2900, 3100), key
    assert in_range(body["fanspeed"], 0, 100)
    assert sum(r["count"] for r in body["sharesRejectedReasons"]) == body["sharesRejected"]
    assert body["wifiPass"] == "SIMSECRET-mockaxe2-wifi"
    assert "SIMSECRET-mockaxe2-stratum" in json.dumps(body)


async def test_asic_endpoint(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    info = await get_info(http, sim, 2)
    async with http.get(f"{sim.device_urls[1]}/api/system/asic") as resp:
        asic = await resp.json()
    assert asic["ASICModel"] == info["ASICModel"]
    assert asic["asicCount"] >= 1 and asic["frequencyOptions"]


async def test_identity_stable_and_pools_spread(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    first = [await get_info(http, sim, i) for i in range(1, 7)]
    again = [await get_info(http, sim, i) for i in range(1, 7)]
    for a, b in zip(first, again, strict=True):
        for key in ("macAddr", "hostname", "ASICModel", "stratumURL", "stratumPort"):
            assert a[key] == b[key]
    assert len({b["macAddr"] for b in first}) == 6
    pools = {(b["stratumURL"], b["stratumPort"]) for b in first}
    assert pools == {(p.url, p.port) for p in POOLS}


async def test_values_vary_per_request(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    powers = {(await get_info(http, sim, 2))["power"] for _ in range(5)}
    assert len(powers) > 1


async def test_counters_monotonic_and_uptime_grows(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    start = await get_info(http, sim, 2)
    previous = start

    async def both_grew() -> bool:
        nonlocal previous
        body = await get_info(http, sim, 2)
        for key in ("sharesAccepted", "sharesRejected", "uptimeSeconds"):
            assert body[key] >= previous[key], key
        previous = body
        return (
            body["uptimeSeconds"] > start["uptimeSeconds"]
            and body["sharesAccepted"] > start["sharesAccepted"]
        )

    await eventually(both_grew, timeout=5.0)


async def test_same_seed_same_fleet() -> None:
    a = await start_simulator(3, seed=42)
    b = await start_simulator(3, seed=42)
    try:
        for name in ("mockaxe1", "mockaxe2", "mockaxe3"):
            assert a.fleet.get(name).profile == b.fleet.get(name).profile
    finally:
        await a.stop()
        await b.stop()


# --- faults -----------------------------------------------------------------------------


async def put_fault(
    http: aiohttp.ClientSession, sim: RunningSimulator, name: str, body: dict[str, Any]
) -> Any:
    async with http.put(f"{sim.base_url}/control/devices/{name}/fault", json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_timeout_holds_without_blocking_others(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    summary = await put_fault(http, sim, "mockaxe3", {"mode": "timeout"})
    assert summary["fault"] == {"mode": "timeout"}
    short = aiohttp.ClientTimeout(total=0.3)

    async def held() -> None:
        async with http.get(info_url(sim, 3), timeout=short) as resp:
            await resp.read()

    pending = asyncio.create_task(held())
    await eventually(lambda: _true(sim.fleet.request_count("mockaxe3") == 1))
    assert (await get_info(http, sim, 4))["hostname"] == "mockaxe4"  # others still answer
    with pytest.raises(TimeoutError):
        await pending

    async with http.delete(f"{sim.base_url}/control/devices/mockaxe3/fault") as resp:
        assert (await resp.json())["fault"] is None
    assert (await get_info(http, sim, 3))["hostname"] == "mockaxe3"


async def _true(value: bool) -> bool:
    return value


async def test_stop_does_not_wait_for_held_requests() -> None:
    running = await start_simulator(2)
    running.fleet.set_fault("mockaxe1", "timeout")
    running.fleet.set_fault("mockaxe2", "slow_body", interval=10)

    async def fetch(session: aiohttp.ClientSession, index: int) -> None:
        async with session.get(info_url(running, index)) as resp:
            await resp.read()

    async with aiohttp.ClientSession() as session:
        pending = [asyncio.create_task(fetch(session, i)) for i in (1, 2)]
        await eventually(lambda: _true(sum(running.fleet.stats().values()) == 2))
        started = time.monotonic()
        await running.stop()
        assert time.monotonic() - started < 1.5
        for task in pending:
            with pytest.raises(aiohttp.ClientError):
                await task


async def test_status_fault(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    await put_fault(http, sim, "mockaxe1", {"mode": "status"})
    async with http.get(info_url(sim, 1)) as resp:
        assert resp.status == 500
        assert len(await resp.read()) < 100
    sim.fleet.set_fault("mockaxe1", "status", code=503)
    async with http.get(info_url(sim, 1)) as resp:
        assert resp.status == 503


async def test_invalid_json_fault(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.fleet.set_fault("mockaxe2", "invalid_json")
    async with http.get(info_url(sim, 2)) as resp:
        assert resp.status == 200
        raw = await resp.read()
    assert raw.startswith(b"{")
    with pytest.raises(ValueError):
        json.loads(raw)
    assert sim.fleet.last_body("mockaxe2") is None


@pytest.mark.parametrize("chunked", [False, True])
async def test_oversized_fault(sim: RunningSimulator, http: aiohttp.ClientSession, chunked: bool) -> None:
    await put_fault(http, sim, "mockaxe2", {"mode": "oversized", "chunked": chunked})
    async with http.get(info_url(sim, 2)) as resp:
        assert resp.status == 200
        assert resp.content_length == (None if chunked else 4 * 1024 * 1024)
        raw = await resp.read()
    assert len(raw) == 4 * 1024 * 1024
    assert json.loads(raw)["hostname"] == "mockaxe2"

    sim.fleet.set_fault("mockaxe2", "oversized", size=100_000)
    async with http.get(info_url(sim, 2)) as resp:
        assert len(await resp.read()) == 100_000


async def test_slow_body_fault(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.fleet.set_fault("mockaxe1", "slow_body", interval=0.05)
    started = time.monotonic()
    async with http.get(info_url(sim, 1), timeout=aiohttp.ClientTimeout(total=0.6)) as resp:
        assert resp.status == 200  # headers come at once
        assert time.monotonic() - started < 0.3
        first = await resp.content.readany()
        assert 0 < len(first) < 100
        assert (resp.content_length or 0) > 500
        with pytest.raises(TimeoutError):
            await resp.read()


async def test_wrong_types_fault(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    await put_fault(http, sim, "mockaxe2", {"mode": "wrong_types"})
    body = await get_info(http, sim, 2)
    assert body["power"] == "abc"
    assert body["temp"] == [1]
    assert body["hashRate"] == {"x": 1}
    assert in_range(body["current"], 6000, 7000)  # the rest stays fine
    assert in_range(body["vrTemp"], 60, 80)
    assert body["hostname"] == "mockaxe2"


async def test_bad_values_fault(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.fleet.set_fault("mockaxe2", "bad_values")
    async with http.get(info_url(sim, 2)) as resp:
        raw = await resp.read()
    assert b"NaN" in raw and b"Infinity" in raw
    body = json.loads(raw)
    assert body["power"] < 0 and body["hashRate"] < 0
    assert body["temp"] >= 1000
    assert math.isnan(body["voltage"]) and math.isinf(body["current"])
    assert in_range(body["fanrpm"], 1000, 10_000)  # the rest stays fine


@pytest.mark.parametrize("hostname", HOSTILE_HOSTNAMES)
async def test_hostile_hostname_fault(
    sim: RunningSimulator, http: aiohttp.ClientSession, hostname: str
) -> None:
    await put_fault(http, sim, "mockaxe1", {"mode": "hostile_hostname", "hostname": hostname})
    body = await get_info(http, sim, 1)
    assert body["hostname"] == hostname
    assert body["macAddr"] == "02:00:00:00:00:01"


async def test_hostile_hostname_default(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.fleet.set_fault("mockaxe1", "hostile_hostname")
    assert (await get_info(http, sim, 1))["hostname"] in HOSTILE_HOSTNAMES


async def test_not_object_fault(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    await put_fault(http, sim, "mockaxe2", {"mode": "not_object"})
    assert isinstance(await get_info(http, sim, 2), list)
    sim.fleet.set_fault("mockaxe2", "not_object", value=42)
    assert await get_info(http, sim, 2) == 42


async def test_invalid_fault_requests(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    url = f"{sim.base_url}/control/devices"
    async with http.put(f"{url}/mockaxe1/fault", json={"mode": "nope"}) as resp:
        assert resp.status == 400
    async with http.put(f"{url}/mockaxe1/fault", json={"mode": "status", "cod": 1}) as resp:
        assert resp.status == 400
    async with http.put(f"{url}/mockaxe1/fault", data=b"{not json") as resp:
        assert resp.status == 400
    async with http.put(f"{url}/mockaxe99/fault", json={"mode": "timeout"}) as resp:
        assert resp.status == 404


# --- reboot -----------------------------------------------------------------------------


async def reboots_and_resets(
    sim: RunningSimulator, http: aiohttp.ClientSession, trigger: Callable[[], Awaitable[None]]
) -> None:
    before = await get_info(http, sim, 2)
    assert before["sharesAccepted"] >= 10_000
    await trigger()
    async with http.get(info_url(sim, 2)) as resp:
        assert resp.status == 503
    assert sim.fleet.describe("mockaxe2").rebooting

    async def back() -> bool:
        async with http.get(info_url(sim, 2)) as resp:
            return resp.status == 200

    await eventually(back)
    after = await get_info(http, sim, 2)
    assert after["uptimeSeconds"] < 5
    assert after["sharesAccepted"] < before["sharesAccepted"]
    assert after["macAddr"] == before["macAddr"]


async def test_restart_endpoint_reboots(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    async def restart() -> None:
        async with http.post(f"{sim.device_urls[1]}/api/system/restart") as resp:
            assert resp.status == 200

    await reboots_and_resets(sim, http, restart)


async def test_reboot_fault_mode(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    async def reboot() -> None:
        summary = await put_fault(http, sim, "mockaxe2", {"mode": "reboot"})
        assert summary["fault"] is None and summary["rebooting"]

    await reboots_and_resets(sim, http, reboot)


async def test_reboot_from_python(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    async def reboot() -> None:
        sim.fleet.reboot("mockaxe2")

    await reboots_and_resets(sim, http, reboot)


# --- overrides, options, control API ----------------------------------------------------


async def test_override_pins_values(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    pinned = {"hashRate": 0, "sharesAccepted": 0, "temp": None, "hostname": "pinned", "new": 1}
    async with http.put(
        f"{sim.base_url}/control/devices/mockaxe2/override",
        json={**pinned, "_remove": ["power", "macAddr"]},
    ) as resp:
        assert (await resp.json())["overridden"]
    for _ in range(3):
        body = await get_info(http, sim, 2)
        assert {k: body[k] for k in pinned} == pinned
        assert "power" not in body and "macAddr" not in body
        assert in_range(body["vrTemp"], 60, 80)
    assert sim.fleet.last_body("mockaxe2") == body

    async with http.delete(f"{sim.base_url}/control/devices/mockaxe2/override") as resp:
        assert resp.status == 200
    body = await get_info(http, sim, 2)
    assert body["hashRate"] > 0 and "power" in body and "new" not in body


async def test_override_from_python_and_with_faults(
    sim: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim.fleet.set_override("mockaxe1", {"power": 0.0, "asicCount": 3})
    sim.fleet.set_fault("mockaxe1", "hostile_hostname", hostname="1miner")
    body = await get_info(http, sim, 1)
    assert body["power"] == 0.0 and body["hostname"] == "1miner"
    async with http.get(f"{sim.device_urls[0]}/api/system/asic") as resp:
        asic = await resp.json()
    assert asic["asicCount"] == 3 and "power" not in asic
    sim.fleet.clear_fault("mockaxe1")
    sim.fleet.clear_override("mockaxe1")
    assert (await get_info(http, sim, 1))["power"] >= 10


async def test_omit_mac_option(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    async with http.put(f"{sim.base_url}/control/devices/mockaxe3/options", json={"omit_mac": True}) as resp:
        assert (await resp.json())["mac"] is None
    assert "macAddr" not in await get_info(http, sim, 3)
    sim.fleet.set_omit_mac("mockaxe3", False)
    assert (await get_info(http, sim, 3))["macAddr"] == "02:00:00:00:00:03"


async def test_control_listing_stats_and_last(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    sim.fleet.set_fault("mockaxe4", "status", code=502)
    async with http.get(f"{sim.base_url}/control/devices") as resp:
        listing = await resp.json()
    assert [d["name"] for d in listing] == [f"mockaxe{i}" for i in range(1, 7)]
    assert [d["url"] for d in listing] == sim.device_urls
    assert listing[0]["url"] == f"{sim.base_url}/d/mockaxe1"
    assert [d["firmware"] for d in listing[:2]] == ["legacy", "new"]
    assert listing[4]["mac"] == "02:00:00:00:00:05"
    assert listing[3]["fault"] == {"mode": "status", "code": 502}

    served = [await get_info(http, sim, 5) for _ in range(3)]
    async with http.get(f"{sim.base_url}/control/devices/mockaxe5/last") as resp:
        assert await resp.json() == served[-1]
    async with http.get(f"{sim.base_url}/control/devices/mockaxe6/last") as resp:
        assert await resp.json() is None
    async with http.get(f"{sim.base_url}/control/stats") as resp:
        stats = await resp.json()
    assert stats["mockaxe5"] == 3 and stats["mockaxe6"] == 0
    assert sim.fleet.request_count("mockaxe5") == 3


async def test_add_and_remove_devices(sim: RunningSimulator, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{sim.base_url}/control/devices", json={"count": 2}) as resp:
        assert resp.status == 201
        added = await resp.json()
    assert [d["name"] for d in added] == ["mockaxe7", "mockaxe8"]
    assert len(sim.device_urls) == 8
    url = info_url(sim, 8)
    assert (await get_info(http, sim, 8))["hostname"] == "mockaxe8"

    async with http.delete(f"{sim.base_url}/control/devices/mockaxe8") as resp:
        assert resp.status == 204
    assert len(sim.device_urls) == 7
    async with http.get(url) as resp:
        assert resp.status == 404
    async with http.post(f"{sim.base_url}/control/devices", json={"count": 0}) as resp:
        assert resp.status == 400


# --- configuration and CLI --------------------------------------------------------------


def test_parse_fault_arg() -> None:
    assert parse_fault_arg("mockaxe3=status,code=503") == ("mockaxe3", StatusFault(code=503))
    _, fault = parse_fault_arg("mockaxe1=hostile_hostname,hostname=1miner")
    assert fault.model_dump() == {"mode": "hostile_hostname", "hostname": "1miner"}
    for bad in ("mockaxe3", "mockaxe3=", "mockaxe3=bogus", "mockaxe3=status,code"):
        with pytest.raises(ValueError):
            parse_fault_arg(bad)


def test_format_difficulty() -> None:
    assert format_difficulty(4_930_000_000) == "4.93G"
    assert format_difficulty(25_100) == "25.1k"
    assert format_difficulty(1_200_000) == "1.2M"
    assert format_difficulty(512) == "512"


def test_settings_env_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUTO_SIM_DEVICES", "12")
    monkeypatch.setenv("PLUTO_SIM_PORT", "9001")
    monkeypatch.setenv("PLUTO_SIM_HOST", "0.0.0.0")
    settings = load_settings(parse_args(["--port", "0", "--fault", "mockaxe1=timeout"]))
    assert (settings.devices, settings.port, settings.host) == (12, 0, "0.0.0.0")
    assert settings.faults == ["mockaxe1=timeout"]


async def test_cli_prints_ready_line_with_real_port(http: aiohttp.ClientSession) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.simulator", "--devices", "3", "--port", "0",
        "--seed", "1", "--fault", "mockaxe3=status,code=503",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PLUTO_SIM_DEVICES": "99"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
        match = re.fullmatch(r"simulator listening on (http://127\.0\.0\.1:(\d+)) with 3 devices\n", line)
        assert match, line
        base, port = match.group(1), int(match.group(2))
        assert port > 0
        async with http.get(f"{base}/d/mockaxe2/api/system/info") as resp:
            assert (await resp.json())["hostname"] == "mockaxe2"
        async with http.get(f"{base}/d/mockaxe3/api/system/info") as resp:
            assert resp.status == 503
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0
    assert process.stdout is not None
    assert await process.stdout.read() == b""  # exactly one line on stdout


async def test_cli_rejects_unknown_device() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.simulator", "--devices", "1", "--port", "0",
        "--fault", "mockaxe9=timeout",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 2
    assert out == b"" and b"mockaxe9" in err
