"""Every PromQL expression the dashboards use, in one place.

Device queries select by the `device` label (the stable device id), never by
hostname, and aggregate the `hostname` label away (`max by (device)`), so a
renamed device keeps one continuous series. Metric family names follow the
exporter (`services/exporter/`, `docs/exporter.md`); change them here only.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from shared.ids import validate_device_id


class Families(BaseModel):
    """The exporter's metric family names."""

    model_config = ConfigDict(frozen=True)

    up: str = "pluto_device_up"
    info: str = "pluto_device_info"  # labels: device, hostname, firmware_version, ...
    hashrate: str = "pluto_device_hashrate_ghs"
    hashrate_1m: str = "pluto_device_hashrate_1m_ghs"
    hashrate_10m: str = "pluto_device_hashrate_10m_ghs"
    hashrate_1h: str = "pluto_device_hashrate_1h_ghs"
    power: str = "pluto_device_power_watts"
    efficiency: str = "pluto_device_efficiency_jth"
    asic_temp: str = "pluto_device_asic_temp_celsius"
    vr_temp: str = "pluto_device_vr_temp_celsius"
    fan_rpm: str = "pluto_device_fan_rpm"
    fan_percent: str = "pluto_device_fan_percent"
    core_voltage: str = "pluto_device_core_voltage_volts"
    core_voltage_actual: str = "pluto_device_core_voltage_actual_volts"
    input_voltage: str = "pluto_device_voltage_volts"
    current: str = "pluto_device_current_amps"
    frequency: str = "pluto_device_frequency_mhz"
    uptime: str = "pluto_device_uptime_seconds"
    shares_accepted: str = "pluto_device_shares_accepted_total"
    shares_rejected: str = "pluto_device_shares_rejected_total"
    firmware_label: str = "firmware_version"


FAMILIES = Families()

RATE_WINDOW = "5m"


def device_queries(device_id: str, f: Families = FAMILIES) -> dict[str, str]:
    """name -> PromQL for one device's dashboard."""
    sel = f'{{device="{validate_device_id(device_id)}"}}'

    def one(family: str) -> str:
        return f"max by (device) ({family}{sel})"

    def rate(family: str) -> str:
        return f"sum by (device) (rate({family}{sel}[{RATE_WINDOW}])) * 60"

    return {
        "up": one(f.up),
        "uptime": one(f.uptime),
        "hashrate": one(f.hashrate),
        "hashrate_1m": one(f.hashrate_1m),
        "hashrate_10m": one(f.hashrate_10m),
        "hashrate_1h": one(f.hashrate_1h),
        "power": one(f.power),
        "efficiency": one(f.efficiency),
        "asic_temp": one(f.asic_temp),
        "vr_temp": one(f.vr_temp),
        "fan_rpm": one(f.fan_rpm),
        "fan_percent": one(f.fan_percent),
        "core_voltage": one(f.core_voltage),
        "core_voltage_actual": one(f.core_voltage_actual),
        "input_voltage": one(f.input_voltage),
        "current": one(f.current),
        "frequency": one(f.frequency),
        "shares_accepted_rate": rate(f.shares_accepted),
        "shares_rejected_rate": rate(f.shares_rejected),
    }


def overview_queries(f: Families = FAMILIES) -> dict[str, str]:
    """name -> PromQL for the fleet overview (every one answers even with no device offline)."""
    per_device_hashrate = f"max by (device) ({f.hashrate})"
    return {
        "devices_total": f"count(max by (device) ({f.up})) or vector(0)",
        "devices_online": f"sum(max by (device) ({f.up})) or vector(0)",
        "devices_offline": f"count(max by (device) ({f.up}) == 0) or vector(0)",
        "total_hashrate": f"sum({per_device_hashrate}) or vector(0)",
        "average_hashrate": f"avg({per_device_hashrate})",
        "total_power": f"sum(max by (device) ({f.power})) or vector(0)",
        "efficiency": (f"sum(max by (device) ({f.power})) / (sum({per_device_hashrate}) / 1000)"),
        "hashrate_by_device": f"max by (device, hostname) ({f.hashrate})",
        "max_temp_by_device": f"max by (device, hostname) ({f.asic_temp})",
        "firmware": f"count by ({f.firmware_label}) ({f.info})",
        "shares_accepted_rate": f"sum(rate({f.shares_accepted}[{RATE_WINDOW}])) * 60",
        "shares_rejected_rate": f"sum(rate({f.shares_rejected}[{RATE_WINDOW}])) * 60",
    }
