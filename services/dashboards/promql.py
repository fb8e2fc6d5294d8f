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
    """The exporter's metric family names (services/exporter/families.py)."""

    model_config = ConfigDict(frozen=True)

    # per device, labelled {device, hostname}; measured values only while the device is online
    up: str = "pluto_device_up"
    hashrate: str = "pluto_hashrate_ghs"
    hashrate_1m: str = "pluto_hashrate_1m_ghs"
    hashrate_10m: str = "pluto_hashrate_10m_ghs"
    hashrate_1h: str = "pluto_hashrate_1h_ghs"
    power: str = "pluto_power_watts"
    efficiency: str = "pluto_efficiency_jth"
    asic_temp: str = "pluto_asic_temperature_celsius"
    vr_temp: str = "pluto_vr_temperature_celsius"
    fan_rpm: str = "pluto_fan_rpm"
    fan_percent: str = "pluto_fan_speed_percent"
    core_voltage: str = "pluto_core_voltage_volts"
    core_voltage_actual: str = "pluto_core_voltage_actual_volts"
    input_voltage: str = "pluto_input_voltage_volts"
    current: str = "pluto_input_current_amps"
    frequency: str = "pluto_frequency_mhz"
    uptime: str = "pluto_uptime_seconds"
    shares_accepted: str = "pluto_shares_accepted_total"
    shares_rejected: str = "pluto_shares_rejected_total"

    # the overview, named as the reference system named it
    total_hardware: str = "total_hardware"
    hardware_online: str = "hardware_online"
    hardware_offline: str = "hardware_offline"
    total_hashrate: str = "total_hashrate"
    average_hashrate: str = "average_hashrate"
    total_power: str = "total_power_watts"
    total_efficiency: str = "total_efficiency"
    firmware_distribution: str = "firmware_version_distribution"
    firmware_label: str = "version"
    pool_accepted: str = "shares_by_pool_accepted"
    pool_label: str = "pool"


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
    """name -> PromQL for the fleet overview."""
    return {
        "devices_total": f"sum({f.total_hardware})",
        "devices_online": f"sum({f.hardware_online})",
        "devices_offline": f"sum({f.hardware_offline})",
        "total_hashrate": f"sum({f.total_hashrate})",
        "average_hashrate": f"avg({f.average_hashrate})",
        "total_power": f"sum({f.total_power})",
        "efficiency": f"avg({f.total_efficiency})",
        "firmware": f"sum by ({f.firmware_label}) ({f.firmware_distribution})",
        "pool_accepted": f"sum by ({f.pool_label}) ({f.pool_accepted})",
        "hashrate_by_device": f"max by (device, hostname) ({f.hashrate})",
        "max_temp_by_device": f"max by (device, hostname) ({f.asic_temp})",
        "shares_accepted_rate": f"sum(rate({f.shares_accepted}[{RATE_WINDOW}])) * 60",
        "shares_rejected_rate": f"sum(rate({f.shares_rejected}[{RATE_WINDOW}])) * 60",
    }
