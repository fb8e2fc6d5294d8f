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

from shared.models import DeviceReading, ReadingError

HASHRATE_MAX_GHS = 1e6
POWER_MAX_W = 10_000.0
EFFICIENCY_MAX_JTH = 1e7
UNKNOWN_FIRMWARE = "unknown"


@dataclass(frozen=True, slots=True)
class Failure:
    """The newest failed poll of a device."""

    error: ReadingError | None
    message: str | None
    at: float


@dataclass(slots=True)
class DeviceTrack:
    """What the gateway holds for one device's readings.

    The readings themselves are kept as the JSON the bus delivered (a third of the
    memory of a parsed model) and parsed again only for the one-device view; what
    the list and the totals need is derived once per reading, in `fold`.
    """

    latest_json: bytes  # the newest reading, successful or not
    latest_started: float  # its poll_started_at: orders readings
    latest_ok: bool
    seen_at: float  # when the newest reading was taken (clamped to its arrival)
    hostname: str | None = None  # as the device last reported it
    last_ok_json: bytes | None = None  # the newest successful reading
    last_ok_at: float | None = None
    last_error: Failure | None = None
    hashrate: float | None = None  # of the newest successful reading, by the rules above
    power: float | None = None
    efficiency: float | None = None
    temperature: float | None = None
    firmware_version: str = UNKNOWN_FIRMWARE

    @property
    def latest(self) -> DeviceReading:
        return DeviceReading.model_validate_json(self.latest_json)

    @property
    def last_ok(self) -> DeviceReading | None:
        return None if self.last_ok_json is None else DeviceReading.model_validate_json(self.last_ok_json)


def taken_at(reading: DeviceReading, received_at: float) -> float:
    return min(reading.poll_finished_at, received_at)


def fold(
    track: DeviceTrack | None, reading: DeviceReading, raw: bytes, received_at: float
) -> DeviceTrack | None:
    """The track after one more reading (`raw` is its JSON); None when it is older than what is held."""
    at = taken_at(reading, received_at)
    if track is None:
        track = DeviceTrack(
            latest_json=raw, latest_started=reading.poll_started_at, latest_ok=reading.ok, seen_at=at
        )
    elif reading.poll_started_at <= track.latest_started:
        return None  # replayed or reordered: what we hold is as new or newer
    else:
        track.latest_json, track.latest_started, track.latest_ok = raw, reading.poll_started_at, reading.ok
        track.seen_at = at
    if reading.hostname is not None:
        track.hostname = reading.hostname
    if reading.ok:
        track.last_ok_json, track.last_ok_at = raw, at
        track.hashrate, track.power, track.efficiency = hashrate(reading), power(reading), efficiency(reading)
        track.temperature = reading.asic_temp_celsius
        track.firmware_version = reading.firmware_version or UNKNOWN_FIRMWARE
    else:
        track.last_error = Failure(reading.error, reading.error_message, reading.poll_finished_at)
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
    every = list(tracks)
    online = [
        t for t in every if t is not None and t.last_ok_at is not None and now - t.last_ok_at <= offline_after
    ]
    hashrates = [t.hashrate for t in online if t.hashrate is not None]
    powers = [t.power for t in online if t.power is not None]
    versions = Counter(t.firmware_version if t is not None else UNKNOWN_FIRMWARE for t in every)
    total_hashrate = sum(hashrates)
    total_power = sum(powers)
    return Totals(
        total_hardware=len(every),
        hardware_online=len(online),
        hardware_offline=len(every) - len(online),
        total_hashrate_ghs=total_hashrate,
        average_hashrate_ghs=total_hashrate / len(hashrates) if hashrates else 0.0,
        total_power_watts=total_power,
        total_efficiency_jth=total_power / total_hashrate * 1000.0 if powers and total_hashrate > 0 else None,
        firmware_versions=dict(versions),
    )
