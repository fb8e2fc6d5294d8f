"""Health, readiness, the fleet overview and the OpenAPI document."""

from __future__ import annotations

import time

from aiohttp import web

from services.api import fleet
from services.api.appkeys import BROKER, OPENAPI, SETTINGS, VIEWS
from services.api.models import Health, Overview, Readiness
from services.api.openapi import Reply, Route
from services.api.payloads import reply


async def health(request: web.Request) -> web.Response:
    """The process answers; says nothing about NATS (that is readiness)."""
    return reply(Health())


def readiness(request: web.Request) -> Readiness:
    views = request.app[VIEWS]
    connection = request.app[BROKER].config.connection_state
    connected = bool(connection) and request.app[BROKER].connection.is_connected
    caught_up = views.caught_up
    return Readiness(
        ready=connected and all(caught_up.values()),
        nats_connected=connected,
        caught_up=caught_up,
        devices=len(views.devices),
    )


async def ready(request: web.Request) -> web.Response:
    """200 once NATS is connected and every view has replayed its stream; 503 until then."""
    state = readiness(request)
    return reply(state, status=200 if state.ready else 503)


async def overview(request: web.Request) -> web.Response:
    views, offline_after = request.app[VIEWS], request.app[SETTINGS].offline_after
    now = time.time()
    totals = fleet.totals((views.tracks.get(i) for i in views.devices), now, offline_after)
    return reply(
        Overview(
            total_hardware=totals.total_hardware,
            hardware_online=totals.hardware_online,
            hardware_offline=totals.hardware_offline,
            total_hashrate_ghs=totals.total_hashrate_ghs,
            average_hashrate_ghs=totals.average_hashrate_ghs,
            total_power_watts=totals.total_power_watts,
            total_efficiency_jth=totals.total_efficiency_jth,
            firmware_versions=totals.firmware_versions,
            offline_after_s=offline_after,
            computed_at=now,
        )
    )


async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


def routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/healthz",
            health,
            "Liveness: the process answers",
            "status",
            {200: Reply("alive", Health)},
        ),
        Route(
            "GET",
            "/readyz",
            ready,
            "Readiness: NATS connected and the views caught up",
            "status",
            {200: Reply("ready", Readiness), 503: Reply("not ready yet", Readiness)},
        ),
        Route(
            "GET",
            "/api/v1/overview",
            overview,
            "Fleet totals (the exporter's rules)",
            "fleet",
            {200: Reply("the totals", Overview)},
        ),
        Route(
            "GET",
            "/openapi.json",
            openapi_document,
            "This document",
            "status",
            {200: Reply("the OpenAPI 3.1 document")},
        ),
    ]
