"""Typed application keys shared by the route modules."""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.simulator.fleet import Fleet

FLEET = web.AppKey("fleet", Fleet)
# Set when the server shuts down: handlers that hold a request open (timeout,
# slow_body) wait on it so that stopping never waits for them to time out.
RELEASE = web.AppKey("release", asyncio.Event)
