from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import BusSettings


class PollerSettings(BusSettings):
    """How the poller treats devices; env prefix `PLUTO_POLLER_` (bus settings keep `PLUTO_`)."""

    model_config = SettingsConfigDict(env_prefix="PLUTO_POLLER_", extra="ignore")

    interval_s: float = Field(default=5.0, gt=0, description="time between polls of one device")
    jitter: float = Field(default=0.1, ge=0, lt=1, description="each interval varies by ±this fraction")
    timeout_s: float = Field(
        default=3.0,
        gt=0,
        description="hard limit for one request, body included (default: 3 s, at most 0.8 x interval)",
    )
    max_body_bytes: int = Field(default=64 * 1024, gt=0, description="larger bodies are an error")
    backoff_after: int = Field(default=3, ge=1, description="consecutive failures before backing off")
    backoff_max_s: float = Field(
        default=60.0, gt=0, description="longest wait between polls of a silent device"
    )
    publish_window_s: float = Field(
        default=0.01, ge=0, le=1, description="readings are held this long to share one socket write"
    )
    max_in_flight: int = Field(
        default=512,
        ge=1,
        description="requests in flight at once to devices that answer; a poll waits for a slot "
        "before its deadline starts",
    )
    max_in_flight_failing: int = Field(
        default=128, ge=1, description="requests in flight at once to devices whose last poll failed"
    )
    # /healthz and /readyz (shared/health.py). Loopback by default: containers set 0.0.0.0
    # in deploy/. 9111 sits beside the exporter's 9110 and the dashboards service's 9112.
    health_host: str = Field(default="127.0.0.1", description="address /healthz and /readyz listen on")
    health_port: int = Field(
        default=9111, ge=0, le=65535, description="port of /healthz and /readyz, 0 picks a free port"
    )

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> PollerSettings:
        # One request in flight per device: a timeout longer than the interval would
        # stretch the cadence. The default follows a short interval; an explicit one must fit.
        if self.timeout_s > self.interval_s:
            if "timeout_s" in self.model_fields_set:
                raise ValueError("timeout_s must not exceed interval_s")
            self.timeout_s = 0.8 * self.interval_s
        return self
