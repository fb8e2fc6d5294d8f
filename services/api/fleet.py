"""What a device's readings say: online or offline, the values to show, the fleet totals.

Pure functions over plain data, so the rules can be read and tested alone. They
mirror the exporter's (`services/exporter/state.py` and `collector.py`), so the
gateway's overview and the `total_*` series in Prometheus agree:

- a reading counts from `min(poll_finished_at, received_at)`: never trust a
  producer's clock beyond our own;
- a device is online while its newest *successful* reading is at most
  `offline_after` old; one failed poll does not take it offline, silence or
  failures for longer than that do;
- an offline device shows no measured value and leaves the totals (the reference
  kept a stalled miner's last hashrate);
- hashrate is `hashrate_ghs`, else the 1-minute rate; values outside the
  exporter's ranges (hashrate 0..1e6 GH/s, power 0..10 kW) are dropped;
- efficiency (J/TH) is the reading's, else power / (hashrate / 1000), undefined
  at zero hashrate; the fleet's is total power / (total hashrate / 1000), absent
  when there is no hashrate;
- zero is a value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from shared.models import DeviceReading

HASHRATE_MAX_GHS = 1e6
POWER_MAX_W = 10_000.0
EFFICIENCY_MAX_JTH = 1e7
UNKNOWN_FIRMWARE = "unknown"


@dataclass(slots=True)
class DeviceTrack:
    """What the gateway holds for one device's readings."""

    latest: DeviceReading  # the newest reading, successful or not
    seen_at: float  # when `latest` was taken (clamped to its arrival)
    last_ok: DeviceReading | None = None  # the newest successful reading
    last_ok_at: float | None = None
    last_error: DeviceReading | None = None  # the newest failed reading


def taken_at(reading: DeviceReading, received_at: float) -> float:
    return min(reading.poll_finished_at, received_at)


def fold(track: DeviceTrack | None, reading: DeviceReading, received_at: float) -> DeviceTrack | None:
    """The track after one more reading; None when the reading is older than what is held."""
    at = taken_at(reading, received_at)
    if track is None:
        track = DeviceTrack(latest=reading, seen_at=at)
    elif reading.poll_started_at <= track.latest.poll_started_at:
        return None  # replayed or reordered: what we hold is as new or newer
    else:
        track.latest, track.seen_at = reading, at
    if reading.ok:
        track.last_ok, track.last_ok_at = reading, at
    else:
        track.last_error = reading
    return track


def is_online(track: DeviceTrack | None, now: float, offline_after: float) -> bool:
    return track is not None and track.last_ok_at is not None and now - track.last_ok_at <= offline_after


def _within(value: float | None, high: float) -> float | None:
    return value if value is not None and 0 <= value <= high else None  # NaN fails both


def hashrate(reading: DeviceReading) -> float | None:
    value = _within(reading.hashrate_ghs, HASHRATE_MAX_GHS)
    return value if value is not None else _within(reading.hashrate_1m_ghs, HASHRATE_MAX_GHS)


def power(reading: DeviceReading) -> float | None:
    return _within(reading.power_watts, POWER_MAX_W)


def efficiency(reading: DeviceReading) -> float | None:
    own = _within(reading.efficiency_jth, EFFICIENCY_MAX_JTH)
    if own is not None:
        return own
    watts, ghs = power(reading), hashrate(reading)
    if watts is None or not ghs:
        return None
    return _within(watts / (ghs / 1000.0), EFFICIENCY_MAX_JTH)


def firmware_version(track: DeviceTrack | None) -> str:
    if track is None:
        return UNKNOWN_FIRMWARE
    reading = track.last_ok or track.latest
    return reading.firmware_version or UNKNOWN_FIRMWARE


@dataclass(frozen=True, slots=True)
class Totals:
    total_hardware: int
    hardware_online: int
    hardware_offline: int
    total_hashrate_ghs: float
    average_hashrate_ghs: float
    total_power_watts: float
    total_efficiency_jth: float | None
    firmware_versions: dict[str, int]


def totals(tracks: Iterable[DeviceTrack | None], now: float, offline_after: float) -> Totals:
    """The fleet overview over the given devices (None: a device with no reading yet)."""
    count = online = 0
    hashrates: list[float] = []
    powers: list[float] = []
    versions: Counter[str] = Counter()
    for track in tracks:
        count += 1
        versions[firmware_version(track)] += 1
        if not is_online(track, now, offline_after):
            continue
        online += 1
        assert track is not None and track.last_ok is not None
        if (ghs := hashrate(track.last_ok)) is not None:
            hashrates.append(ghs)
        if (watts := power(track.last_ok)) is not None:
            powers.append(watts)
    total_hashrate = sum(hashrates)
    total_power = sum(powers)
    return Totals(
        total_hardware=count,
        hardware_online=online,
        hardware_offline=count - online,
        total_hashrate_ghs=total_hashrate,
        average_hashrate_ghs=total_hashrate / len(hashrates) if hashrates else 0.0,
        total_power_watts=total_power,
        total_efficiency_jth=total_power / total_hashrate * 1000.0 if powers and total_hashrate > 0 else None,
        firmware_versions=dict(versions),
    )
