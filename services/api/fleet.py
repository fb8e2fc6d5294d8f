"""The gateway's record of each device's readings, judged by the fleet rules.

The rules themselves (when a reading counts from, online or offline, plausible
ranges, the hashrate choice, efficiency, the fleet totals) are `shared/fleet.py`'s,
the ones the exporter applies too, so the gateway's overview and the `total_*`
series in Prometheus agree. This module keeps the gateway's own layout: readings
as the JSON the bus delivered, plus the few judged values the list and the totals
need, derived once per reading in `fold`.

An offline device shows no measured value (rows.py) and leaves the totals; a
registered device with no reading yet is offline, its firmware `unknown`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared import fleet as rules
from shared.models import DeviceReading, ReadingError


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
    hashrate: float | None = None  # of the newest successful reading, judged by the rules
    power: float | None = None
    efficiency: float | None = None
    temperature: float | None = None
    firmware_version: str = rules.UNKNOWN

    @property
    def latest(self) -> DeviceReading:
        return DeviceReading.model_validate_json(self.latest_json)

    @property
    def last_ok(self) -> DeviceReading | None:
        return None if self.last_ok_json is None else DeviceReading.model_validate_json(self.last_ok_json)


def fold(
    track: DeviceTrack | None, reading: DeviceReading, raw: bytes, received_at: float
) -> DeviceTrack | None:
    """The track after one more reading (`raw` is its JSON); None when it is older than what is held."""
    at = rules.reading_time(reading.poll_finished_at, received_at)
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
        track.hashrate = rules.device_hashrate(reading.hashrate_ghs, reading.hashrate_1m_ghs)
        track.power = rules.device_power(reading.power_watts)
        track.efficiency = rules.device_efficiency(reading.efficiency_jth, track.power, track.hashrate)
        track.temperature = reading.asic_temp_celsius
        track.firmware_version = rules.firmware_version(reading.firmware_version)
    else:
        track.last_error = Failure(reading.error, reading.error_message, reading.poll_finished_at)
    return track


def is_online(track: DeviceTrack | None, now: float, offline_after: float) -> bool:
    return track is not None and rules.is_online(track.last_ok_at, now, offline_after)


def figures(track: DeviceTrack | None, now: float, offline_after: float) -> rules.DeviceFigures:
    """A registered device as the fleet totals see it (None: no reading yet, so offline)."""
    if track is None:
        return rules.DeviceFigures(online=False)
    online = rules.is_online(track.last_ok_at, now, offline_after)
    return rules.DeviceFigures(online, track.hashrate, track.power, track.firmware_version)


def totals(tracks: Iterable[DeviceTrack | None], now: float, offline_after: float) -> rules.FleetTotals:
    """The fleet overview over the given devices (None: a registered device with no reading yet).

    The gateway follows no pools or share counts: those totals come back empty.
    """
    return rules.fleet_totals(figures(track, now, offline_after) for track in tracks)
