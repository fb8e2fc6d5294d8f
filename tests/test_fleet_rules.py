"""The fleet rules alone (shared/fleet.py): plain values in, figures out; no bus, no clock."""

from __future__ import annotations

import math

import pytest

from shared import fleet
from shared.fleet import DeviceFigures, fleet_totals

NOW = 1_800_000_000.0


# --- one device -----------------------------------------------------------------------


def test_a_reading_counts_from_its_arrival_at_the_latest() -> None:
    assert fleet.reading_time(NOW - 2, NOW) == NOW - 2
    assert fleet.reading_time(NOW + 3600, NOW) == NOW  # a producer's clock ahead of ours


def test_online_means_a_successful_reading_within_offline_after() -> None:
    assert fleet.is_online(NOW - 15, NOW, 15)  # the edge is still online
    assert not fleet.is_online(NOW - 15.001, NOW, 15)
    assert not fleet.is_online(None, NOW, 15)  # never a successful reading


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.001, 1e6 + 1])
def test_implausible_values_are_dropped(value: float) -> None:
    assert fleet.plausible(value, 1e6) is None
    assert fleet.device_hashrate(value, None) is None


def test_zero_is_a_value() -> None:
    assert fleet.plausible(0.0, 10.0) == 0.0
    assert fleet.device_hashrate(0.0, 500.0) == 0.0  # a stalled miner, not a missing rate
    assert fleet.device_power(0.0) == 0.0
    assert fleet.device_efficiency(0.0, 10.0, 500.0) == 0.0


def test_the_one_minute_rate_stands_in_only_for_a_missing_current_rate() -> None:
    assert fleet.device_hashrate(None, 321.0) == 321.0
    assert fleet.device_hashrate(500.0, 321.0) == 500.0
    assert fleet.device_hashrate(5e6, 321.0) is None  # reported but absurd: dropped, not replaced
    assert fleet.device_hashrate(None, math.nan) is None
    assert fleet.device_hashrate(None, None) is None


def test_ranges_are_inclusive() -> None:
    assert fleet.device_hashrate(fleet.HASHRATE_MAX_GHS, None) == fleet.HASHRATE_MAX_GHS
    assert fleet.device_power(fleet.POWER_MAX_W) == fleet.POWER_MAX_W
    assert fleet.device_power(fleet.POWER_MAX_W + 0.1) is None
    assert fleet.device_efficiency(fleet.EFFICIENCY_MAX_JTH, None, None) == fleet.EFFICIENCY_MAX_JTH


def test_efficiency_is_the_readings_own_else_derived() -> None:
    assert fleet.device_efficiency(15.0, 20.0, 1000.0) == 15.0
    assert fleet.device_efficiency(None, 20.0, 1000.0) == pytest.approx(20.0)  # W / (GH/s / 1000)
    assert fleet.device_efficiency(math.nan, 5.0, 321.0) == pytest.approx(5.0 / 0.321)
    assert fleet.device_efficiency(-1.0, None, 1000.0) is None  # no power: nothing to derive


def test_efficiency_is_derived_from_the_judged_values() -> None:
    # As both services apply the rules: hashrate and power judged first, then efficiency.
    hashrate = fleet.device_hashrate(None, 321.0)
    power = fleet.device_power(5.0)
    assert fleet.device_efficiency(None, power, hashrate) == pytest.approx(5.0 / 0.321)
    absurd_power = fleet.device_power(20_000.0)
    assert fleet.device_efficiency(None, absurd_power, 1000.0) is None


def test_efficiency_is_undefined_at_zero_hashrate() -> None:
    assert fleet.device_efficiency(None, 3.0, 0.0) is None
    assert fleet.device_efficiency(None, 3.0, None) is None
    assert fleet.device_efficiency(None, 10_000.0, 1e-6) is None  # derived, but absurd


def test_firmware_version_defaults_to_unknown() -> None:
    assert fleet.firmware_version("v2.5.0") == "v2.5.0"
    assert fleet.firmware_version("") == fleet.UNKNOWN == "unknown"
    assert fleet.firmware_version(None) == "unknown"


