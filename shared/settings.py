"""Settings every service shares, read from the environment.

The bus fields keep their `PLUTO_*` names in every service, whatever prefix
the service's own settings use (`PLUTO_POLLER_*`, `PLUTO_EXPORTER_*`, ...).
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BusSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLUTO_", extra="ignore", populate_by_name=True)

    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        validation_alias=AliasChoices("nats_url", "PLUTO_NATS_URL"),
        description="NATS server URL(s), comma-separated",
    )
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("log_level", "PLUTO_LOG_LEVEL"))
    log_format: str = Field(
        default="text",
        pattern="^(text|json)$",
        validation_alias=AliasChoices("log_format", "PLUTO_LOG_FORMAT"),
    )

    @property
    def nats_servers(self) -> list[str]:
        return [s.strip() for s in self.nats_url.split(",") if s.strip()]
