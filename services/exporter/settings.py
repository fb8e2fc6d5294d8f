"""The exporter's settings: environment variables `PLUTO_EXPORTER_*`, bus settings `PLUTO_*`."""

from __future__ import annotations

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import BusSettings


def _shared(name: str) -> AliasChoices:
    """A bus setting: `PLUTO_EXPORTER_<NAME>` if set, else the fleet-wide `PLUTO_<NAME>`."""
    return AliasChoices(f"PLUTO_EXPORTER_{name.upper()}", f"PLUTO_{name.upper()}")


class ExporterSettings(BusSettings):
    model_config = SettingsConfigDict(
        env_prefix="PLUTO_EXPORTER_", extra="ignore", populate_by_name=True
    )

    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        validation_alias=_shared("nats_url"),
        description="NATS server URL(s), comma-separated",
    )
    log_level: str = Field(default="INFO", validation_alias=_shared("log_level"))
    log_format: str = Field(
        default="text", pattern="^(text|json)$", validation_alias=_shared("log_format")
    )

    host: str = Field(default="0.0.0.0", description="address /metrics listens on")
    port: int = Field(default=9110, ge=0, le=65535, description="0 picks a free port")
    poll_interval: float = Field(
        default=5.0, gt=0,
        # The poller's own setting counts too, so one variable sets the fleet's cadence.
        validation_alias=AliasChoices("PLUTO_EXPORTER_POLL_INTERVAL", "PLUTO_POLLER_INTERVAL_S"),
        description="the poller's interval, seconds (offline_after's unit)",
    )
    offline_after_polls: float = Field(
        default=3.0, gt=0,
        description="a device with no successful poll for this many intervals is offline",
    )
    forget_after: float = Field(
        default=3600.0, ge=0,
        description="a device with no reading at all for this long leaves /metrics (0 = never); "
        "the default matches the readings stream's max age, so a restart agrees",
    )
    per_host_names: bool = Field(
        default=True, description="also export the reference's `{hostname}_power_watts` names"
    )
    overview: bool = Field(
        default=True, description="also export `total_hashrate` and the rest of the overview"
    )
    shard_index: int = Field(default=0, ge=0, description="this replica's shard")
    shard_count: int = Field(
        default=1, ge=1, description="replicas sharing the fleet by a hash of the device id"
    )
    replay_timeout: float = Field(
        default=15.0, gt=0,
        description="longest wait for the start-up replay before /metrics is served anyway",
    )

    @property
    def offline_after(self) -> float:
        return self.poll_interval * self.offline_after_polls

    @model_validator(mode="after")
    def _shard_in_range(self) -> ExporterSettings:
        if self.shard_index >= self.shard_count:
            raise ValueError(
                f"shard_index {self.shard_index} must be below shard_count {self.shard_count}"
            )
        return self
