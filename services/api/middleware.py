"""Cross-cutting HTTP behaviour: CORS (configurable, off by default) and security headers."""

from __future__ import annotations

import logging

from aiohttp import web

from services.api.problems import Handler, Problem, problem_response
from services.api.proxy import MOUNT

log = logging.getLogger(__name__)

CORS_METHODS = "GET, POST, DELETE"
CORS_HEADERS = "Authorization, Content-Type"
PAGE_CSP = (
    "default-src 'self'; frame-src 'self'; frame-ancestors 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'"
)


def cors_middleware(origins: list[str]) -> web.middleware:  # type: ignore[valid-type]
    """Let the listed origins (or `*`) call the API from a browser; everyone else: same origin only."""
    allow_any = "*" in origins
    allowed = frozenset(origins)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not allowed or origin is None or request.path.startswith(MOUNT + "/"):
            return await handler(request)
        permitted = allow_any or origin.rstrip("/") in allowed
        granted = {"Access-Control-Allow-Origin": "*" if allow_any else origin, "Vary": "Origin"}
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not permitted:
                problem = Problem(403, "origin_not_allowed", f"origin {origin[:200]!r} may not call this API")
                log.info("OPTIONS %s -> 403 origin_not_allowed: %s", request.path[:200], origin[:200])
                return problem_response(request, problem)
            return web.Response(
                status=204,
                headers={
                    **granted,
                    "Access-Control-Allow-Methods": CORS_METHODS,
                    "Access-Control-Allow-Headers": CORS_HEADERS,
                    "Access-Control-Max-Age": "600",
                },
            )
        response = await handler(request)
        if permitted and not response.prepared:
            response.headers.update(granted)
            response.headers["Access-Control-Expose-Headers"] = "Location"
        return response

    return cors


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Set on every answer unless the handler chose its own (the proxy sets Grafana's)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    headers.setdefault("Content-Security-Policy", PAGE_CSP)
