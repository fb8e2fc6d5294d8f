"""Errors as RFC 9457 problem details (`application/problem+json`), 4xx for every bad input.

Handlers raise `Problem`; the middleware turns it, aiohttp's own HTTP errors (404,
405, 413) and malformed input into one JSON shape, and logs each once with the
request's method, path and reason. Only a bug in the gateway itself answers 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FieldError(BaseModel):
    """One invalid value: where it is and what is wrong with it."""

    location: str = Field(description="`body`, `query` or `path`, then the field, dot-separated")
    message: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, plus a stable `code` to match on."""

    model_config = ConfigDict(extra="forbid")

    type: str = "about:blank"
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = Field(default=None, description="the request path")
    code: str = Field(description="machine-readable reason, e.g. `validation_error`")
    errors: list[FieldError] | None = None


class Problem(Exception):
    """Raise from a handler to answer with problem details."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.errors = errors
        self.headers = headers or {}


def validation_problem(exc: ValidationError, where: str) -> Problem:
    """A 422 naming every invalid field (values are never echoed: they may be secrets)."""
    errors = [
        FieldError(
            location=".".join([where, *(str(part) for part in err["loc"])]),
            message=err["msg"],
        )
        for err in exc.errors(include_url=False, include_input=False)
    ][:50]
    summary = "; ".join(f"{e.location}: {e.message}" for e in errors[:5])
    return Problem(422, "validation_error", f"invalid {where}: {summary}", errors=errors)


def problem_response(request: web.Request, problem: Problem) -> web.Response:
    body = ProblemDetails(
        title=HTTPStatus(problem.status).phrase,
        status=problem.status,
        detail=problem.detail,
        instance=request.path[:500],
        code=problem.code,
        errors=problem.errors,
    )
    return web.Response(
        status=problem.status,
        body=body.model_dump_json(exclude_none=True),
        content_type=PROBLEM_JSON,
        headers=problem.headers,
    )


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def _from_http_error(exc: web.HTTPException) -> Problem:
    status = exc.status
    code = _HTTP_CODES.get(status, "http_error")
    if status == 404:
        detail = "no such resource; the API is described at /openapi.json"
    elif status == 405:
        allowed = sorted(getattr(exc, "allowed_methods", ()) or ())
        detail = f"method not allowed here; allowed: {', '.join(allowed) or 'none'}"
    elif status == 413:
        detail = "request body too large"
    else:
        detail = exc.reason or HTTPStatus(status).phrase
    headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
    return Problem(status, code, detail, headers=headers)


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    problem: Problem
    try:
        return await handler(request)
    except Problem as exc:
        problem = exc
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like pass through
        problem = _from_http_error(exc)
    except json.JSONDecodeError as exc:
        problem = Problem(400, "invalid_json", f"request body is not valid JSON: {exc.msg} at {exc.pos}")
    except UnicodeDecodeError:
        problem = Problem(400, "invalid_json", "request body is not UTF-8")
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        problem = Problem(500, "internal_error", "the gateway failed; this is a bug, see its log")
    if problem.status < 500:
        log.info(
            "%s %s -> %d %s: %s",
            request.method,
            request.path[:200],
            problem.status,
            problem.code,
            problem.detail[:300],
        )
    return problem_response(request, problem)


def loads_json(body: bytes) -> Any:
    """Parse a request body; `Problem` (400) when it is not JSON."""
    if not body.strip():
        raise Problem(400, "invalid_json", "request body is empty; a JSON object is expected")
    return json.loads(body)
