"""The API gateway: what the frontend asks, answered from the bus.

Story: on start the gateway connects to NATS (FastStream's broker owns the
connection), makes sure the contract's streams exist and replays three of them
into in-memory views: the registry, the latest reading of every device and
every dashboard's state, then follows them live (views.py). Every read is
answered from those views, never by calling Grafana or a device. Register and
remove publish the registry events and answer once JetStream has stored them.
Beside the JSON API it serves a small web page, its OpenAPI document and,
when configured, a `/grafana/` reverse proxy that keeps Grafana's auth proxy safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError

from services.api import openapi, proxy, routes_dashboards, routes_devices, routes_page, routes_status
from services.api.appkeys import BROKER, OPENAPI, PROBE_HTTP, PROXY_HTTP, SETTINGS, STATIC, TOKEN, VIEWS
from services.api.auth import resolve_token
from services.api.middleware import cors_middleware, security_headers
from services.api.probe import make_session as make_probe_session
from services.api.problems import problems_middleware
from services.api.rows import RowCache
from services.api.settings import ApiSettings
from services.api.views import Views
from shared.bus import jetstream, make_broker, prepare_bus

log = logging.getLogger(__name__)

TITLE = "Pluto fleet API gateway"
VERSION = "1.0.0"
DESCRIPTION = (
    "Devices with their latest reading and status, registration and removal (operator token), "
    "dashboards with embeddable URLs, fleet totals, health. Answered from the NATS streams. "
    "Errors are RFC 9457 problem details."
)


def route_table(settings: ApiSettings) -> list[openapi.Route]:
    table = [
        *routes_devices.routes(),
        *routes_dashboards.routes(),
        *routes_status.routes(),
        *routes_page.routes(),
    ]
    if settings.grafana_url:
        table += proxy.routes()
    return table


def document(settings: ApiSettings) -> dict[str, object]:
    return openapi.build_document(
        route_table(settings), title=TITLE, version=VERSION, description=DESCRIPTION
    )


async def _connect(app: web.Application) -> None:
    """Connect (retrying until NATS is there), then replay the streams into the views."""
    broker, settings = app[BROKER], app[SETTINGS]
    delay = 0.5
    while True:
        try:
            await prepare_bus(broker)
            break
        except (NatsError, OSError, TimeoutError) as exc:
            if delay == 0.5:  # said once; readiness says it for as long as it lasts
                log.warning(
                    "api: waiting for NATS at %s (%s); /readyz answers 503 meanwhile",
                    settings.nats_url,
                    type(exc).__name__,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    await app[VIEWS].start(jetstream(broker))
    log.info(
        "api: connected to NATS at %s; replaying the registry, readings and dashboards", settings.nats_url
    )


async def _bus(app: web.Application) -> AsyncIterator[None]:
    """Serve at once; connect and follow the streams in the background; undo in reverse."""
    connecting = asyncio.create_task(_connect(app), name="api-connect")
    try:
        yield
    finally:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
        await app[VIEWS].stop()
        await _disconnect(app[BROKER])


async def _disconnect(broker: NatsBroker) -> None:
    """Drain the connection; while NATS is away, draining is refused, so just close it."""
    client = broker.connection if broker.config.connection_state else None
    try:
        await broker.stop()
    except (NatsError, OSError) as exc:
        log.info("api: NATS connection closed without draining (%s)", type(exc).__name__)
        if client is not None:
            with contextlib.suppress(NatsError, OSError):  # the socket may be gone already
                await client.close()


async def _http_clients(app: web.Application) -> AsyncIterator[None]:
    app[PROBE_HTTP] = make_probe_session()
    if app[SETTINGS].grafana_url:
        app[PROXY_HTTP] = proxy.make_session()
    yield
    await app[PROBE_HTTP].close()
    if PROXY_HTTP in app:
        await app[PROXY_HTTP].close()


def create_app(settings: ApiSettings) -> web.Application:
    app = web.Application(
        middlewares=[cors_middleware(settings.cors_origins), problems_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[TOKEN] = resolve_token(settings)
    app[VIEWS] = Views()
    app[BROKER] = make_broker(settings, name="api")
    app[routes_devices.REGISTER_LOCK] = asyncio.Lock()
    app[routes_devices.ROWS] = RowCache()
    app[routes_status.OVERVIEW_CACHE] = routes_status.OverviewCache()
    app[STATIC] = routes_page.load_static()
    table = route_table(settings)
    app[OPENAPI] = openapi.render(
        openapi.build_document(table, title=TITLE, version=VERSION, description=DESCRIPTION)
    )
    openapi.add_routes(app, table)
    app.on_response_prepare.append(security_headers)
    app.cleanup_ctx.append(_bus)
    app.cleanup_ctx.append(_http_clients)
    if app[TOKEN] is None:
        log.warning("api: no operator token configured: registering and removing devices is disabled")
    elif settings.operator_token is None:
        log.info("api: operator token in %s", settings.operator_token_file)
    return app
