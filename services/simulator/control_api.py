"""The control API under /control: inspect devices and make them misbehave.

| method | path | body / answer |
|---|---|---|
| GET | /control/devices | [DeviceSummary] |
| POST | /control/devices | {"count": k} -> the k new devices |
| GET, DELETE | /control/devices/{name} | one DeviceSummary / remove the device (404 after) |
| PUT, DELETE | /control/devices/{name}/fault | {"mode": ..., params} / clear |
| PUT, DELETE | /control/devices/{name}/override | {field: value, "_remove": [...]} / clear |
| PUT | /control/devices/{name}/options | {"omit_mac": bool} |
| POST | /control/devices/{name}/reboot | {"seconds": s} (optional) |
| GET | /control/devices/{name}/last | last body served, parsed (null if none or not JSON); ?endpoint=asic |
| GET | /control/stats | {name: requests served} |
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.simulator.appkeys import FLEET
from services.simulator.faults import FAULT_ADAPTER
from services.simulator.fleet import ASIC, INFO, Fleet, UnknownDevice
from services.simulator.payloads import dumps


class AddDevices(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, le=100_000)


class DeviceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    omit_mac: bool | None = None


class RebootRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float | None = Field(default=None, ge=0, le=3600)


def _json(data: Any, status: int = 200) -> web.Response:
    # dumps, not json_response: a last body may hold NaN, which the device really sent.
    return web.Response(body=dumps(data), status=status, content_type="application/json")


def _error(status: int, message: str, detail: Any = None) -> web.Response:
    return _json({"error": message, "detail": detail}, status=status)


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Bad input is the caller's problem (400/404 with a reason), never a 500."""
    try:
        return await handler(request)
    except UnknownDevice as exc:
        return _error(404, f"no such device: {exc.args[0]}")
    except ValidationError as exc:
        return _error(400, "invalid body", json.loads(exc.json(include_url=False)))
    except ValueError as exc:  # body is not JSON
        return _error(400, f"invalid body: {exc}")


def _fleet(request: web.Request) -> Fleet:
    return request.config_dict[FLEET]


async def _body(request: web.Request) -> Any:
    return await request.json() if request.can_read_body else {}


def _summary(request: web.Request) -> web.Response:
    return _json(_fleet(request).describe(request.match_info["name"]).model_dump(mode="json"))


async def list_devices(request: web.Request) -> web.Response:
    return _json([s.model_dump(mode="json") for s in _fleet(request).describe_all()])


async def add_devices(request: web.Request) -> web.Response:
    body = AddDevices.model_validate(await _body(request))
    fleet = _fleet(request)
    added = fleet.add(body.count)
    summaries = fleet.describe_all(d.name for d in added)
    return _json([s.model_dump(mode="json") for s in summaries], status=201)


async def get_device(request: web.Request) -> web.Response:
    return _summary(request)


async def remove_device(request: web.Request) -> web.Response:
    _fleet(request).remove(request.match_info["name"])
    return web.Response(status=204)


async def put_fault(request: web.Request) -> web.Response:
    fault = FAULT_ADAPTER.validate_python(await _body(request))
    _fleet(request).apply_fault(request.match_info["name"], fault)
    return _summary(request)


async def delete_fault(request: web.Request) -> web.Response:
    _fleet(request).clear_fault(request.match_info["name"])
    return _summary(request)


async def put_override(request: web.Request) -> web.Response:
    body = await _body(request)
    if not isinstance(body, dict):
        return _error(400, "override must be a JSON object")
    _fleet(request).set_override(request.match_info["name"], body)
    return _summary(request)


async def delete_override(request: web.Request) -> web.Response:
    _fleet(request).clear_override(request.match_info["name"])
    return _summary(request)


async def put_options(request: web.Request) -> web.Response:
    options = DeviceOptions.model_validate(await _body(request))
    if options.omit_mac is not None:
        _fleet(request).set_omit_mac(request.match_info["name"], options.omit_mac)
    return _summary(request)


async def post_reboot(request: web.Request) -> web.Response:
    body = RebootRequest.model_validate(await _body(request))
    _fleet(request).reboot(request.match_info["name"], body.seconds)
    return _summary(request)


async def last_body(request: web.Request) -> web.Response:
    endpoint = request.query.get("endpoint", INFO)
    if endpoint not in (INFO, ASIC):
        return _error(400, f"endpoint must be {INFO!r} or {ASIC!r}")
    return _json(_fleet(request).last_body(request.match_info["name"], endpoint))


async def stats(request: web.Request) -> web.Response:
    return _json(_fleet(request).stats())


def create_control_app() -> web.Application:
    """A sub-application, so its middleware never runs on the device hot path."""
    app = web.Application(middlewares=[errors])
    r = app.router
    r.add_get("/devices", list_devices)
    r.add_post("/devices", add_devices)
    r.add_get("/devices/{name}", get_device)
    r.add_delete("/devices/{name}", remove_device)
    r.add_put("/devices/{name}/fault", put_fault)
    r.add_delete("/devices/{name}/fault", delete_fault)
    r.add_put("/devices/{name}/override", put_override)
    r.add_delete("/devices/{name}/override", delete_override)
    r.add_put("/devices/{name}/options", put_options)
    r.add_post("/devices/{name}/reboot", post_reboot)
    r.add_get("/devices/{name}/last", last_body)
    r.add_get("/stats", stats)
    return app
