"""The one path parameter: a device id, validated before anything looks it up."""

from __future__ import annotations

from aiohttp import web

from services.api.openapi import PathParam
from services.api.problems import FieldError, Problem
from shared.ids import DEVICE_ID_MAX_LENGTH, DEVICE_ID_PATTERN, is_device_id

DEVICE_ID = PathParam(
    "device_id",
    "device id: 1-32 characters of a-z, 0-9, '-' and '_', starting and ending with a letter or digit",
    {"type": "string", "pattern": DEVICE_ID_PATTERN},
)


def device_id_param(request: web.Request) -> str:
    device_id = request.match_info["device_id"]
    if not is_device_id(device_id):
        raise Problem(
            422,
            "validation_error",
            f"invalid device id: use 1-{DEVICE_ID_MAX_LENGTH} characters of a-z, 0-9, '-' and '_', "
            "starting and ending with a letter or digit",
            errors=[FieldError(location="path.device_id", message="not a device id")],
        )
    return device_id
