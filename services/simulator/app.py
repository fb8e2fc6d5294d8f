"""The application factory: device endpoints under /d/<name>, control under /control."""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.simulator.appkeys import FLEET, RELEASE
from services.simulator.control_api import create_control_app
from services.simulator.fleet import Fleet
from services.simulator.responses import add_device_routes


async def _release_held_requests(app: web.Application) -> None:
    app[RELEASE].set()


def create_app(fleet: Fleet) -> web.Application:
    app = web.Application()
    app[FLEET] = fleet
    app[RELEASE] = asyncio.Event()
    add_device_routes(app)
    app.add_subapp("/control", create_control_app())
    app.on_shutdown.append(_release_held_requests)
    return app
