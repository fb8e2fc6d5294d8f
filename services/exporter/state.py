"""The fleet as the exporter knows it: the latest reading of every device.

Fed by the bus (readings and registry events, in any order, replayed or live),
read by the collector at scrape time. Everything here is plain synchronous
Python on the event loop: applying a reading is a handful of comparisons, so
one process keeps up with tens of thousands of readings per second.

The fleet rules (reading time, online, plausible ranges, the hashrate choice,
efficiency; zero is a value) are `shared/fleet.py`'s, shared with the API gateway,
so both compute the same figures. This module keeps the exporter's own state
layout (a list of values per device, for a fast render) and, beyond those rules:
- an offline device exports no measured value at all, not only none in the totals;
- a removed device is dropped at once and its late or replayed readings are
  ignored until it is added again; a device silent for `forget_after` is dropped;
- share counts are kept monotonic across device reboots (counter semantics);
- a non-finite or absurd field is dropped for that field only, counted, and
  logged once per device and field.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter

from shared import fleet
from shared.models import DeviceAdded, DeviceReading, DeviceRemoved

from .families import COUNTS, MEASURES
from .pools import pool_name

log = logging.getLogger(__name__)

UNKNOWN = fleet.UNKNOWN
_MAX_LOGGED_SUBJECTS = 10_000  # bounds the log-once memory under a flood of bad subjects

_get_measures = attrgetter(*(m.attr for m in MEASURES))
_get_counts = attrgetter(*(c.attr for c in COUNTS))
_get_identity = attrgetter(
    "hostname", "firmware_version", "asic_model", "board_version", "device_model", "firmware",
    "stratum_url", "stratum_port",
)
_POSITIONS = range(len(MEASURES))
_LOWS = tuple(m.lo for m in MEASURES)
_HIGHS = tuple(m.hi for m in MEASURES)
_INDEX = {m.attr: i for i, m in enumerate(MEASURES)}
HASHRATE = _INDEX["hashrate_ghs"]
HASHRATE_1M = _INDEX["hashrate_1m_ghs"]
POWER = _INDEX["power_watts"]
EFFICIENCY = _INDEX["efficiency_jth"]
UPTIME = _INDEX["uptime_seconds"]


def escape_label(value: str) -> str:
    """A label value as the text exposition format wants it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass(slots=True)
class Registration:
    """The newest registry event seen for a device."""

    present: bool
    at: float
    hostname: str | None = None


@dataclass(slots=True)
class Device:
    device_id: str
    reported_hostname: str | None = None
    hostname: str = ""
    labels: str = ""  # `device="…",hostname="…"`, escaped once per change
    info: str = ""  # the info metric's extra labels, escaped once per change
    raw_identity: tuple[object, ...] = ()
    identity: tuple[str, ...] = ()
    pool: str = UNKNOWN
    firmware_version: str = UNKNOWN
    last_poll_started: float = -math.inf
    last_seen_at: float = 0.0  # newest reading of any kind
    last_ok_at: float | None = None  # newest successful reading
    values: list[float | None] = field(default_factory=lambda: [None] * len(MEASURES))
    counts: list[float | None] = field(default_factory=lambda: [None] * len(COUNTS))
    raw_counts: list[float | None] = field(default_factory=lambda: [None] * len(COUNTS))
    count_offsets: list[float] = field(default_factory=lambda: [0.0] * len(COUNTS))
    last_uptime: float | None = None
    reboots: int = 0
    poll_errors: dict[str, int] = field(default_factory=dict)
    invalid_fields: dict[str, int] = field(default_factory=dict)


