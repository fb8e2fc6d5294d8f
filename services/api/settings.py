"""The gateway's settings: environment variables `PLUTO_API_*`.

The bus settings it shares with every service keep their shared names
(`PLUTO_NATS_URL`, `PLUTO_LOG_LEVEL`, `PLUTO_LOG_FORMAT`, see shared/settings.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.settings import BusSettings

MIN_TOKEN_LENGTH = 16


class ApiSettings(BusSettings):
    model_config = SettingsConfigDict(env_prefix="PLUTO_API_", extra="ignore")

    # serving
    host: str = Field(default="127.0.0.1", description="listen address")
    port: int = Field(default=8080, ge=0, le=65535, description="listen port, 0 = any free port")
    access_log: bool = Field(default=False, description="one log line per request")
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, le=16 * 1024 * 1024, description="larger request bodies get 413"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="origins allowed to call the API from a browser, comma-separated; `*` for any",
    )

    # mutations
    operator_token: SecretStr | None = Field(
        default=None, description="bearer token that register and remove require"
    )
    operator_token_file: Path | None = Field(
        default=None,
        description="read the token here when operator_token is unset; created (0600) if missing",
    )

    # views
    offline_after: float = Field(
        default=15.0, gt=0, description="a device without a good reading for this long is offline"
    )
    probe: bool = Field(
        default=True, description="ask a registering device for its MAC and hostname when they are not given"
    )
    probe_timeout: float = Field(
        default=2.0, gt=0, le=30, description="seconds to ask a registering device for its MAC"
    )
    register_wait: float = Field(
        default=5.0, gt=0, le=60, description="seconds a mutation waits to see its own event in the views"
    )
    public_path_prefix: str = Field(
        default="/grafana/public-dashboards",
        description="browser path of public dashboards when an event carries no public_path",
    )

    # the /grafana/ reverse proxy (off unless grafana_url is set)
    grafana_url: str | None = Field(
        default=None,
        description="Grafana's base URL, sub-path included (`http://grafana:3000/grafana`); "
        "set it to serve /grafana/ from the gateway",
    )
    grafana_user: str = Field(
        default="admin", min_length=1, max_length=256, description="login added for operator requests"
    )
    grafana_auth_header: str = Field(default="X-WEBAUTH-USER", pattern=r"^[A-Za-z0-9-]+$")
    grafana_timeout: float = Field(default=30.0, gt=0, description="seconds per proxied request")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @field_validator("operator_token")
    @classmethod
    def _long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < MIN_TOKEN_LENGTH:
            raise ValueError(f"operator_token must be at least {MIN_TOKEN_LENGTH} characters")
        return token

    @field_validator("grafana_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if not url:
            return None
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"grafana_url must be an http(s) URL, got {url!r}")
        return url.rstrip("/")

    @field_validator("public_path_prefix")
    @classmethod
    def _absolute_path(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("public_path_prefix must start with '/'")
        return path.rstrip("/")
