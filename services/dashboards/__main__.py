"""`python -m services.dashboards`: run the dashboards service, configured by PLUTO_DASHBOARDS_*."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from services.dashboards.app import create_app
from services.dashboards.settings import DashboardsSettings
from services.dashboards.tokens import SecretMissing
from shared.logs import setup_logging
from shared.runtime import run


def main() -> int:
    try:
        settings = DashboardsSettings()
    except ValidationError as exc:
        print(f"dashboards: bad settings:\n{exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    try:
        app = create_app(settings)
    except SecretMissing as exc:
        print(f"dashboards: {exc}", file=sys.stderr)
        return 2
    run(app.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
