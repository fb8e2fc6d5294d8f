"""`/grafana/` reverse proxy: the page's iframes, same origin, with Grafana's auth proxy kept safe.

Grafana trusts `X-WEBAUTH-USER` from its whitelisted proxy, so this proxy decides
who is who (the reference forwarded client headers and let anyone be admin):

- every client-supplied auth-proxy header (`X-WEBAUTH-*`, the configured header
  name) and the client's `Authorization` are stripped, always;
- the anonymous public paths (`/grafana/public-dashboards/...`,
  `/grafana/api/public/...`, static assets under `/grafana/public/...`) never
  get the header: signing iframe viewers in would make every viewer admin;
- any other path gets `X-WEBAUTH-USER: <grafana_user>` only when the request
  carries the operator token; without it Grafana sees an anonymous request;
- cookies pass only for operator requests (an anonymous visitor never gets or
  sends a Grafana session through the gateway);
- answers may be framed by the gateway's own origin only
  (`X-Frame-Options: SAMEORIGIN`, CSP `frame-ancestors 'self'`).
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from services.api.appkeys import PROXY_HTTP, SETTINGS, TOKEN
from services.api.auth import is_operator
from services.api.openapi import Reply, Route, problem
from services.api.problems import Problem

log = logging.getLogger(__name__)

MOUNT = "/grafana"
PUBLIC_PREFIXES = (f"{MOUNT}/public-dashboards/", f"{MOUNT}/api/public/", f"{MOUNT}/public/")
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
FRAME_ANCESTORS = "frame-ancestors 'self'"


def make_session(limit: int = 256) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit),
        cookie_jar=aiohttp.DummyCookieJar(),  # cookies belong to the browser, never to the gateway
        auto_decompress=False,  # bytes pass through unchanged, Content-Encoding with them
    )


def is_public(path: str) -> bool:
    return path.startswith(PUBLIC_PREFIXES)


def _check_path(path: str) -> None:
    segments = path.split("/")
    if ".." in segments or "." in segments:
        raise Problem(400, "bad_path", "path segments '.' and '..' are not allowed")


def upstream_headers(request: web.Request, auth_header: str, user: str | None) -> CIMultiDict[str]:
    """The headers Grafana gets: the client's, minus anything that could claim an identity."""
    auth = auth_header.lower()
    operator = user is not None
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        low = name.lower()
        if (
            low in HOP_BY_HOP
            or low == "content-length"
            or low == auth
            or low.startswith("x-webauth-")
            or low == "authorization"
            or (low == "cookie" and not operator)
            or (low == "origin" and operator)  # a backend call; Grafana's CSRF check must not trip
            or low.startswith("x-forwarded-")
        ):
            continue
        headers.add(name, value)
    peer = request.remote or ""
    earlier = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{earlier}, {peer}" if earlier and peer else (earlier or peer)
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    if user is not None:
        headers[auth_header] = user
    return headers


def downstream_headers(upstream: aiohttp.ClientResponse, operator: bool) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.headers.items():
        low = name.lower()
        if low in HOP_BY_HOP or low == "x-frame-options" or (low == "set-cookie" and not operator):
            continue
        if low == "content-security-policy":
            kept = [
                d.strip()
                for d in value.split(";")
                if d.strip() and not d.strip().startswith("frame-ancestors")
            ]
            value = "; ".join([*kept, FRAME_ANCESTORS])
        headers.add(name, value)
    headers["X-Frame-Options"] = "SAMEORIGIN"
    headers.setdefault("Content-Security-Policy", FRAME_ANCESTORS)
    return headers


async def grafana_proxy(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    assert settings.grafana_url is not None, "the proxy is only routed when Grafana is configured"
    path = request.path
    _check_path(path)
    operator = is_operator(request, request.app[TOKEN])
    user = settings.grafana_user if operator and not is_public(path) else None
    rest = request.raw_path[len(MOUNT) :]
    target = URL(settings.grafana_url + rest, encoded=True)
    body = await request.read() if request.can_read_body else None
    headers = upstream_headers(request, settings.grafana_auth_header, user)
    timeout = aiohttp.ClientTimeout(
        total=settings.grafana_timeout, sock_connect=min(5.0, settings.grafana_timeout)
    )
    try:
        upstream = await request.app[PROXY_HTTP].request(
            request.method, target, headers=headers, data=body, allow_redirects=False, timeout=timeout
        )
    except TimeoutError:
        raise Problem(
            504, "grafana_timeout", f"Grafana did not answer within {settings.grafana_timeout:g}s"
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        log.warning("Grafana at %s is not reachable: %s", settings.grafana_url, type(exc).__name__)
        raise Problem(502, "grafana_unreachable", "Grafana is not reachable from the gateway") from None
    response = web.StreamResponse(
        status=upstream.status, reason=upstream.reason, headers=downstream_headers(upstream, operator)
    )
    try:
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
    except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
        # The answer has started: the only honest thing left is to cut the connection.
        log.warning("proxying %s from Grafana broke off: %s", path[:200], type(exc).__name__)
        if request.transport is not None:
            request.transport.close()
    finally:
        upstream.release()
    return response


PROXY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def routes() -> list[Route]:
    """One route per method, so the OpenAPI document lists exactly what is served."""
    answers = {
        400: problem("a '.' or '..' path segment"),
        413: problem("the body is too large"),
        502: problem("Grafana is not reachable"),
        504: problem("Grafana did not answer in time"),
    }
    return [
        Route(
            method,
            "/grafana/{path}",
            grafana_proxy,
            f"Grafana, proxied ({method})",
            "grafana",
            {0: Reply("whatever Grafana answers", media_type="*/*"), **answers},
            name=f"grafana_proxy_{method.lower()}",
            pattern="/grafana/{path:.*}",
            extra={
                "parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}]
            },
        )
        for method in PROXY_METHODS
    ]
