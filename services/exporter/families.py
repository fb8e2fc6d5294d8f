"""What the exporter exports: one catalogue of metric families, the single source of truth.

Every measured value of a DeviceReading maps to one labelled family
(`pluto_<what>_<unit>{device, hostname}`), with the range outside which a value
is absurd and dropped, and, for the reference system's list, the suffix of its
per-host name (`{hostname}_power_watts`). The collector, the sanity checks, the
recording rules and the docs all read this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.fleet import EFFICIENCY_MAX_JTH, HASHRATE_MAX_GHS, POWER_MAX_W


@dataclass(frozen=True, slots=True)
class Measure:
    """A value measured by the device, exported as a gauge while the device is online."""

    attr: str  # DeviceReading attribute
    name: str  # labelled family name
    help: str
    lo: float  # accepted range, inclusive; outside it (or NaN/inf) the value is dropped
    hi: float
    host_suffix: str | None = None  # per-host name `{host}{suffix}` (the reference's list)


@dataclass(frozen=True, slots=True)
class Count:
    """A cumulative count since boot, exported as a counter that survives reboots."""

    attr: str
    name: str  # ends in `_total`
    help: str
    hi: float
    host_suffix: str | None = None


_TEMP = (-50.0, 200.0)

# Hashrate, power and efficiency are checked against the fleet rules' own ranges
# (shared/fleet.py): a value dropped from /metrics is left out of the gateway's totals too.
MEASURES: tuple[Measure, ...] = (
    Measure("hashrate_ghs", "pluto_hashrate_ghs", "Current hashrate, GH/s", 0, HASHRATE_MAX_GHS,
            "_hashrate_ghs"),
    Measure("hashrate_1m_ghs", "pluto_hashrate_1m_ghs", "Hashrate averaged over 1 minute, GH/s",
            0, HASHRATE_MAX_GHS),
    Measure("hashrate_10m_ghs", "pluto_hashrate_10m_ghs",
            "Hashrate averaged over 10 minutes, GH/s", 0, HASHRATE_MAX_GHS),
    Measure("hashrate_1h_ghs", "pluto_hashrate_1h_ghs", "Hashrate averaged over 1 hour, GH/s",
            0, HASHRATE_MAX_GHS),
    Measure("hashrate_1d_ghs", "pluto_hashrate_1d_ghs", "Hashrate averaged over 1 day, GH/s",
            0, HASHRATE_MAX_GHS),
    Measure("expected_hashrate_ghs", "pluto_expected_hashrate_ghs",
            "Hashrate the ASIC should deliver at its frequency, GH/s", 0, HASHRATE_MAX_GHS),
    Measure("error_percentage", "pluto_hashrate_error_percent",
            "Share of hashing errors, percent", 0, 100),
    Measure("power_watts", "pluto_power_watts", "Power drawn, W", 0, POWER_MAX_W,
            "_power_watts"),
    Measure("voltage_volts", "pluto_input_voltage_volts", "Input voltage, V", 0, 1_000,
            "_voltage_volts"),
    Measure("current_amps", "pluto_input_current_amps", "Input current, A", 0, 1_000,
            "_current_amps"),
    Measure("core_voltage_volts", "pluto_core_voltage_volts", "ASIC core voltage set, V", 0, 10,
            "_core_voltage_volts"),
    Measure("core_voltage_actual_volts", "pluto_core_voltage_actual_volts",
            "ASIC core voltage measured, V", 0, 10, "_core_voltage_actual_volts"),
    Measure("frequency_mhz", "pluto_frequency_mhz", "ASIC frequency, MHz", 0, 10_000,
            "_frequency_mhz"),
    Measure("efficiency_jth", "pluto_efficiency_jth", "Energy per terahash, J/TH", 0,
            EFFICIENCY_MAX_JTH, "_efficiency"),
    Measure("asic_temp_celsius", "pluto_asic_temperature_celsius",
            "ASIC temperature (average), °C", *_TEMP, "_temperature_celsius"),
    Measure("temp2_celsius", "pluto_temperature2_celsius", "Second temperature sensor, °C", *_TEMP),
    Measure("vr_temp_celsius", "pluto_vr_temperature_celsius",
            "Voltage regulator temperature, °C", *_TEMP),
    Measure("fan_percent", "pluto_fan_speed_percent", "Fan speed set, percent", 0, 100),
    Measure("fan_rpm", "pluto_fan_rpm", "Fan speed measured, RPM", 0, 100_000, "_fanspeed_rpm"),
    Measure("fan2_rpm", "pluto_fan2_rpm", "Second fan speed measured, RPM", 0, 100_000),
    Measure("best_diff", "pluto_best_difficulty", "Best share difficulty since the record began",
            0, 1e40),
    Measure("best_session_diff", "pluto_best_session_difficulty",
            "Best share difficulty since boot", 0, 1e40),
    Measure("uptime_seconds", "pluto_uptime_seconds", "Time since boot, s", 0, 1e10,
            "_uptime_seconds"),
    Measure("free_heap_bytes", "pluto_free_heap_bytes", "Free heap memory, bytes", 0, 1e12,
            "_free_heap_bytes"),
    Measure("wifi_rssi", "pluto_wifi_rssi_dbm", "Wi-Fi signal strength, dBm", -200, 50),
)

COUNTS: tuple[Count, ...] = (
    Count("shares_accepted", "pluto_shares_accepted_total",
          "Shares accepted by the pool, kept monotonic across device reboots", 1e15,
          "_shares_accepted"),
    Count("shares_rejected", "pluto_shares_rejected_total",
          "Shares rejected by the pool, kept monotonic across device reboots", 1e15,
          "_shares_rejected"),
)

# Per-device families that are not a measured value.
DEVICE_UP = "pluto_device_up"
DEVICE_INFO = "pluto_device_info"
DEVICE_LAST_SUCCESS = "pluto_device_last_success_timestamp_seconds"
DEVICE_REBOOTS = "pluto_device_reboots_total"
DEVICE_POLL_ERRORS = "pluto_device_poll_errors_total"
INVALID_FIELDS = "pluto_reading_invalid_fields_total"

DEVICE_FAMILIES: tuple[tuple[str, str, str], ...] = (
    (DEVICE_UP, "gauge", "1 when the device answered a poll within offline_after, else 0"),
    (DEVICE_INFO, "gauge",
     "Device identity: firmware version, ASIC model, board, pool (always 1)"),
    (DEVICE_LAST_SUCCESS, "gauge", "When the device last answered a poll, epoch seconds"),
    (DEVICE_REBOOTS, "counter", "Reboots seen (uptime or share counts went down)"),
    (DEVICE_POLL_ERRORS, "counter", "Failed polls, by error kind"),
    (INVALID_FIELDS, "counter",
     "Reading fields dropped as invalid (by the poller or, for NaN/absurd values, here)"),
)

# The overview, named as the reference system named it.
OVERVIEW: tuple[tuple[str, str], ...] = (
    ("total_hardware", "Devices known"),
    ("hardware_online", "Devices online"),
    ("hardware_offline", "Devices offline"),
    ("total_hashrate", "Sum of the online devices' hashrate, GH/s"),
    ("average_hashrate", "Average of the online devices' hashrate, GH/s"),
    ("total_power_watts", "Sum of the online devices' power, W"),
    ("total_efficiency", "Fleet efficiency: total power / total hashrate, J/TH"),
    ("firmware_version_distribution", "Devices per firmware version"),
    ("shares_by_pool_accepted", "Shares accepted, summed per pool"),
    ("shares_by_pool_rejected", "Shares rejected, summed per pool"),
)
OVERVIEW_NAMES: tuple[str, ...] = tuple(name for name, _ in OVERVIEW)

# The exporter's own health.
SELF_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("pluto_exporter_readings_total", "counter", "Reading messages applied"),
    ("pluto_exporter_rejected_messages_total", "counter",
     "Messages rejected (unparsable, wrong subject, internal error), by reason"),
    ("pluto_exporter_devices", "gauge", "Devices held by this exporter"),
    ("pluto_exporter_ready", "gauge", "1 once the start-up replay of the streams is done"),
    ("pluto_exporter_render_seconds", "gauge", "How long the previous /metrics render took, s"),
)

HOST_SUFFIXES: tuple[str, ...] = tuple(
    [m.host_suffix for m in MEASURES if m.host_suffix]
    + [c.host_suffix for c in COUNTS if c.host_suffix]
)


def all_family_names() -> frozenset[str]:
    """Every family name besides the per-host ones (a per-host name must never equal one)."""
    names = {m.name for m in MEASURES} | {c.name for c in COUNTS}
    names |= {name for name, _, _ in DEVICE_FAMILIES}
    names |= set(OVERVIEW_NAMES)
    names |= {name for name, _, _ in SELF_FAMILIES}
    # A counter `x_total` is also exposed as `x` by OpenMetrics parsers; reserve both.
    names |= {n.removesuffix("_total") for n in names if n.endswith("_total")}
    return frozenset(names)
