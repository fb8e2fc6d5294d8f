"""What crosses the gateway's HTTP boundary: request bodies, queries and answers, as pydantic models.

The OpenAPI document is generated from these (openapi.py), so the document and
the validation are the same thing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    UrlConstraints,
    WithJsonSchema,
    field_validator,
)

from shared.ids import DeviceId
from shared.models import DeviceReading, LabelKey, LabelValue, ReadingError

# --- queries -------------------------------------------------------------------------


class Status(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Theme(StrEnum):
    LIGHT = "light"
    DARK = "dark"


class _Query(BaseModel):
    # Unknown query parameters are ignored (caches and browsers add their own).
    model_config = ConfigDict(extra="ignore")


class ListDevicesQuery(_Query):
    status: Status | None = Field(default=None, description="only devices with this status")
    q: str | None = Field(
        default=None,
        max_length=100,
        description="case-insensitive text in the id, hostname, URL or a label value",
    )
    limit: int = Field(default=100, ge=1, le=1000, description="page size")
    offset: int = Field(default=0, ge=0, le=10_000_000, description="devices to skip")


class ThemeQuery(_Query):
    theme: Theme = Field(default=Theme.LIGHT, description="Grafana theme of the embedded page")


# --- bodies --------------------------------------------------------------------------

# The JSON Schema says as much of the rules as a schema can: the validators below are the authority.
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@\\]+(/[^\s?#\\]*)?$"
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"

DeviceUrl = Annotated[
    AnyHttpUrl,
    UrlConstraints(max_length=2048, allowed_schemes=["http", "https"]),
    WithJsonSchema({"type": "string", "format": "uri", "maxLength": 2048, "pattern": URL_PATTERN}),
]


class RegisterDevice(BaseModel):
    """Register a device (or change a registration) by its base URL."""

    model_config = ConfigDict(extra="forbid")

    url: DeviceUrl = Field(description="the device's base URL, e.g. `http://192.168.1.50`")
    id: DeviceId | None = Field(
        default=None,
        description="device id; default: the MAC the device reports, else derived from the URL",
    )
    hostname: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=PRINTABLE_PATTERN,
        description="default: what the device reports",
    )
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, max_length=32, json_schema_extra={"additionalProperties": False}
    )

    @field_validator("url")
    @classmethod
    def _plain_base_url(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if url.username or url.password:
            raise ValueError("the URL must not carry credentials")
        if url.query or url.fragment:
            raise ValueError("the URL must not carry a query or a fragment")
        return url


# --- answers -------------------------------------------------------------------------


class LastError(BaseModel):
    error: ReadingError | None = Field(description="kind of failure")
    message: str | None = None
    at: float = Field(description="when the failed poll ended, epoch seconds")


class DeviceSummary(BaseModel):
    """A row of the fleet table. Measured values are null while the device is offline."""

    id: str
    hostname: str | None
    url: str
    labels: dict[str, str]
    status: Status
    failing: bool = Field(description="the newest poll failed (the device may still be online)")
    hashrate_ghs: float | None
    power_watts: float | None
    asic_temp_celsius: float | None
    efficiency_jth: float | None
    firmware_version: str | None
    last_seen_at: float | None = Field(description="newest reading of any kind, epoch seconds")
    last_ok_at: float | None = Field(description="newest successful reading, epoch seconds")
    last_error: LastError | None = Field(description="the newest failed poll, if any was seen")


class DeviceList(BaseModel):
    items: list[DeviceSummary]
    total: int = Field(description="devices matching the filters")
    limit: int
    offset: int


class DashboardLink(BaseModel):
    """Where a dashboard can be embedded, as the dashboards service announced it."""

    key: str = Field(description="a device id, or `_overview`")
    device_id: str | None
    status: Literal["published", "unpublished", "pending"] = Field(
        description="`pending`: no dashboard announced yet"
    )
    title: str | None
    dashboard_uid: str | None
    url: str | None = Field(
        description="`/grafana/public-dashboards/<accessToken>?orgId=1&theme=<theme>&refresh=5s`"
    )
    theme: Theme
    updated_at: float | None


class DashboardList(BaseModel):
    items: list[DashboardLink]


class DeviceDetail(DeviceSummary):
    mac: str | None
    registered_hostname: str | None
    registered_at: float
    reading: DeviceReading | None = Field(description="the newest reading, successful or not")
    last_ok_reading: DeviceReading | None = Field(description="the newest successful reading")
    dashboard: DashboardLink


class Overview(BaseModel):
    """Fleet totals, computed by the exporter's rules (online devices only)."""

    total_hardware: int
    hardware_online: int
    hardware_offline: int
    total_hashrate_ghs: float
    average_hashrate_ghs: float
    total_power_watts: float
    total_efficiency_jth: float | None = Field(description="null when no online device hashes")
    firmware_versions: dict[str, int]
    offline_after_s: float
    computed_at: float


class GrafanaData(BaseModel):
    """The public dashboard as Grafana describes it (the fields the gateway knows)."""

    uid: str | None
    dashboardUid: str
    accessToken: str
    isEnabled: bool
    createdAt: str | None
    updatedAt: str


class ReferenceDashboard(BaseModel):
    """One entry of the reference Pluto frontend's `GET /dashboards`."""

    name: str
    uid: str
    publicUrl: str
    grafanaData: GrafanaData


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    nats_connected: bool
    caught_up: dict[str, bool] = Field(description="each replay: devices, readings, dashboards")
    devices: int
