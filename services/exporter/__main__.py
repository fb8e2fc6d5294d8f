"""`python -m services.exporter`: run the exporter until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from shared.logs import setup_logging

from .app import create_app
from .settings import ExporterSettings

log = logging.getLogger("services.exporter")


async def run(settings: ExporterSettings) -> None:
    app = create_app(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    try:
        await stop.wait()
    finally:
        await app.stop()


def main() -> None:
    settings = ExporterSettings()
    setup_logging(settings.log_level, settings.log_format)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
