"""The fleet rules: from each device's latest readings to what is shown and summed.

One definition for every service that judges readings (the exporter's `/metrics`,
the gateway's `/api/v1/overview`), so the gateway's totals and Prometheus's
`total_*` series agree by construction. Pure functions over plain values: no I/O,
no clock (callers pass `now`), no service's data structure. Each service keeps
its own state layout and adapts at the boundary.

The rules, which correct the reference system:
- zero is a value: only a missing or implausible value is absent (`None`);
- a reading counts from `min(poll_finished_at, received_at)`: a producer's clock
  is never trusted beyond the receiver's;
- a device is online while its newest *successful* reading is at most
  `offline_after` old; an offline device leaves the hashrate and power totals
  (the reference kept a stalled miner's last hashrate), but still counts as
  hardware, for its firmware version and for its pool's (cumulative) shares;
- hashrate is `hashrate_ghs` when the reading reports it, else the 1-minute rate;
- values outside the plausible ranges below (or NaN, ±inf) are dropped;
- efficiency (J/TH) is the reading's own, else W / (GH/s / 1000), undefined at
  0 GH/s; the fleet's is total power / (total hashrate / 1000), undefined
  without hashrate.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

UNKNOWN = "unknown"  # a firmware version or pool that was not reported

# Plausible ranges, inclusive, from 0: anything outside is a glitch, not a measurement.
HASHRATE_MAX_GHS = 1e6  # 1 PH/s from one device is absurd
POWER_MAX_W = 10_000.0
EFFICIENCY_MAX_JTH = 1e7


# --- one device ---------------------------------------------------------------------


def reading_time(poll_finished_at: float, received_at: float) -> float:
    """When a reading counts from: never later than it arrived (clocks drift, producers lie)."""
    return min(poll_finished_at, received_at)


def is_online(last_ok_at: float | None, now: float, offline_after: float) -> bool:
    """Online: the newest successful reading is at most `offline_after` seconds old.

    A failed poll does not move `last_ok_at`, so one failure never takes a device
    offline; silence or failures for longer than `offline_after` do.
    """
    return last_ok_at is not None and now - last_ok_at <= offline_after


def plausible(value: float | None, high: float, low: float = 0.0) -> float | None:
    """`value` when within [low, high], else None (NaN fails every comparison, so it is dropped)."""
    return value if value is not None and low <= value <= high else None


def device_hashrate(hashrate_ghs: float | None, hashrate_1m_ghs: float | None) -> float | None:
    """The device's hashrate, GH/s: its current rate, else its 1-minute rate.

    The 1-minute rate stands in only when the reading has no current rate at all
    (old firmware, a poller that only knows it); a reported but implausible current
    rate is dropped, not replaced, as `pluto_hashrate_ghs` always did.
    Comparisons are written out: this runs for every reading the exporter applies.
    """
    if hashrate_ghs is not None:
        return hashrate_ghs if 0.0 <= hashrate_ghs <= HASHRATE_MAX_GHS else None
    if hashrate_1m_ghs is not None and 0.0 <= hashrate_1m_ghs <= HASHRATE_MAX_GHS:
        return hashrate_1m_ghs
    return None


def device_power(power_watts: float | None) -> float | None:
    """The device's power draw, W, when plausible."""
    return plausible(power_watts, POWER_MAX_W)


def device_efficiency(
    efficiency_jth: float | None, power_watts: float | None, hashrate_ghs: float | None
) -> float | None:
    """The device's efficiency, J/TH: the reading's own when plausible, else derived.

    `power_watts` and `hashrate_ghs` are the device's plausible values (from
    `device_power` and `device_hashrate`). Derived efficiency is undefined at
    0 GH/s (a stalled miner is not infinitely inefficient, it is not mining).
    """
    if efficiency_jth is not None and 0.0 <= efficiency_jth <= EFFICIENCY_MAX_JTH:
        return efficiency_jth
    if power_watts is None or not hashrate_ghs:
        return None
    derived = power_watts / (hashrate_ghs / 1000.0)
    return derived if 0.0 <= derived <= EFFICIENCY_MAX_JTH else None


def firmware_version(reported: str | None) -> str:
    """The firmware version a device is counted under (`unknown` when missing or empty)."""
    return reported or UNKNOWN


# --- the fleet ----------------------------------------------------------------------


@dataclass(slots=True)
class DeviceFigures:
    """One device as the fleet totals see it; made at the boundary from a service's own state.

    Hashrate and power are judged values (`device_hashrate`, `device_power`), shares
    are cumulative counts. A plain (not frozen) slotted class: the exporter makes
    one per device per scrape, and frozen construction costs twice as much.
    """

    online: bool
    hashrate_ghs: float | None = None
    power_watts: float | None = None
    firmware_version: str = UNKNOWN
    pool: str = UNKNOWN
    shares_accepted: float | None = None
    shares_rejected: float | None = None


@dataclass(frozen=True, slots=True)
class FleetTotals:
    """The fleet overview (the reference's `total_hardware`, `total_hashrate`, ...)."""

    total_hardware: int
    hardware_online: int
    hardware_offline: int
    total_hashrate_ghs: float  # sum over online devices that report a hashrate (0 when none)
    average_hashrate_ghs: float  # over those same devices (0.0 when none)
    total_power_watts: float
    total_efficiency_jth: float | None  # None without hashrate: undefined, not 0
    firmware_versions: dict[str, int]  # devices per version, in first-seen order
    shares_accepted_by_pool: dict[str, float]  # pools with a count, in first-seen order
    shares_rejected_by_pool: dict[str, float]


def fleet_totals(devices: Iterable[DeviceFigures]) -> FleetTotals:
    """The overview of the given devices. Dict orders follow the devices' order."""
    every = list(devices)
    online = [d for d in every if d.online]  # an offline device's last values are not current
    hashrates = [v for d in online if (v := d.hashrate_ghs) is not None]
    powers = [v for d in online if (v := d.power_watts) is not None]
    total_hashrate = sum(hashrates)  # `sum`, not a float start: an empty fleet reads `0`
    total_power = sum(powers)
    return FleetTotals(
        total_hardware=len(every),
        hardware_online=len(online),
        hardware_offline=len(every) - len(online),
        total_hashrate_ghs=total_hashrate,
        average_hashrate_ghs=total_hashrate / len(hashrates) if hashrates else 0.0,
        total_power_watts=total_power,
        total_efficiency_jth=_fleet_efficiency(total_power, total_hashrate, bool(powers)),
        firmware_versions=dict(Counter(d.firmware_version for d in every)),
        shares_accepted_by_pool=_by_pool((d.pool, d.shares_accepted) for d in every),
        shares_rejected_by_pool=_by_pool((d.pool, d.shares_rejected) for d in every),
    )


def _fleet_efficiency(total_power: float, total_hashrate: float, any_power: bool) -> float | None:
    # Undefined (None, not 0) without a power reading or without hashrate.
    if not any_power or total_hashrate <= 0:
        return None
    return total_power / total_hashrate * 1000.0


def _by_pool(counts: Iterable[tuple[str, float | None]]) -> dict[str, float]:
    # Shares are cumulative, so offline devices count; a device without the count adds nothing.
    by_pool: dict[str, float] = {}
    for pool, count in counts:
        if count is not None:
            by_pool[pool] = by_pool.get(pool, 0.0) + count
    return by_pool
