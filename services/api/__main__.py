"""`python -m services.api`: run the gateway with settings from the environment.

python -m services.api                   # serve; prints `api listening on http://HOST:PORT`
python -m services.api --generate-token  # print a new operator token and exit
python -m services.api --openapi         # print the OpenAPI document and exit
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from aiohttp import web
from pydantic import ValidationError

from services.api.app import create_app, document
from services.api.auth import generate_token
from services.api.settings import ApiSettings
from shared.logs import setup_logging
from shared.runtime import run

log = logging.getLogger("services.api")


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(settings: ApiSettings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=log if settings.access_log else None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, backlog=1024)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = base_url(settings.host if settings.host not in ("0.0.0.0", "::") else host, port)
        # The launcher (`pluto up`) waits for exactly this line.
        print(f"api listening on {url}", flush=True)
        log.info(
            "api: serving %s (web page /, OpenAPI /openapi.json%s)",
            url,
            f", Grafana proxy /grafana/ -> {settings.grafana_url}" if settings.grafana_url else "",
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--generate-token", action="store_true", help="print a new operator token and exit")
    parser.add_argument("--openapi", action="store_true", help="print the OpenAPI document and exit")
    args = parser.parse_args(argv)
    if args.generate_token:
        print(generate_token())
        return 0
    try:
        settings = ApiSettings()
    except ValidationError as exc:
        print(f"error: invalid PLUTO_API_* settings: {exc}", file=sys.stderr)
        return 2
    if args.openapi:
        print(json.dumps(document(settings), indent=2))
        return 0
    setup_logging(settings.log_level, settings.log_format)
    try:
        run(serve(settings))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # an unusable operator token file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
