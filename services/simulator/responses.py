"""The device side of the HTTP server: AxeOS endpoints, well-behaved or faulty."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any

from aiohttp import web

from services.simulator.appkeys import FLEET, RELEASE
from services.simulator.device import SimDevice
from services.simulator.faults import (
    FIELD_FAULTS,
    Fault,
    InvalidJsonFault,
    NotObjectFault,
    OversizedFault,
    SlowBodyFault,
    StatusFault,
    TimeoutFault,
    rewrite_fields,
)
from services.simulator.fleet import ASIC, INFO, Fleet
from services.simulator.payloads import dumps, info_payload

JSON = "application/json"
_PAD_KEY = b',"_padding":"'
_WRITE_CHUNK = 64 * 1024


def _device(request: web.Request) -> tuple[Fleet, SimDevice]:
    fleet = request.app[FLEET]
    device = fleet.lookup(request.match_info["name"])
    if device is None:
        raise web.HTTPNotFound(text="no such device\n")
    device.requests += 1
    return fleet, device


def _rebooting() -> web.Response:
    return web.Response(status=503, text="rebooting\n")


async def _released(request: web.Request, seconds: float) -> bool:
    """Wait up to `seconds`; True when the server is shutting down."""
    release = request.app[RELEASE]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(release.wait(), seconds)
    return release.is_set()


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _drop(request: web.Request) -> web.Response:
    # Nothing may reach the client: close the socket; aiohttp discards the response.
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=503)


async def _hold(request: web.Request) -> web.Response:
    """Never answer. Ends when the client disconnects (the server cancels the handler,
    or the poll below notices) or when the server stops."""
    while not _gone(request):
        if await _released(request, 1.0):
            break
    return _drop(request)


def padded(body: bytes, size: int) -> bytes:
    """`body` (a JSON object) grown to exactly `size` bytes with a `_padding` field."""
    room = size - len(body) - len(_PAD_KEY) - 1
    if room >= 0 and body != b"{}":
        return body[:-1] + _PAD_KEY + b"x" * room + b'"}'
    return b'{"_padding":"' + b"x" * max(0, size - 15) + b'"}'


async def _oversized(
    request: web.Request, device: SimDevice, endpoint: str, fault: OversizedFault, body: bytes
) -> web.StreamResponse:
    big = padded(body, fault.size)
    device.last_bodies[endpoint] = big
    if not fault.chunked:
        return web.Response(body=big, content_type=JSON)
    response = web.StreamResponse(headers={"Content-Type": JSON})
    response.enable_chunked_encoding()
    await response.prepare(request)
    view = memoryview(big)
    for start in range(0, len(big), _WRITE_CHUNK):
        await response.write(view[start : start + _WRITE_CHUNK])
    await response.write_eof()
    return response


async def _slow_body(
    request: web.Request, device: SimDevice, endpoint: str, fault: SlowBodyFault, body: bytes
) -> web.StreamResponse:
    device.last_bodies[endpoint] = body
    response = web.StreamResponse(headers={"Content-Type": JSON})
    # Announce the full length, so the client keeps waiting for the rest.
    response.content_length = len(body)
    await response.prepare(request)
    try:
        for start in range(0, len(body), fault.chunk):
            await response.write(body[start : start + fault.chunk])
            if await _released(request, fault.interval) or _gone(request):
                _drop(request)
                return response
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client gave up, which is the point of this fault
    return response


async def _invalid_json(
    request: web.Request, device: SimDevice, endpoint: str, fault: InvalidJsonFault, body: bytes
) -> web.StreamResponse:
    truncated = body[: len(body) // 2]
    device.last_bodies[endpoint] = truncated
    return web.Response(body=truncated, content_type=JSON)


async def _not_object(
    request: web.Request, device: SimDevice, endpoint: str, fault: NotObjectFault, body: bytes
) -> web.StreamResponse:
    other = dumps(fault.value)
    device.last_bodies[endpoint] = other
    return web.Response(body=other, content_type=JSON)


_BodyResponder = Callable[[web.Request, SimDevice, str, Any, bytes], Awaitable[web.StreamResponse]]
BODY_RESPONDERS: Mapping[type, _BodyResponder] = MappingProxyType(
    {
        OversizedFault: _oversized,
        SlowBodyFault: _slow_body,
        InvalidJsonFault: _invalid_json,
        NotObjectFault: _not_object,
    }
)


async def _serve(request: web.Request, endpoint: str) -> web.StreamResponse:
    fleet, device = _device(request)
    now = fleet.clock()
    if device.is_down(now):
        device.last_bodies[endpoint] = None
        return _rebooting()
    fault: Fault | None = device.fault
    override = device.override

    if fault is None and override is None:
        # The hot path: no faults, nothing pinned.
        body = dumps(info_payload(device, now, fleet.rng)) if endpoint == INFO else device.asic_body
        device.last_bodies[endpoint] = body
        return web.Response(body=body, content_type=JSON)

    if isinstance(fault, TimeoutFault):
        device.last_bodies[endpoint] = None
        return await _hold(request)
    if isinstance(fault, StatusFault):
        device.last_bodies[endpoint] = None
        return web.Response(status=fault.code, text=f"simulated HTTP {fault.code}\n")

    payload: dict[str, Any] = (
        info_payload(device, now, fleet.rng) if endpoint == INFO else json.loads(device.asic_body)
    )
    if override is not None:
        override.apply(payload, only_present=endpoint != INFO)
    if isinstance(fault, FIELD_FAULTS):
        rewrite_fields(payload, fault, info=endpoint == INFO)
    body = dumps(payload)
    responder = BODY_RESPONDERS.get(type(fault))
    if responder is not None:
        return await responder(request, device, endpoint, fault, body)
    device.last_bodies[endpoint] = body
    return web.Response(body=body, content_type=JSON)


async def system_info(request: web.Request) -> web.StreamResponse:
    return await _serve(request, INFO)


async def system_asic(request: web.Request) -> web.StreamResponse:
    return await _serve(request, ASIC)


async def system_restart(request: web.Request) -> web.Response:
    # Faults do not block a restart: tests use it to recover a device as well as to reset it.
    fleet, device = _device(request)
    if device.is_down(fleet.clock()):
        return _rebooting()
    fleet.reboot(device.name)
    return web.Response(text="System will restart shortly.")


def add_device_routes(app: web.Application) -> None:
    app.router.add_get("/d/{name}/api/system/info", system_info)
    app.router.add_get("/d/{name}/api/system/asic", system_asic)
    app.router.add_post("/d/{name}/api/system/restart", system_restart)