class FleetState:
    def __init__(self, *, offline_after: float, forget_after: float | None = None) -> None:
        self.offline_after = offline_after
        self.forget_after = forget_after or None
        self.devices: dict[str, Device] = {}
        self.registry: dict[str, Registration] = {}
        self.naming_version = 0  # bumps whenever per-host names may change
        self.readings_applied = 0
        self.rejected: Counter[str] = Counter()
        self.first_reading_at: float | None = None
        self.last_reading_at: float | None = None
        self._logged_subjects: set[str] = set()
        self._logged_fields: dict[str, set[str]] = {}  # device id -> fields logged

    # --- readings ---------------------------------------------------------

    def apply_reading(self, reading: DeviceReading, subject: str, received_at: float) -> None:
        """Fold one reading into the device's state (older or duplicate readings are ignored)."""
        device_id = reading.device_id
        registration = self.registry.get(device_id)
        if registration is not None and not registration.present:
            self.rejected["removed_device"] += 1
            return
        device = self.devices.get(device_id)
        if device is None:
            device = self.devices[device_id] = Device(device_id)
            self._refresh_identity(device, reading)
            self.naming_version += 1
        elif reading.poll_started_at <= device.last_poll_started:
            return  # replayed or reordered: what we hold is as new or newer
        self.readings_applied += 1
        if self.first_reading_at is None:
            self.first_reading_at = received_at
        self.last_reading_at = received_at

        taken_at = fleet.reading_time(reading.poll_finished_at, received_at)
        device.last_poll_started = reading.poll_started_at
        device.last_seen_at = taken_at
        for name in reading.invalid_fields:
            self._count_invalid(device, name, subject, "dropped by the poller")
        if not reading.ok:
            kind = reading.error.value if reading.error is not None else UNKNOWN
            device.poll_errors[kind] = device.poll_errors.get(kind, 0) + 1
            return

        device.last_ok_at = taken_at
        self._refresh_identity(device, reading)
        device.values = self._measured_values(device, reading, subject)
        self._update_counts(device, reading, subject)

    def _measured_values(
        self, device: Device, reading: DeviceReading, subject: str
    ) -> list[float | None]:
        values: list[float | None] = list(_get_measures(reading))
        reported_hashrate = values[HASHRATE]  # before the range check: the rule needs to know
        for i in [i for i, v, lo, hi in zip(_POSITIONS, values, _LOWS, _HIGHS, strict=True)
                  if v is not None and not lo <= v <= hi]:  # `not lo <= v <= hi`: also NaN
            m = MEASURES[i]
            self._count_invalid(device, m.attr, subject,
                                f"value {values[i]!r} outside [{m.lo:g}, {m.hi:g}]")
            values[i] = None
        # Every value is range-checked now; the rules re-check theirs (idempotent, and
        # the ranges are theirs: families.py reads them from shared/fleet.py).
        values[HASHRATE] = hashrate = fleet.device_hashrate(reported_hashrate, values[HASHRATE_1M])
        values[EFFICIENCY] = fleet.device_efficiency(values[EFFICIENCY], values[POWER], hashrate)
        return values

    def _update_counts(self, device: Device, reading: DeviceReading, subject: str) -> None:
        raw: list[float | None] = list(_get_counts(reading))
        old = device.raw_counts
        uptime = device.values[UPTIME]
        rebooted = (
            uptime is not None and device.last_uptime is not None and uptime < device.last_uptime
        )
        for i, v in enumerate(raw):
            if v is None:
                continue
            if not 0 <= v <= COUNTS[i].hi:
                c = COUNTS[i]
                self._count_invalid(device, c.attr, subject, f"value {v!r} outside [0, {c.hi:g}]")
                raw[i] = None
            elif (previous := old[i]) is not None and v < previous:
                rebooted = True
        if rebooted:
            device.reboots += 1
            for i, previous in enumerate(old):
                if previous is not None:
                    device.count_offsets[i] += previous
                    old[i] = 0.0
        for i, v in enumerate(raw):
            if v is not None:
                old[i] = v
                device.counts[i] = device.count_offsets[i] + v
        if uptime is not None:
            device.last_uptime = uptime

    def _refresh_identity(self, device: Device, reading: DeviceReading) -> None:
        raw = _get_identity(reading)
        if raw == device.raw_identity:
            return
        device.raw_identity = raw
        if reading.hostname is not None:
            device.reported_hostname = reading.hostname
        identity = (
            fleet.firmware_version(reading.firmware_version),
            reading.asic_model or UNKNOWN,
            reading.board_version or UNKNOWN,
            reading.device_model or UNKNOWN,
            reading.firmware.value,
            pool_name(reading.stratum_url, reading.stratum_port),
        )
        if identity != device.identity:
            device.identity = identity
            device.firmware_version, device.pool = identity[0], identity[5]
            device.info = (
                'firmware_version="{}",asic_model="{}",board_version="{}",device_model="{}",'
                'firmware="{}",pool="{}"'.format(*map(escape_label, identity))
            )
        self._refresh_labels(device)

    def _refresh_labels(self, device: Device) -> None:
        registration = self.registry.get(device.device_id)
        hostname = device.reported_hostname or (registration and registration.hostname) or ""
        if hostname != device.hostname or not device.labels:
            device.hostname = hostname
            device.labels = f'device="{device.device_id}",hostname="{escape_label(hostname)}"'
            self.naming_version += 1

    # --- the registry -----------------------------------------------------

    def apply_device_event(self, event: DeviceAdded | DeviceRemoved) -> None:
        """Apply a registry event unless a newer one for the device was applied already."""
        known = self.registry.get(event.id)
        if known is not None and event.at < known.at:
            return
        self.naming_version += 1
        if isinstance(event, DeviceAdded):
            self.registry[event.id] = Registration(True, event.at, event.hostname)
            if (device := self.devices.get(event.id)) is not None:
                self._refresh_labels(device)
            return
        self.registry[event.id] = Registration(False, event.at)
        self._forget(event.id)
        log.info("device %s removed: its series leave /metrics now", event.id)

    def registered_at(self, device_id: str) -> float:
        registration = self.registry.get(device_id)
        return registration.at if registration is not None else math.inf

    # --- time -------------------------------------------------------------

    def is_online(self, device: Device, now: float) -> bool:
        return fleet.is_online(device.last_ok_at, now, self.offline_after)

    def prune(self, now: float) -> None:
        """Drop devices silent (no reading at all) for longer than `forget_after`."""
        if self.forget_after is None:
            return
        silent = [d.device_id for d in self.devices.values()
                  if now - d.last_seen_at > self.forget_after]
        for device_id in silent:
            log.info("device %s silent for over %gs: forgotten", device_id, self.forget_after)
            self._forget(device_id)
            self.naming_version += 1

    def _forget(self, device_id: str) -> None:
        self.devices.pop(device_id, None)
        self._logged_fields.pop(device_id, None)

    # --- bad input --------------------------------------------------------

    def reject(self, subject: str, reason: str, detail: str) -> None:
        """Count a message that could not be used; log it once per subject."""
        self.rejected[reason] += 1
        if subject in self._logged_subjects:
            return
        if len(self._logged_subjects) >= _MAX_LOGGED_SUBJECTS:
            if len(self._logged_subjects) == _MAX_LOGGED_SUBJECTS:
                self._logged_subjects.add("")  # log the cap itself once
                log.error("more than %d subjects sent bad messages: no longer logging them",
                          _MAX_LOGGED_SUBJECTS)
            return
        self._logged_subjects.add(subject)
        log.error(
            "rejected message on %s (device %s): %s: %s; counted in "
            "pluto_exporter_rejected_messages_total{reason=%r}, not logged again for this subject",
            subject, _device_token(subject), reason, detail, reason,
        )

    def _count_invalid(self, device: Device, name: str, subject: str, why: str) -> None:
        name = name[:64]  # a field name comes from the producer: bound the label
        device.invalid_fields[name] = device.invalid_fields.get(name, 0) + 1
        logged = self._logged_fields.setdefault(device.device_id, set())
        if name not in logged:
            logged.add(name)
            log.warning(
                "device %s (hostname %r, subject %s): field %s %s; the other fields are kept; "
                "counted in pluto_reading_invalid_fields_total, not logged again for this device "
                "and field", device.device_id, device.hostname, subject, name, why,
            )


def _device_token(subject: str) -> str:
    parts = subject.split(".")
    return parts[2] if len(parts) > 2 else "?"
