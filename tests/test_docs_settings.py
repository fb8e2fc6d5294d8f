"""Every service setting is documented where the README says it is."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from services.api.settings import ApiSettings
from services.dashboards.settings import DashboardsSettings
from services.exporter.settings import ExporterSettings
from services.poller.settings import PollerSettings
from shared.settings import BusSettings

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("settings", "doc"),
    [
        (PollerSettings, "docs/architecture.md"),
        (ExporterSettings, "docs/exporter.md"),
        (DashboardsSettings, "docs/dashboards.md"),
        (ApiSettings, "docs/api.md"),
    ],
)
def test_every_setting_is_documented(settings: type[BaseSettings], doc: str) -> None:
    text = (ROOT / doc).read_text()
    prefix = settings.model_config.get("env_prefix", "")
    missing = []
    for name, field in settings.model_fields.items():
        if name in BusSettings.model_fields:  # shared, documented in the README
            continue
        names = {prefix + name.upper()}
        if isinstance(field.validation_alias, str):
            names.add(field.validation_alias)
        if not any(f"`{n}`" in text for n in names):
            missing.append(sorted(names)[0])
    assert not missing, f"{doc} does not list {missing}"
