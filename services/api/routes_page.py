"""The built-in web page: three files, read once at start and served from memory.

Plain HTML, CSS and JavaScript (no build step, nothing fetched at run time);
the page polls the JSON API and embeds the public dashboards in an iframe.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services.api.appkeys import STATIC
from services.api.openapi import Reply, Route, problem
from services.api.problems import Problem

STATIC_DIR = Path(__file__).with_name("static")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def load_static(folder: Path = STATIC_DIR) -> dict[str, tuple[str, bytes]]:
    return {
        path.name: (_TYPES[path.suffix], path.read_bytes())
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix in _TYPES
    }


def _serve(request: web.Request, name: str) -> web.Response:
    found = request.app[STATIC].get(name)
    if found is None:
        raise Problem(404, "not_found", f"no file {name[:100]!r} here")
    content_type, body = found
    response = web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
    return response


async def index(request: web.Request) -> web.Response:
    return _serve(request, "index.html")


async def static_file(request: web.Request) -> web.Response:
    return _serve(request, request.match_info["name"])


def routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/",
            index,
            "The built-in web page: the fleet, live, with its dashboards",
            "page",
            {200: Reply("the page", media_type="text/html")},
        ),
        Route(
            "GET",
            "/static/{name}",
            static_file,
            "The page's script and style sheet",
            "page",
            {
                200: Reply("the file", media_type="text/javascript", also=("text/css", "image/svg+xml")),
                404: problem("no such file"),
            },
            path_params=(),
            extra={
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
            },
        ),
    ]
