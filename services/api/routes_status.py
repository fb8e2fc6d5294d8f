"""Health, readiness, the fleet overview and the OpenAPI document."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

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


@dataclass
class OverviewCache:
    """The last overview, reused for `max_age` seconds while the registry stays the same.

    Summing 10,000 devices costs milliseconds; readings change each device every few
    seconds, so a page polling the overview cannot tell a second-old answer apart.
    """

    max_age: float = 1.0
    body: bytes = b""
    computed_at: float = -math.inf  # monotonic
    registry_version: int = -1


OVERVIEW_CACHE = web.AppKey("overview_cache", OverviewCache)


def compute_overview(request: web.Request) -> Overview:
    views, offline_after = request.app[VIEWS], request.app[SETTINGS].offline_after
    now = time.time()
    totals = fleet.totals((views.tracks.get(i) for i in views.devices), now, offline_after)
    return Overview(
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


async def overview(request: web.Request) -> web.Response:
    cache, version = request.app[OVERVIEW_CACHE], request.app[VIEWS].registry_version
    now = time.monotonic()
    if cache.registry_version != version or now - cache.computed_at > cache.max_age:
        cache.body = compute_overview(request).model_dump_json().encode()
        cache.computed_at, cache.registry_version = now, version
    return web.Response(body=cache.body, content_type="application/json")


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
