"""Devices: the fleet table, one device in detail, register and remove.

Reads come from the views. Register and remove publish the registry events
(`shared.registry`): JetStream acknowledges once the stream stores the event,
so a registration survives any service being down; the answer then waits (up
to `register_wait`) until the gateway's own view shows the change, so a read
right after a write sees it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from aiohttp import web
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from pydantic import ValidationError

from services.api.appkeys import BROKER, PROBE_HTTP, SETTINGS, TOKEN, VIEWS
from services.api.auth import require_operator
from services.api.models import (
    DeviceDetail,
    DeviceList,
    ListDevicesQuery,
    RegisterDevice,
    Status,
    ThemeQuery,
)
from services.api.openapi import Reply, Route, problem
from services.api.params import DEVICE_ID, device_id_param
from services.api.payloads import parse_body, parse_query, reply, reply_raw
from services.api.probe import identify
from services.api.problems import Problem, validation_problem
from services.api.routes_dashboards import link
from services.api.rows import RowCache, summary_fields
from shared.bus import jetstream
from shared.ids import InvalidDeviceId, device_id_from_mac, device_id_from_url
from shared.models import DeviceAdded
from shared.registry import publish_added, publish_removed

log = logging.getLogger(__name__)

REGISTER_LOCK = web.AppKey("register_lock", asyncio.Lock)
ROWS = web.AppKey("rows", RowCache)


def detail(request: web.Request, device_id: str, theme: ThemeQuery) -> DeviceDetail:
    views, settings = request.app[VIEWS], request.app[SETTINGS]
    device = views.devices[device_id]
    track = views.tracks.get(device_id)
    return DeviceDetail(
        **summary_fields(views, device_id, time.time(), settings.offline_after),
        mac=device.mac,
        registered_hostname=device.hostname,
        registered_at=device.at,
        reading=track.latest if track is not None else None,
        last_ok_reading=track.last_ok if track is not None else None,
        dashboard=link(views, device_id, theme.theme, settings.public_path_prefix),
    )


# --- reads ------------------------------------------------------------------------------


async def list_devices(request: web.Request) -> web.Response:
    query = parse_query(request, ListDevicesQuery)
    views, offline_after = request.app[VIEWS], request.app[SETTINGS].offline_after
    now = time.time()
    ids = views.ordered_ids()
    if query.q:
        needle, haystacks = query.q.casefold(), views.haystacks()
        ids = [i for i in ids if needle in haystacks[i]]
    if query.status is not None:
        online = {
            i
            for i, t in views.tracks.items()
            if t.last_ok_at is not None and now - t.last_ok_at <= offline_after
        }
        wanted = query.status is Status.ONLINE
        ids = [i for i in ids if (i in online) is wanted]
    page = ids[query.offset : query.offset + query.limit]
    envelope = DeviceList(items=[], total=len(ids), limit=query.limit, offset=query.offset)
    return reply_raw(request.app[ROWS].page(views, page, now, offline_after, envelope))


async def get_device(request: web.Request) -> web.Response:
    device_id = device_id_param(request)
    theme = parse_query(request, ThemeQuery)
    if device_id not in request.app[VIEWS].devices:
        raise Problem(404, "device_not_found", f"no device {device_id!r} is registered")
    return reply(detail(request, device_id, theme))


# --- writes ------------------------------------------------------------------------------


async def register_device(request: web.Request) -> web.Response:
    require_operator(request, request.app[TOKEN])
    body = await parse_body(request, RegisterDevice)
    settings, views = request.app[SETTINGS], request.app[VIEWS]
    url = str(body.url)
    identity = None
    if settings.probe and (body.id is None or body.hostname is None):
        identity = await identify(request.app[PROBE_HTTP], url, settings.probe_timeout)
    mac = identity.mac if identity is not None else None
    try:
        device_id = body.id or (mac and device_id_from_mac(mac)) or device_id_from_url(url)
        event = DeviceAdded(
            id=device_id,
            url=url,
            hostname=body.hostname or (identity.hostname if identity is not None else None),
            mac=mac,
            labels=body.labels,
            at=time.time(),
        )
    except ValidationError as exc:
        raise validation_problem(exc, "body") from None
    except InvalidDeviceId as exc:
        raise Problem(422, "validation_error", str(exc)) from None

    async with request.app[REGISTER_LOCK]:  # the duplicate check and the publish, as one step
        owner = views.find_url(url)
        if owner is not None and owner != event.id:
            raise Problem(
                409,
                "duplicate_url",
                f"{url} is already registered as device {owner!r}; remove it first or register it "
                f"under that id",
            )
        existed = event.id in views.devices
        await _publish(publish_added(_jetstream(request), event))
        seen = await views.wait_until(lambda: views.devices.get(event.id) == event, settings.register_wait)
    log.info("device %s %s (%s) through the API", event.id, "updated" if existed else "registered", url)
    if not seen:
        log.warning(
            "device %s stored, not yet in this gateway's view after %gs", event.id, settings.register_wait
        )
        if event.id not in views.devices:
            return reply(event, status=202, headers={"Location": f"/api/v1/devices/{event.id}"})
    location = {"Location": f"/api/v1/devices/{event.id}"}
    return reply(detail(request, event.id, ThemeQuery()), status=200 if existed else 201, headers=location)


async def remove_device(request: web.Request) -> web.Response:
    require_operator(request, request.app[TOKEN])
    device_id = device_id_param(request)
    views = request.app[VIEWS]
    if device_id not in views.devices:
        raise Problem(404, "device_not_found", f"no device {device_id!r} is registered")
    await _publish(publish_removed(_jetstream(request), device_id))
    await views.wait_until(lambda: device_id not in views.devices, request.app[SETTINGS].register_wait)
    log.info("device %s removed through the API", device_id)
    return web.Response(status=204)


def _jetstream(request: web.Request) -> JetStreamContext:
    broker = request.app[BROKER]
    if not broker.config.connection_state:
        raise Problem(503, "bus_unavailable", "the gateway is not connected to NATS yet; try again")
    return jetstream(broker)


async def _publish(publishing: Awaitable[None]) -> None:
    try:
        await publishing
    except (NatsError, TimeoutError) as exc:
        raise Problem(
            503, "bus_unavailable", f"the event could not be stored (NATS: {type(exc).__name__}); try again"
        ) from None


def routes() -> list[Route]:
    auth_problems = {
        401: problem("the operator token is missing or wrong"),
        403: problem("mutations are disabled: no operator token is configured"),
    }
    return [
        Route(
            "GET",
            "/api/v1/devices",
            list_devices,
            "The fleet: devices sorted by hostname, filtered and paginated",
            "devices",
            {200: Reply("one page of devices", DeviceList), 422: problem("invalid query parameter")},
            query=ListDevicesQuery,
        ),
        Route(
            "POST",
            "/api/v1/devices",
            register_device,
            "Register a device (publishes device-added; answers once the event is stored)",
            "devices",
            {
                200: Reply("the registration was updated", DeviceDetail, headers=("Location",)),
                201: Reply("the device was registered", DeviceDetail, headers=("Location",)),
                202: Reply(
                    "stored, not yet visible in this gateway's view", DeviceAdded, headers=("Location",)
                ),
                400: problem("the body is not JSON"),
                **auth_problems,
                409: problem("the URL is registered under another id"),
                413: problem("the body is too large"),
                422: problem("invalid body"),
                503: problem("NATS could not store the event"),
            },
            body=RegisterDevice,
            operator=True,
        ),
        Route(
            "GET",
            "/api/v1/devices/{device_id}",
            get_device,
            "One device: registration, status, newest reading, last error, dashboard",
            "devices",
            {
                200: Reply("the device", DeviceDetail),
                404: problem("no such device"),
                422: problem("invalid device id or query parameter"),
            },
            query=ThemeQuery,
            path_params=(DEVICE_ID,),
        ),
        Route(
            "DELETE",
            "/api/v1/devices/{device_id}",
            remove_device,
            "Remove a device (publishes device-removed)",
            "devices",
            {
                204: Reply("removed"),
                **auth_problems,
                404: problem("no such device"),
                422: problem("invalid device id"),
                503: problem("NATS could not store the event"),
            },
            path_params=(DEVICE_ID,),
            operator=True,
        ),
    ]
