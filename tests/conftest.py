"""Fixtures shared by every test: the real nats-server, settings pointing at it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pluto.natsd import NatsServer
from shared.bus import connect
from shared.settings import BusSettings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    """A fresh nats-server with JetStream, on a free port, per test."""
    server = NatsServer(tmp_path / "nats", log_file=tmp_path / "nats.log")
    await server.start()
    yield server
    server.stop()


@pytest.fixture
def bus_settings(nats_server: NatsServer) -> BusSettings:
    return BusSettings(nats_url=nats_server.url)


@pytest.fixture
async def broker(bus_settings: BusSettings) -> AsyncIterator[object]:
    """A connected FastStream broker with the contract's streams declared."""
    b = await connect(bus_settings, name="test")
    yield b
    await b.stop()


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # aiohttp honours proxy variables only with trust_env; keep loopback traffic direct anyway.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    yield
