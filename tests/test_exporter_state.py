"""The exporter's fleet state and collector, without the bus: time is passed in, never waited for."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.exporter import families as fam
from services.exporter.collector import FleetCollector
from services.exporter.hostnames import Claim, assign_prefixes, sanitize
from services.exporter.pools import pool_name
from services.exporter.state import FleetState
from shared.models import DeviceAdded, DeviceRemoved
from tests.exporter_helpers import error_reading, make_reading, names, parse_metrics, value

NOW = 1_800_000_000.0
VALID_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def fleet(
    offline_after: float = 15.0, per_host_names: bool = True, overview: bool = True
) -> tuple[FleetState, FleetCollector]:
    state = FleetState(offline_after=offline_after, forget_after=3600)
    collector = FleetCollector(state, per_host_names=per_host_names, overview=overview,
                               process_metrics=False)
    return state, collector


def apply(state: FleetState, reading, received_at: float | None = None) -> None:  # type: ignore[no-untyped-def]
    state.apply_reading(reading, f"pluto.readings.{reading.device_id}",
                        reading.poll_finished_at if received_at is None else received_at)


def render(collector: FleetCollector, now: float = NOW):  # type: ignore[no-untyped-def]
    return parse_metrics(collector.render(now).decode())


# --- values -------------------------------------------------------------------------


def test_every_measured_value_is_exported_with_device_and_hostname_labels() -> None:
    state, collector = fleet()
    reading = make_reading("dev-a", t=NOW, hostname="bitaxe-a")
    apply(state, reading)
    samples = render(collector)
    for m in fam.MEASURES:
        assert value(samples, m.name, device="dev-a", hostname="bitaxe-a") == pytest.approx(
            getattr(reading, m.attr)), m.name
    assert value(samples, "pluto_shares_accepted_total", device="dev-a") == 12_345
    assert value(samples, "pluto_shares_rejected_total", device="dev-a") == 12
    assert value(samples, "pluto_device_up", device="dev-a") == 1
    info = value(samples, "pluto_device_info", device="dev-a", firmware_version="v2.5.0",
                 asic_model="BM1370", board_version="601", pool="Ocean Main")
    assert info == 1


def test_zero_is_exported_as_zero() -> None:
    state, collector = fleet()
    zeros = {m.attr: 0.0 for m in fam.MEASURES if m.lo <= 0 <= m.hi}
    apply(state, make_reading("stalled", t=NOW, shares_accepted=0, shares_rejected=0, **zeros))
    samples = render(collector)
    for attr in zeros:
        name = next(m.name for m in fam.MEASURES if m.attr == attr)
        assert value(samples, name, device="stalled") == 0.0, name
    assert value(samples, "pluto_shares_accepted_total", device="stalled") == 0
    assert value(samples, "host__stalled_hashrate_ghs") == 0.0
    assert value(samples, "total_hashrate") == 0.0
    assert value(samples, "hardware_online") == 1
    # Efficiency is undefined at 0 GH/s: absent, not 0 and not infinite.
    assert value(samples, "total_efficiency") is None


def test_efficiency_is_derived_when_the_reading_lacks_it() -> None:
    state, collector = fleet()
    apply(state, make_reading("a", t=NOW, efficiency_jth=None, power_watts=15.0, hashrate_ghs=1000.0))
    assert value(render(collector), "pluto_efficiency_jth", device="a") == pytest.approx(15.0)


def test_output_parses_with_help_and_type_and_valid_names() -> None:
    state, collector = fleet()
    for i in range(5):
        apply(state, make_reading(f"d{i}", t=NOW))
    text = collector.render(NOW).decode()
    families = list(text_string_to_metric_families(text))
    assert len({f.name for f in families}) == len(families), "a family appears twice"
    for family in families:
        assert VALID_NAME.match(family.name), family.name
    for m in fam.MEASURES:
        assert f"# TYPE {m.name} gauge" in text
    assert "# TYPE pluto_shares_accepted_total counter" in text


# --- online, offline, silence --------------------------------------------------------


def test_error_readings_keep_a_device_online_until_offline_after() -> None:
    state, collector = fleet(offline_after=15)
    apply(state, make_reading("a", t=NOW))
    apply(state, error_reading("a", t=NOW + 5))
    samples = render(collector, NOW + 10)
    assert value(samples, "pluto_device_up", device="a") == 1
    assert value(samples, "pluto_device_poll_errors_total", device="a", error="timeout") == 1


def test_a_silent_device_turns_offline_and_leaves_the_totals() -> None:
    state, collector = fleet(offline_after=15)
    apply(state, make_reading("quiet", t=NOW, hashrate_ghs=700.0, power_watts=12.0))
    apply(state, make_reading("busy", t=NOW + 20, hashrate_ghs=3000.0, power_watts=60.0))
    samples = render(collector, NOW + 20)  # quiet: last success 20 s ago > 15 s
    assert value(samples, "pluto_device_up", device="quiet") == 0
    assert value(samples, "pluto_device_up", device="busy") == 1
    assert value(samples, "pluto_hashrate_ghs", device="quiet") is None  # no stale value
    assert value(samples, "pluto_power_watts", device="quiet") is None
    assert value(samples, "host__quiet_hashrate_ghs") is None
    assert value(samples, "total_hashrate") == 3000.0
    assert value(samples, "average_hashrate") == 3000.0
    assert value(samples, "total_power_watts") == 60.0
    assert value(samples, "total_hardware") == 2
    assert value(samples, "hardware_online") == 1
    assert value(samples, "hardware_offline") == 1
    # Counts are cumulative facts, still true while offline; identity stays too.
    assert value(samples, "pluto_shares_accepted_total", device="quiet") == 12_345
    assert value(samples, "pluto_device_info", device="quiet") == 1


def test_a_reading_from_the_future_counts_as_now() -> None:
    state, collector = fleet(offline_after=15)
    apply(state, make_reading("skewed", t=NOW + 3600), received_at=NOW)
    assert value(render(collector, NOW + 16), "pluto_device_up", device="skewed") == 0


def test_a_device_silent_past_forget_after_leaves_metrics() -> None:
    state, collector = fleet()
    apply(state, make_reading("gone", t=NOW))
    assert value(render(collector, NOW + 3599), "pluto_device_up", device="gone") == 0
    samples = render(collector, NOW + 3601)
    assert not [k for k in samples if ("device", "gone") in k[1]]
    assert value(samples, "total_hardware") == 0


# --- removal -----------------------------------------------------------------------------


def test_a_removed_device_disappears_and_its_late_readings_are_ignored() -> None:
    state, collector = fleet()
    apply(state, make_reading("keep", t=NOW))
    apply(state, make_reading("drop", t=NOW, stratum_url="solo.ckpool.org", stratum_port=3333))
    state.apply_device_event(DeviceRemoved(id="drop", at=NOW + 1))
    apply(state, make_reading("drop", t=NOW + 2))  # an in-flight poll, or a replayed reading
    samples = render(collector, NOW + 3)
    assert not [k for k in samples if ("device", "drop") in k[1]]
    assert value(samples, "total_hardware") == 1
    assert value(samples, "shares_by_pool_accepted", pool="CKPool Main") is None
    assert "host__drop_power_watts" not in names(samples)
    assert value(samples, "pluto_device_up", device="keep") == 1

    state.apply_device_event(DeviceAdded(id="drop", url="http://drop.local/", at=NOW + 4))
    apply(state, make_reading("drop", t=NOW + 5))
    assert value(render(collector, NOW + 5), "pluto_device_up", device="drop") == 1


def test_registry_events_apply_newest_first_whatever_the_arrival_order() -> None:
    state, collector = fleet()
    apply(state, make_reading("a", t=NOW))
    state.apply_device_event(DeviceRemoved(id="a", at=NOW + 2))
    state.apply_device_event(DeviceAdded(id="a", url="http://a.local/", at=NOW + 1))  # older
    assert value(render(collector, NOW + 3), "pluto_device_up", device="a") is None


# --- counters and reboots ---------------------------------------------------------------


def test_a_reboot_keeps_share_counters_monotonic() -> None:
    state, collector = fleet()
    apply(state, make_reading("a", t=NOW, shares_accepted=1000, shares_rejected=10,
                              uptime_seconds=5000))
    apply(state, make_reading("a", t=NOW + 5, shares_accepted=1010, shares_rejected=10,
                              uptime_seconds=5005))
    # Reboot: uptime and counts start again from (near) zero.
    apply(state, make_reading("a", t=NOW + 10, shares_accepted=3, shares_rejected=0,
                              uptime_seconds=4))
    samples = render(collector, NOW + 10)
    assert value(samples, "pluto_shares_accepted_total", device="a") == 1013
    assert value(samples, "pluto_shares_rejected_total", device="a") == 10
    # prometheus_client's parser names a counter's sample `<name>_total`.
    assert value(samples, "host__a_shares_accepted_total") == 1013
    assert value(samples, "pluto_device_reboots_total", device="a") == 1
    assert value(samples, "pluto_uptime_seconds", device="a") == 4
    assert value(samples, "shares_by_pool_accepted", pool="Ocean Main") == 1013

    # A reboot seen only through uptime (counts already past the old value) still adds up.
    apply(state, make_reading("a", t=NOW + 15, shares_accepted=50, uptime_seconds=9))
    apply(state, make_reading("a", t=NOW + 20, shares_accepted=60, uptime_seconds=2))
    samples = render(collector, NOW + 20)
    # 1010 before the first reboot, 50 before the second, 60 since.
    assert value(samples, "pluto_shares_accepted_total", device="a") == 1010 + 50 + 60
    assert value(samples, "pluto_device_reboots_total", device="a") == 2


def test_replayed_or_reordered_readings_are_not_counted_twice() -> None:
    state, collector = fleet()
    newer = make_reading("a", t=NOW + 5, shares_accepted=200, uptime_seconds=105)
    older = make_reading("a", t=NOW, shares_accepted=100, uptime_seconds=100)
    apply(state, newer)
    apply(state, older)  # older: must not look like a reboot
    apply(state, newer)  # duplicate
    samples = render(collector, NOW + 5)
    assert value(samples, "pluto_shares_accepted_total", device="a") == 200
    assert value(samples, "pluto_device_reboots_total", device="a") == 0
    assert state.readings_applied == 1


# --- bad fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attr", "bad"),
    [("power_watts", math.nan), ("power_watts", math.inf), ("asic_temp_celsius", 1e9),
     ("hashrate_ghs", -5.0), ("fan_percent", 250.0), ("uptime_seconds", -math.inf)],
)
def test_a_non_finite_or_absurd_field_is_dropped_alone_counted_and_logged_once(
    attr: str, bad: float, caplog: pytest.LogCaptureFixture
) -> None:
    state, collector = fleet()
    apply(state, make_reading("good", t=NOW))
    with caplog.at_level(logging.WARNING, logger="services.exporter"):
        for i in range(3):
            apply(state, make_reading("bad", t=NOW + i, **{attr: bad}))
    samples = render(collector, NOW + 2)
    family = next(m.name for m in fam.MEASURES if m.attr == attr)
    assert value(samples, family, device="bad") is None
    assert value(samples, family, device="good") is not None
    assert value(samples, "pluto_frequency_mhz", device="bad") == 525.0  # other fields kept
    assert value(samples, "pluto_reading_invalid_fields_total", device="bad", field=attr) == 3
    logged = [r for r in caplog.records if attr in r.getMessage() and "bad" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert "pluto.readings.bad" in logged[0].getMessage()
    for v in samples.values():
        assert math.isfinite(v)


def test_fields_the_poller_dropped_are_counted() -> None:
    state, collector = fleet()
    apply(state, make_reading("a", t=NOW, invalid_fields=("temp", "hashRate"), hashrate_ghs=None))
    apply(state, make_reading("a", t=NOW + 5, invalid_fields=("temp",)))
    samples = render(collector, NOW + 5)
    assert value(samples, "pluto_reading_invalid_fields_total", device="a", field="temp") == 2
    assert value(samples, "pluto_reading_invalid_fields_total", device="a", field="hashRate") == 1


# --- per-host names ---------------------------------------------------------------------


def test_per_host_names_follow_the_reference_list_and_values() -> None:
    state, collector = fleet()
    reading = make_reading("a", t=NOW, hostname="bitaxe.local")
    apply(state, reading)
    samples = render(collector)
    expected = {
        "_power_watts": reading.power_watts, "_voltage_volts": reading.voltage_volts,
        "_current_amps": reading.current_amps, "_fanspeed_rpm": reading.fan_rpm,
        "_temperature_celsius": reading.asic_temp_celsius, "_hashrate_ghs": reading.hashrate_ghs,
        "_shares_accepted": reading.shares_accepted, "_shares_rejected": reading.shares_rejected,
        "_uptime_seconds": reading.uptime_seconds, "_free_heap_bytes": reading.free_heap_bytes,
        "_core_voltage_volts": reading.core_voltage_volts,
        "_core_voltage_actual_volts": reading.core_voltage_actual_volts,
        "_frequency_mhz": reading.frequency_mhz, "_efficiency": reading.efficiency_jth,
    }
    assert set(expected) == set(fam.HOST_SUFFIXES)
    for suffix, v in expected.items():
        # Per-host share counts are counters: the parser names their sample `<name>_total`.
        sample = f"bitaxe__local{suffix}" + ("_total" if "shares" in suffix else "")
        assert value(samples, sample) == pytest.approx(v), suffix


def test_sanitize_is_the_reference_rule_made_valid() -> None:
    assert sanitize("bitaxe") == "bitaxe"
    assert sanitize("bitaxe-1.local") == "bitaxe__1__local"
    assert sanitize("1miner") == "_1miner"
    assert sanitize("é x") == "____x"


HOSTILE = [
    ("d1", "1miner"), ("d2", "miner-1"), ("d3", "miner.1"), ("d4", "miner__1"),
    ("d5", "pluto"), ("d6", "bitaxe"), ("d7", "bitaxe"), ("d8", 'quo"te\\back\nline'),
    ("d9", ""), ("d10", "x"), ("d11", "x_core"), ("d12", "total"), ("d13", "ünï ©ode"),
    ("d14", "_1miner"), ("d15", "bitaxe__d7"),
]


def test_hostile_hostnames_never_give_an_invalid_name_or_a_collision() -> None:
    state, collector = fleet()
    for i, (device_id, hostname) in enumerate(HOSTILE):
        state.apply_device_event(DeviceAdded(id=device_id, url=f"http://{device_id}.local/",
                                             at=NOW + i))
        apply(state, make_reading(device_id, t=NOW + 20, hostname=hostname or None))
    text = collector.render(NOW + 20).decode()
    samples = parse_metrics(text)  # parses; fails on any duplicate sample
    prefixes = collector.prefixes()
    per_host = [p + s for p in prefixes.values() for s in fam.HOST_SUFFIXES]
    assert len(per_host) == len(set(per_host)) == len(HOSTILE) * len(fam.HOST_SUFFIXES)
    assert not set(per_host) & fam.all_family_names()
    parsed = {n.removesuffix("_total") for n in names(samples)}
    for name in per_host:
        assert VALID_NAME.match(name), name
        assert name in parsed
    assert prefixes["d1"] == "_1miner"
    assert prefixes["d14"] != "_1miner"  # sanitizes alike; registered later
    assert prefixes["d2"] == "miner__1" and prefixes["d3"] != "miner__1"
    assert prefixes["d6"] == "bitaxe" and prefixes["d7"] == "bitaxe__d7"
    assert prefixes["d15"] != "bitaxe__d7"
    assert prefixes["d5"] != "pluto"  # pluto_hashrate_ghs is a labelled family
    assert prefixes["d9"] == "d9"  # no hostname: the device id stands in
    assert prefixes["d11"] != "x_core"  # x_core_voltage_volts is d10's
    # The hostile label value round-trips through the exposition escaping.
    assert value(samples, "pluto_device_up", hostname='quo"te\\back\nline') == 1


def test_prefix_assignment_does_not_depend_on_arrival_order() -> None:
    claims = [Claim(float(i), f"d{i}", "bitaxe") for i in range(5)]
    a = assign_prefixes(claims, fam.HOST_SUFFIXES, fam.all_family_names())
    b = assign_prefixes(list(reversed(claims)), fam.HOST_SUFFIXES, fam.all_family_names())
    assert a == b and a["d0"] == "bitaxe"


def test_a_hostname_change_renames_per_host_names_and_keeps_device_series() -> None:
    state, collector = fleet()
    apply(state, make_reading("a", t=NOW, hostname="old-name"))
    apply(state, make_reading("b", t=NOW, hostname="new-name"))
    assert value(render(collector), "old__name_power_watts") == 15.5
    apply(state, make_reading("a", t=NOW + 5, hostname="new-name", power_watts=16.0))
    samples = render(collector, NOW + 5)
    assert "old__name_power_watts" not in names(samples)
    assert value(samples, "pluto_power_watts", device="a", hostname="new-name") == 16.0
    # Neither is registered, so the device id decides who keeps the plain name: stable
    # across scrapes and restarts. (Registered devices: the earliest registration.)
    assert value(samples, "new__name_power_watts") == 16.0
    assert value(samples, "new__name__b_power_watts") == 15.5


def test_per_host_names_and_overview_can_be_switched_off() -> None:
    state, collector = fleet(per_host_names=False, overview=False)
    apply(state, make_reading("a", t=NOW, hostname="bitaxe"))
    samples = render(collector)
    assert not [n for n in names(samples) if n.startswith("bitaxe")]
    assert not set(fam.OVERVIEW_NAMES) & names(samples)
    assert value(samples, "pluto_power_watts", device="a") == 15.5


# --- the overview ------------------------------------------------------------------------


def test_overview_matches_the_reference_names_and_pools() -> None:
    state, collector = fleet()
    apply(state, make_reading("a", t=NOW, hashrate_ghs=700.0, power_watts=14.0,
                              firmware_version="v2.4.0", shares_accepted=100, shares_rejected=1))
    apply(state, make_reading("b", t=NOW, hashrate_ghs=3100.0, power_watts=62.0,
                              stratum_url="solo.ckpool.org", stratum_port=4334,
                              shares_accepted=200, shares_rejected=2))
    apply(state, make_reading("c", t=NOW, hashrate_ghs=3000.0, power_watts=60.0,
                              stratum_url="stratum+tcp://pool.example:3333", stratum_port=None,
                              shares_accepted=300, shares_rejected=3))
    samples = render(collector)
    assert value(samples, "total_hardware") == 3
    assert value(samples, "total_hashrate") == pytest.approx(6800.0)
    assert value(samples, "average_hashrate") == pytest.approx(6800.0 / 3)
    assert value(samples, "total_power_watts") == pytest.approx(136.0)
    assert value(samples, "total_efficiency") == pytest.approx(136.0 / 6.8)
    assert value(samples, "firmware_version_distribution", version="v2.4.0") == 1
    assert value(samples, "firmware_version_distribution", version="v2.5.0") == 2
    assert value(samples, "shares_by_pool_accepted", pool="Ocean Main") == 100
    assert value(samples, "shares_by_pool_accepted", pool="CKPool High Diff") == 200
    assert value(samples, "shares_by_pool_rejected", pool="pool.example:3333") == 3


def test_pool_names() -> None:
    assert pool_name("mine.ocean.xyz", 3334) == "Ocean Main"
    assert pool_name("solo.ckpool.org", 3333) == "CKPool Main"
    assert pool_name("solo.ckpool.org", 4334) == "CKPool High Diff"
    assert pool_name("umbrel.local", 2018) == "Public Pool Local"
    assert pool_name("public-pool.io", 21496) == "public-pool.io:21496"
    assert pool_name(None, None) == "unknown"


def test_an_empty_fleet_reads_zero() -> None:
    _, collector = fleet()
    samples = render(collector)
    for name in ("total_hardware", "hardware_online", "hardware_offline", "total_hashrate",
                 "average_hashrate", "total_power_watts"):
        assert value(samples, name) == 0, name


# --- the docs --------------------------------------------------------------------------------


def test_the_docs_list_exactly_the_exported_families_and_per_host_names() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "exporter.md").read_text()
    section = text.split("<!-- metrics -->")[1].split("<!-- /metrics -->")[0]
    documented = set(re.findall(r"^\| `([a-z_][a-z0-9_]*)", section, re.MULTILINE))
    exported = (
        {m.name for m in fam.MEASURES} | {c.name for c in fam.COUNTS}
        | {name for name, _, _ in fam.DEVICE_FAMILIES} | set(fam.OVERVIEW_NAMES)
        | {name for name, _, _ in fam.SELF_FAMILIES}
    )
    assert documented == exported
    for suffix in fam.HOST_SUFFIXES:
        assert f"`{{host}}{suffix}`" in section, suffix
