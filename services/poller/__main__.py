"""`python -m services.poller`: run the poller with settings from the environment."""

from __future__ import annotations

from services.poller.app import create_app
from services.poller.settings import PollerSettings
from shared.logs import setup_logging
from shared.runtime import run


def main() -> None:
    settings = PollerSettings()
    setup_logging(settings.log_level, settings.log_format)
    run(create_app(settings).run())


if __name__ == "__main__":
    main()
