"""Simulator settings: environment (prefix `PLUTO_SIM_`), overridden by CLI flags."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SimulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PLUTO_SIM_", extra="ignore")

    devices: int = Field(default=10, ge=0, le=1_000_000, description="devices served at start")
    host: str = "127.0.0.1"
    port: int = Field(default=8099, ge=0, le=65535, description="0 picks a free port")
    seed: int | None = Field(default=None, description="makes profiles and values reproducible")
    reboot_seconds: float = Field(default=5.0, ge=0, description="how long a reboot answers 503")
    # `name=mode[,key=value...]`, the same syntax as `--fault`; a JSON list in the environment.
    faults: list[str] = Field(default_factory=list)
    # Devices whose payload lacks `macAddr` (old firmware did not send it).
    omit_mac: list[str] = Field(default_factory=list)
    log_level: str = "INFO"
    log_format: str = Field(default="text", pattern="^(text|json)$")