# --- the fleet -------------------------------------------------------------------------


def test_totals_of_online_devices() -> None:
    totals = fleet_totals([
        DeviceFigures(True, 1000.0, 15.0, "v2"),
        DeviceFigures(True, 500.0, 10.0, "v2"),
        DeviceFigures(True, None, 1.0),  # no hashrate: counts for power, not for the average
    ])
    assert (totals.total_hardware, totals.hardware_online, totals.hardware_offline) == (3, 3, 0)
    assert totals.total_hashrate_ghs == 1500.0 and totals.average_hashrate_ghs == 750.0
    assert totals.total_power_watts == 26.0
    assert totals.total_efficiency_jth == pytest.approx(26.0 / 1.5)


def test_an_offline_device_leaves_the_totals_but_stays_hardware() -> None:
    online = DeviceFigures(True, 1000.0, 15.0, "v2", "Ocean Main", 10.0, 1.0)
    stalled = DeviceFigures(False, 9999.0, 99.0, "v1", "Ocean Main", 5.0, 2.0)  # its last values
    totals = fleet_totals([online, stalled])
    assert (totals.total_hardware, totals.hardware_online, totals.hardware_offline) == (2, 1, 1)
    assert totals.total_hashrate_ghs == 1000.0 and totals.average_hashrate_ghs == 1000.0
    assert totals.total_power_watts == 15.0
    assert totals.total_efficiency_jth == pytest.approx(15.0)
    # Counted as hardware, by firmware, and for its shares (cumulative: still true while offline).
    assert totals.firmware_versions == {"v2": 1, "v1": 1}
    assert totals.shares_accepted_by_pool == {"Ocean Main": 15.0}
    assert totals.shares_rejected_by_pool == {"Ocean Main": 3.0}


def test_fleet_efficiency_is_undefined_without_hashrate() -> None:
    idle = fleet_totals([DeviceFigures(True, 0.0, 2.0)])
    assert idle.total_hashrate_ghs == 0.0 and idle.average_hashrate_ghs == 0.0  # zero is a value
    assert idle.total_power_watts == 2.0 and idle.total_efficiency_jth is None
    no_power = fleet_totals([DeviceFigures(True, 1000.0, None)])
    assert no_power.total_efficiency_jth is None


def test_an_empty_fleet_reads_zero() -> None:
    totals = fleet_totals([])
    assert (totals.total_hardware, totals.hardware_online, totals.hardware_offline) == (0, 0, 0)
    assert totals.total_hashrate_ghs == 0 and totals.total_power_watts == 0
    assert totals.average_hashrate_ghs == 0.0 and totals.total_efficiency_jth is None
    assert totals.firmware_versions == {} and totals.shares_accepted_by_pool == {}


def test_firmware_distribution_counts_every_device_in_first_seen_order() -> None:
    totals = fleet_totals([
        DeviceFigures(True, firmware_version="v2.5.0"),
        DeviceFigures(False),  # no reading yet, or none with a version
        DeviceFigures(False, firmware_version="v2.4.0"),
        DeviceFigures(True, firmware_version="v2.5.0"),
    ])
    assert totals.firmware_versions == {"v2.5.0": 2, "unknown": 1, "v2.4.0": 1}
    assert list(totals.firmware_versions) == ["v2.5.0", "unknown", "v2.4.0"]


def test_shares_are_summed_per_pool() -> None:
    totals = fleet_totals([
        DeviceFigures(True, pool="Ocean Main", shares_accepted=100.0, shares_rejected=1.0),
        DeviceFigures(True, pool="CKPool High Diff", shares_accepted=200.0, shares_rejected=None),
        DeviceFigures(False, pool="Ocean Main", shares_accepted=50.0, shares_rejected=0.0),
        DeviceFigures(True),  # no pool, no counts: adds no pool
    ])
    assert totals.shares_accepted_by_pool == {"Ocean Main": 150.0, "CKPool High Diff": 200.0}
    # A pool appears for a count only when some device reported that count; zero is a count.
    assert totals.shares_rejected_by_pool == {"Ocean Main": 1.0}
