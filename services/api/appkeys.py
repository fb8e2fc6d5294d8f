"""Typed application state, shared by the route modules (no module-level mutable state)."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from faststream.nats import NatsBroker
from pydantic import SecretStr

from services.api.settings import ApiSettings
from services.api.views import Views

SETTINGS = web.AppKey("settings", ApiSettings)
VIEWS = web.AppKey("views", Views)
BROKER = web.AppKey("broker", NatsBroker)
# The operator token, or None: mutations refused.
TOKEN: web.AppKey[SecretStr | None] = web.AppKey("operator_token")
# Asks registering devices for their MAC (short timeout, capped body, no cookies).
PROBE_HTTP = web.AppKey("probe_http", aiohttp.ClientSession)
# Talks to Grafana for the /grafana/ proxy (only when it is configured).
PROXY_HTTP = web.AppKey("proxy_http", aiohttp.ClientSession)
# The OpenAPI document, built once from the route table.
OPENAPI = web.AppKey("openapi", bytes)
# The web page's files, read once at start: name -> (content type, body).
STATIC = web.AppKey("static", dict[str, tuple[str, bytes]])
