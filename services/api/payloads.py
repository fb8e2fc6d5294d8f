"""Reading queries and bodies into models, and writing models out as JSON."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from services.api.appkeys import SETTINGS
from services.api.problems import Problem, loads_json, validation_problem

M = TypeVar("M", bound=BaseModel)


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string as `model`; 422 naming each bad parameter. A repeated parameter counts once."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise validation_problem(exc, "query") from None


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The JSON body as `model`: 413 over the size cap, 400 when not JSON, 422 when invalid."""
    limit = request.app[SETTINGS].max_body_bytes  # aiohttp enforces it too while reading
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "body_too_large", f"request body over {limit} bytes")
    data = loads_json(await request.read())
    if not isinstance(data, dict):
        raise Problem(422, "validation_error", "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc, "body") from None


def reply(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=model.model_dump_json(), content_type="application/json", headers=headers
    )


def reply_raw(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json")
