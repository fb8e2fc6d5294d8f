"""AxeOS payloads: the static part once per device, the moving part per request.

Ranges follow the reference simulator (see /work/shared/reference/axeos-api.md).
Per request this is one dict copy plus a handful of `random()` calls: the
simulator must serve thousands of requests per second from one process.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from services.simulator.device import SimDevice
from services.simulator.profiles import (
    LEGACY_VERSION,
    NEW_VERSION,
    DeviceProfile,
    Generation,
    format_difficulty,
    secret,
)


def dumps(payload: Any) -> bytes:
    # Compact like cJSON_PrintUnformatted; raw UTF-8 like the device; NaN/Infinity allowed
    # (Python's default) because the bad_values fault needs them.
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _common_static(p: DeviceProfile) -> dict[str, Any]:
    return {
        "hostname": p.name,
        "macAddr": p.mac,
        "ipv4": p.ipv4,
        "ssid": "pluto-sim",
        "wifiStatus": "Connected!",
        "ASICModel": p.board.asic_model,
        "boardVersion": p.board.board_version,
        "asicCount": p.board.asic_count,
        "smallCoreCount": p.board.small_core_count,
        "coreVoltage": p.board.core_voltage,
        "frequency": p.board.frequency,
        "stratumURL": p.pool.url,
        "stratumPort": p.pool.port,
        "stratumUser": p.stratum_user,
        "stratumPassword": secret(p.name, "stratum"),
        "fallbackStratumURL": p.fallback_pool.url,
        "fallbackStratumPort": p.fallback_pool.port,
        "fallbackStratumUser": p.stratum_user,
        "fallbackStratumPassword": secret(p.name, "fallback"),
        "autofanspeed": 1,
        "invertscreen": 0,
    }


def legacy_static(p: DeviceProfile) -> dict[str, Any]:
    return {
        **_common_static(p),
        "wifiPassword": secret(p.name, "wifi"),
        "version": LEGACY_VERSION,
        "runningPartition": "ota_0",
        "bestDiff": format_difficulty(p.best_diff),
        "flipscreen": 1,
        "invertfanpolarity": 1,
    }


def new_static(p: DeviceProfile) -> dict[str, Any]:
    board = p.board
    return {
        **_common_static(p),
        "wifiPass": secret(p.name, "wifi"),
        "ipv6": "",
        "apEnabled": 0,
        "deviceModel": board.device_model,
        "version": NEW_VERSION,
        "axeOSVersion": NEW_VERSION,
        "idfVersion": "v5.4.1",
        "runningPartition": "ota_1",
        "bestDiff": int(p.best_diff),
        "expectedHashrate": 3000.0,
        "maxPower": 40 if board.asic_count == 1 else 80,
        "nominalVoltage": 12,
        "isUsingFallbackStratum": 0,
        "poolDifficulty": 1000,
        "stratumSuggestedDifficulty": 1000,
        "isPSRAMAvailable": 1,
        "overheat_mode": 0,
        "overclockEnabled": 0,
        "display": "SSD1306 (128x32)",
        "rotation": 0,
        "displayTimeout": -1,
        "temptarget": 60,
        "minFanSpeed": 25,
        "statsFrequency": 0,
        "blockFound": 0,
    }


def asic_payload(p: DeviceProfile) -> dict[str, Any]:
    board = p.board
    return {
        "ASICModel": board.asic_model,
        "deviceModel": board.device_model,
        "swarmColor": "blue",
        "asicCount": board.asic_count,
        "defaultFrequency": board.frequency,
        "frequencyOptions": list(board.frequency_options),
        "defaultVoltage": board.core_voltage,
        "voltageOptions": list(board.voltage_options),
    }


def _legacy_moving(body: dict[str, Any], d: SimDevice, now: float, rng: random.Random) -> None:
    u = rng.random
    accepted, rejected = d.shares(now)
    body["power"] = round(10.0 + 10.0 * u(), 3)
    body["voltage"] = round(5000.0 + 1000.0 * u(), 1)
    body["current"] = round(2000.0 + 1000.0 * u(), 1)
    body["temp"] = round(30.0 + 40.0 * u(), 2)
    body["hashRate"] = round(700.0 + 100.0 * u(), 3)
    body["fanspeed"] = 100
    body["fanSpeedRpm"] = int(3000 + 3000 * u())
    body["coreVoltageActual"] = int(d.profile.board.core_voltage - 20 + 40 * u())
    body["freeHeap"] = int(150_000 + 50_000 * u())
    body["sharesAccepted"] = accepted
    body["sharesRejected"] = rejected
    body["uptimeSeconds"] = d.uptime(now)
    body["bestSessionDiff"] = format_difficulty(d.session_best)


def _new_moving(body: dict[str, Any], d: SimDevice, now: float, rng: random.Random) -> None:
    u = rng.random
    accepted, rejected = d.shares(now)
    above_target = rejected - rejected // 3
    body["power"] = round(30.0 + 50.0 * u(), 3)
    body["voltage"] = round(11000.0 + 2000.0 * u(), 1)
    body["current"] = round(6000.0 + 1000.0 * u(), 1)
    body["temp"] = round(30.0 + 50.0 * u(), 2)
    body["temp2"] = round(30.0 + 50.0 * u(), 2)
    body["vrTemp"] = round(60.0 + 20.0 * u(), 2)
    body["hashRate"] = round(2900.0 + 200.0 * u(), 3)
    body["hashRate_1m"] = round(2900.0 + 200.0 * u(), 3)
    body["hashRate_10m"] = round(2900.0 + 200.0 * u(), 3)
    body["hashRate_1h"] = round(2900.0 + 200.0 * u(), 3)
    body["hashRate_1d"] = round(2900.0 + 200.0 * u(), 3)
    body["errorPercentage"] = round(2.0 * u(), 3)
    body["fanspeed"] = round(30.0 + 70.0 * u(), 1)
    body["fanrpm"] = int(3000 + 3000 * u())
    body["fan2rpm"] = int(3000 + 3000 * u())
    body["coreVoltageActual"] = int(d.profile.board.core_voltage - 20 + 40 * u())
    body["freeHeap"] = int(8_000_000 + 200_000 * u())
    body["wifiRSSI"] = int(-80 + 40 * u())
    body["responseTime"] = round(20.0 + 80.0 * u(), 2)
    body["sharesAccepted"] = accepted
    body["sharesRejected"] = rejected
    body["sharesRejectedReasons"] = (
        [
            {"message": "Above target", "count": above_target},
            {"message": "Stale", "count": rejected - above_target},
        ]
        if rejected
        else []
    )
    body["uptimeSeconds"] = d.uptime(now)
    body["bestSessionDiff"] = int(d.session_best)


STATIC_BUILDERS: Mapping[Generation, Callable[[DeviceProfile], dict[str, Any]]] = MappingProxyType(
    {
        Generation.LEGACY: legacy_static,
        Generation.NEW: new_static,
    }
)
_MOVING: Mapping[Generation, Callable[[dict[str, Any], SimDevice, float, random.Random], None]] = (
    MappingProxyType(
        {
            Generation.LEGACY: _legacy_moving,
            Generation.NEW: _new_moving,
        }
    )
)


def info_payload(d: SimDevice, now: float, rng: random.Random) -> dict[str, Any]:
    """This request's /api/system/info object, before overrides and faults."""
    body = d.static_info.copy()
    _MOVING[d.profile.generation](body, d, now, rng)
    if d.omit_mac:
        del body["macAddr"]
    return body
