"""The dashboards service's settings: environment variables `PLUTO_DASHBOARDS_*`.

The bus settings it shares with every service keep their shared names
(`PLUTO_NATS_URL`, `PLUTO_LOG_LEVEL`, `PLUTO_LOG_FORMAT`, see shared/settings.py).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import BusSettings

UID_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"


class DashboardsSettings(BusSettings):
    model_config = SettingsConfigDict(env_prefix="PLUTO_DASHBOARDS_", extra="ignore")

    # Grafana
    grafana_url: str = Field(
        default="http://127.0.0.1:3000/grafana",
        description="Grafana's base URL, sub-path included (`http://grafana:3000/grafana`)",
    )
    grafana_user: str = Field(
        default="admin", min_length=1, description="login sent in X-WEBAUTH-USER (org Admin)"
    )
    grafana_auth_header: str = "X-WEBAUTH-USER"
    grafana_timeout: float = Field(default=10.0, gt=0, description="seconds per Grafana request")
    grafana_origin: str | None = Field(
        default=None, description="Origin header to send; none by default (CSRF check passes)"
    )
    grafana_cookies: bool = Field(default=False, description="keep cookies Grafana sets")
    datasource_uid: str = Field(default="pluto-prometheus", pattern=UID_PATTERN)
    templates_dir: Path | None = Field(
        default=None, description="dashboard templates; the ones shipped with the service if unset"
    )
    public_path_prefix: str = Field(
        default="/grafana/public-dashboards",
        description="browser path of public dashboards, the accessToken is appended",
    )

    # provisioning
    dashboards_dir: Path = Field(
        default=Path("/var/lib/grafana/dashboards"),
        description="Grafana's provisioned folder, where dashboard files are written",
    )
    file_mode: int = Field(default=0o644, description="mode of written files (Grafana reads them)")
    reload: bool = Field(
        default=True,
        description="ask Grafana to rescan now (needs server admin); falls back to the scan",
    )
    load_timeout: float = Field(
        default=35.0, gt=0, description="how long to wait for Grafana to load a written file"
    )

    # secret behind the accessTokens
    token_secret: SecretStr | None = Field(
        default=None, description="secret the accessTokens are derived from (>= 16 chars)"
    )
    token_secret_file: Path | None = Field(
        default=None, description="read the secret here; created (0600) when missing"
    )

    # bus and work
    durable: str = Field(default="pluto-dashboards", pattern=r"^[A-Za-z0-9_-]+$")
    concurrency: int = Field(
        default=512,
        ge=1,
        le=4096,
        description="events in flight at once (most of a flow is waiting for Grafana)",
    )
    ack_wait: float = Field(default=60.0, gt=1, description="JetStream ack wait, seconds")
    retry_initial: float = Field(default=0.5, gt=0)
    retry_max: float = Field(default=30.0, gt=0, description="cap of the retry backoff")
    reconcile_interval: float = Field(default=60.0, gt=0)

    # /healthz and /readyz (shared/health.py). Loopback by default: containers set 0.0.0.0
    # in deploy/. 9112 sits beside the exporter's 9110 and the poller's 9111.
    health_host: str = Field(default="127.0.0.1", description="address /healthz and /readyz listen on")
    health_port: int = Field(
        default=9112, ge=0, le=65535, description="port of /healthz and /readyz, 0 picks a free port"
    )

    @field_validator("grafana_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"grafana_url must be an http(s) URL, got {url!r}")
        return url.rstrip("/")

    @field_validator("token_secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < 16:
            raise ValueError("token_secret must be at least 16 characters")
        return secret
