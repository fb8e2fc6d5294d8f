"""AxeOS `/api/system/info` payloads (legacy and new firmware) into DeviceReading fields.

Only fields named here are ever read from a payload: everything else (stratum
and wifi passwords among it) is dropped at this edge by construction. Each field
is parsed on its own, so one bad field costs only itself: it is left out and
named in `invalid_fields`. Zero is a value.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.fleet import HASHRATE_MAX_GHS, POWER_MAX_W, device_efficiency, device_hashrate
from shared.ids import normalize_mac
from shared.models import Firmware

# Keys a device may send that must never leave the poller. Listed for the tests
# and for scrubbing error text; the whitelist below is what actually protects them.
SECRET_KEYS = frozenset(
    {"stratumPassword", "fallbackStratumPassword", "wifiPassword", "wifiPass", "apPassword"}
)

_SUFFIXES = {"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15, "e": 1e18}
_DIFF_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtTpPeE]?)\s*$")


class Invalid(ValueError):
    """A field value that cannot be used."""


# The parsers run ~40 times per poll, thousands of polls a second: each tests the
# exact type a JSON decoder gives (`type(x) is float`, which also keeps bool out)
# before anything slower, and relies on NaN failing every comparison.


def _number(value: Any) -> float:
    """A finite float from a JSON number or numeric string; bool and null are not numbers."""
    kind = type(value)
    if kind is float:
        number = value
    elif kind is int:
        try:
            number = float(value)
        except OverflowError:  # the stdlib decoder keeps arbitrarily large integers
            raise Invalid from None
    elif kind is str:
        try:
            number = float(value.strip())
        except ValueError:
            raise Invalid from None
    else:
        raise Invalid
    if not math.isfinite(number):
        raise Invalid
    return number


def _bounded(low: float, high: float, scale: float = 1.0) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        number = value if type(value) is float else _number(value)
        if low <= number <= high:  # False for NaN; the bounds are finite, so also for ±inf
            return number * scale
        raise Invalid

    return parse


def _count(high: float) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if type(value) is int:
            if 0 <= value <= high:
                return value
            raise Invalid
        number = _number(value)
        if not 0 <= number <= high or number != int(number):
            raise Invalid
        return int(number)

    return parse


def _difficulty(value: Any) -> float:
    """2.11+ sends a number; older firmware strings like "4.93G", "25.1k"."""
    if isinstance(value, str):
        match = _DIFF_RE.match(value)
        if not match:
            raise Invalid
        number = float(match.group(1)) * _SUFFIXES.get(match.group(2).lower(), 1.0)
    else:
        number = _number(value)
    if not 0 <= number < 1e30:
        raise Invalid
    return number


def _text(limit: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        kind = type(value)
        if kind is str:
            text = value[:limit]
        elif kind is int or kind is float:
            text = str(value)[:limit]
        else:
            raise Invalid
        # Carried as data, never as an identifier; only made printable and bounded.
        if not text.isprintable():
            text = "".join(ch if ch.isprintable() else "\ufffd" for ch in text)
        return text

    return parse


def _mac(value: Any) -> str:
    if type(value) is not str:
        raise Invalid
    return _mac_text(value)


@functools.lru_cache(maxsize=16_384)
def _mac_text(value: str) -> str:
    # Cached: a device reports the same MAC every poll. Invalid ones raise, and are not cached.
    if normalize_mac(value) is None:
        raise Invalid
    return value.strip().upper().replace("-", ":")


@dataclass(frozen=True, slots=True)
class _Field:
    target: str
    sources: tuple[str, ...]  # first present key wins
    parse: Callable[[Any], Any]


_GHS = _bounded(0, HASHRATE_MAX_GHS)
_CELSIUS = _bounded(-40, 200)
_MILLI_VOLTS = _bounded(0, 60_000, 1e-3)
_MILLI_AMPS = _bounded(0, 500_000, 1e-3)
_RPM = _bounded(0, 50_000)

FIELDS: tuple[_Field, ...] = (
    _Field("hostname", ("hostname",), _text(256)),
    _Field("mac", ("macAddr",), _mac),
    _Field("firmware_version", ("version",), _text(64)),
    _Field("asic_model", ("ASICModel",), _text(64)),
    _Field("board_version", ("boardVersion",), _text(64)),
    _Field("device_model", ("deviceModel",), _text(64)),
    _Field("asic_count", ("asicCount",), _count(1000)),
    _Field("hashrate_ghs", ("hashRate",), _GHS),
    _Field("hashrate_1m_ghs", ("hashRate_1m",), _GHS),
    _Field("hashrate_10m_ghs", ("hashRate_10m",), _GHS),
    _Field("hashrate_1h_ghs", ("hashRate_1h",), _GHS),
    _Field("hashrate_1d_ghs", ("hashRate_1d",), _GHS),
    _Field("expected_hashrate_ghs", ("expectedHashrate",), _GHS),
    _Field("error_percentage", ("errorPercentage",), _bounded(0, 100)),
    _Field("power_watts", ("power",), _bounded(0, POWER_MAX_W)),
    _Field("voltage_volts", ("voltage",), _MILLI_VOLTS),
    _Field("current_amps", ("current",), _MILLI_AMPS),
    _Field("core_voltage_volts", ("coreVoltage",), _MILLI_VOLTS),
    _Field("core_voltage_actual_volts", ("coreVoltageActual",), _MILLI_VOLTS),
    _Field("frequency_mhz", ("frequency",), _bounded(0, 10_000)),
    _Field("asic_temp_celsius", ("temp",), _CELSIUS),
    _Field("temp2_celsius", ("temp2",), _CELSIUS),
    _Field("vr_temp_celsius", ("vrTemp",), _CELSIUS),
    _Field("fan_percent", ("fanspeed",), _bounded(0, 100)),
    _Field("fan_rpm", ("fanrpm", "fanSpeedRpm"), _RPM),
    _Field("fan2_rpm", ("fan2rpm",), _RPM),
    _Field("shares_accepted", ("sharesAccepted",), _count(1e15)),
    _Field("shares_rejected", ("sharesRejected",), _count(1e15)),
    _Field("best_diff", ("bestDiff",), _difficulty),
    _Field("best_session_diff", ("bestSessionDiff",), _difficulty),
    _Field("stratum_url", ("stratumURL",), _text(256)),
    _Field("stratum_port", ("stratumPort",), _count(65_535)),
    _Field("stratum_user", ("stratumUser",), _text(256)),
    _Field("uptime_seconds", ("uptimeSeconds",), _bounded(0, 1e10)),
    _Field("free_heap_bytes", ("freeHeap",), _count(1e12)),
    _Field("wifi_rssi", ("wifiRSSI",), _bounded(-150, 0)),
    _Field("power_fault", ("power_fault",), _text(256)),
    _Field("hardware_fault", ("hardware_fault",), _text(256)),
)

# At least one of these must be usable for a payload to count as a reading.
_MEASURES = frozenset(
    f.target
    for f in FIELDS
    if f.target
    not in {
        "hostname",
        "mac",
        "firmware_version",
        "asic_model",
        "board_version",
        "device_model",
        "stratum_url",
        "stratum_user",
        "power_fault",
        "hardware_fault",
    }
)
# FIELDS as plain tuples, for the per-poll loop.
_PLAN = tuple((f.target, f.sources, f.parse) for f in FIELDS)
_ABSENT = object()
_NEW_FIRMWARE_KEYS = ("hashRate_1m", "hashRate_10m", "hashRate_1h", "hashRate_1d")


@dataclass(frozen=True, slots=True)
class Normalized:
    values: dict[str, Any]
    invalid_fields: tuple[str, ...]
    firmware: Firmware

    @property
    def usable(self) -> bool:
        return not _MEASURES.isdisjoint(self.values)


def normalize(payload: Mapping[str, Any]) -> Normalized:
    """Pick, parse and convert the known fields of one info payload."""
    values: dict[str, Any] = {}
    invalid: list[str] = []
    get = payload.get
    for target, sources, parse in _PLAN:
        for key in sources:
            raw = get(key, _ABSENT)
            if raw is _ABSENT:
                continue
            if raw is not None:  # null is "not reported", not an error
                try:
                    values[target] = parse(raw)
                except Invalid:
                    invalid.append(key)
            break

    # The fleet rules (shared/fleet.py) every consumer applies: the current rate, else
    # the 1-minute one; J/TH derived from power and hashrate, undefined at 0 GH/s.
    hashrate = device_hashrate(values.get("hashrate_ghs"), values.get("hashrate_1m_ghs"))
    if hashrate is not None:
        values["hashrate_ghs"] = hashrate
    efficiency = device_efficiency(None, values.get("power_watts"), hashrate)
    if efficiency is not None:
        values["efficiency_jth"] = efficiency

    if any(key in payload for key in _NEW_FIRMWARE_KEYS):
        firmware = Firmware.NEW
    elif "hashRate" in payload:
        firmware = Firmware.LEGACY
    else:
        firmware = Firmware.UNKNOWN
    return Normalized(values, tuple(invalid), firmware)
