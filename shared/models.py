"""The bus contract: every message that crosses NATS, as pydantic models.

Units downstream of the poller are SI (V, A, W, °C) plus the field's own
conventions: hashrate in GH/s, efficiency in J/TH, frequency in MHz. Times are
Unix epoch seconds (floats): cheap to produce and compare on the hot path.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from shared.ids import DeviceId

LabelKey = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,62}$")]
LabelValue = Annotated[str, Field(max_length=256)]


class _Message(BaseModel):
    # Unknown keys from a newer producer are ignored, never fatal.
    model_config = ConfigDict(extra="ignore", frozen=True)


class DeviceAdded(_Message):
    """A device joined the fleet (or its registration changed)."""

    kind: Literal["added"] = "added"
    id: DeviceId
    url: AnyHttpUrl
    hostname: str | None = Field(default=None, max_length=256)
    mac: str | None = Field(default=None, max_length=32)
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    at: float = Field(description="when the registration was made, epoch seconds")

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if url.username or url.password:
            raise ValueError("device URL must not carry credentials")
        return url


class DeviceRemoved(_Message):
    """A device left the fleet."""

    kind: Literal["removed"] = "removed"
    id: DeviceId
    at: float


DeviceEvent = Annotated[DeviceAdded | DeviceRemoved, Field(discriminator="kind")]


class Firmware(StrEnum):
    LEGACY = "legacy"  # only `hashRate`, no per-window rates
    NEW = "new"  # `hashRate_1m` etc. (ESP-Miner 2.12+)
    UNKNOWN = "unknown"


class ReadingError(StrEnum):
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    HTTP_STATUS = "http_status"
    BODY_TOO_LARGE = "body_too_large"
    INVALID_JSON = "invalid_json"
    INVALID_PAYLOAD = "invalid_payload"


class DeviceReading(_Message):
    """One poll of one device: normalized values, or an error.

    Every measured field is optional: any field can be missing or bad on a real
    device, and one bad field must not cost the others. `invalid_fields` names
    the fields the device sent that were dropped (wrong type, NaN, out of range).
    Zero is a value, never "missing".
    """

    device_id: DeviceId
    ok: bool
    error: ReadingError | None = None
    error_message: str | None = Field(default=None, max_length=500)
    poll_started_at: float
    poll_finished_at: float
    invalid_fields: tuple[str, ...] = ()

    # identity and firmware
    hostname: str | None = Field(default=None, max_length=256)
    mac: str | None = None
    firmware: Firmware = Firmware.UNKNOWN
    firmware_version: str | None = Field(default=None, max_length=64)
    asic_model: str | None = Field(default=None, max_length=64)
    board_version: str | None = Field(default=None, max_length=64)
    device_model: str | None = Field(default=None, max_length=64)
    asic_count: int | None = None

    # hashing, GH/s
    hashrate_ghs: float | None = None
    hashrate_1m_ghs: float | None = None
    hashrate_10m_ghs: float | None = None
    hashrate_1h_ghs: float | None = None
    hashrate_1d_ghs: float | None = None
    expected_hashrate_ghs: float | None = None
    error_percentage: float | None = None

    # power
    power_watts: float | None = None
    voltage_volts: float | None = None
    current_amps: float | None = None
    core_voltage_volts: float | None = None
    core_voltage_actual_volts: float | None = None
    frequency_mhz: float | None = None
    efficiency_jth: float | None = None

    # thermal
    asic_temp_celsius: float | None = None
    temp2_celsius: float | None = None
    vr_temp_celsius: float | None = None
    fan_percent: float | None = None
    fan_rpm: float | None = None
    fan2_rpm: float | None = None

    # mining
    shares_accepted: int | None = None
    shares_rejected: int | None = None
    best_diff: float | None = None
    best_session_diff: float | None = None
    stratum_url: str | None = Field(default=None, max_length=256)
    stratum_port: int | None = None
    stratum_user: str | None = Field(default=None, max_length=256)

    # system
    uptime_seconds: float | None = None
    free_heap_bytes: int | None = None
    wifi_rssi: float | None = None
    power_fault: str | None = Field(default=None, max_length=256)
    hardware_fault: str | None = Field(default=None, max_length=256)


class DashboardState(_Message):
    """Where a device's (or the overview's) public dashboard lives."""

    kind: Literal["published", "unpublished"]
    device_id: str = Field(description="a device id, or `_overview` (shared.subjects.OVERVIEW_KEY)")
    dashboard_uid: str
    title: str
    public_uid: str | None = None
    access_token: str | None = None
    public_path: str | None = Field(default=None, description="`/grafana/public-dashboards/<accessToken>`")
    created_at: float | None = None
    updated_at: float
