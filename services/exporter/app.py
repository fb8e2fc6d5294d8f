"""The exporter: readings from NATS in, `/metrics` out.

Start-up, in order:
1. serve HTTP at once (`/metrics` answers 503 and says what it waits for);
2. connect to NATS (retrying until it is there) and subscribe to live readings
   and registry events;
3. replay the last reading of every device (PLUTO_READINGS) and the registry
   (PLUTO_DEVICES), so `/metrics` is complete before the first new poll;
4. ready: `/metrics` serves the fleet.
After a NATS reconnect the replay runs again, so nothing missed while
disconnected (a removal above all) stays missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Any

import nats
from aiohttp import web
from nats.aio.client import Client as NATS

from shared import subjects
from shared.streams import DEVICES, READINGS, ensure_streams

from .collector import FleetCollector
from .ingest import Ingest, replay_stream
from .routes import build_web_app
from .settings import ExporterSettings
from .state import FleetState

log = logging.getLogger(__name__)

# Live readings can arrive in bursts (a poller catching up): let the client buffer them.
_PENDING_MSGS = 1_000_000
_PENDING_BYTES = 512 * 1024 * 1024


class ExporterApp:
    def __init__(self, settings: ExporterSettings) -> None:
        self.settings = settings
        self.state = FleetState(
            offline_after=settings.offline_after, forget_after=settings.forget_after
        )
        self.ingest = Ingest(
            self.state, shard_index=settings.shard_index, shard_count=settings.shard_count
        )
        self.collector = FleetCollector(
            self.state,
            per_host_names=settings.per_host_names,
            overview=settings.overview,
            ready=lambda: self.ready,
        )
        self._web = build_web_app(
            self.collector, ready=lambda: self.ready, waiting_for=self._waiting_for,
            health=self.health,
        )
        self._runner: web.AppRunner | None = None
        self._nc: NATS | None = None
        self._bus_task: asyncio.Task[None] | None = None
        self._replays: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()
        self._phase = "connecting to NATS"
        self._last_error_log: dict[str, float] = {}
        self._stopping = False
        self.port: int | None = None

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Serve HTTP now; connect and replay in the background (see `wait_ready`)."""
        self._runner = web.AppRunner(self._web, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        log.info("exporter serving http://%s:%d/metrics", self.settings.host, self.port)
        self._bus_task = asyncio.create_task(self._run_bus(), name="exporter-bus")
        self._bus_task.add_done_callback(self._bus_task_done)

    async def wait_ready(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def stop(self) -> None:
        self._stopping = True
        for task in [self._bus_task, *self._replays]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.close()
        if self._runner is not None:
            await self._runner.cleanup()
        log.info("exporter stopped")

    def _bus_task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._phase = f"the bus connection failed: {task.exception()}"
            log.error("exporter bus task failed", exc_info=task.exception())

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def metrics_url(self) -> str:
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "::", "") else self.settings.host
        return f"http://{host}:{self.port}/metrics"

    # --- the bus ------------------------------------------------------------------

    async def _run_bus(self) -> None:
        self._nc = await nats.connect(
            self.settings.nats_servers,
            name="pluto-exporter",
            allow_reconnect=True,
            max_reconnect_attempts=-1,  # wait for NATS as long as it takes, saying so
            reconnect_time_wait=1,
            connect_timeout=5,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        log.info("connected to NATS at %s", self.settings.nats_url)
        js = self._nc.jetstream()
        try:
            await ensure_streams(js)
        except Exception as exc:  # JetStream off or not permitted: live readings still flow
            log.error("could not declare the streams (%s): is JetStream enabled?", exc)
        # Live first, replay second: nothing published in between is missed.
        await self._nc.subscribe(
            subjects.READINGS_ALL, cb=self.ingest.on_reading,
            pending_msgs_limit=_PENDING_MSGS, pending_bytes_limit=_PENDING_BYTES,
        )
        await self._nc.subscribe(subjects.DEVICES_ALL, cb=self.ingest.on_device_event)
        self._phase = "replaying the registry and the latest readings"
        try:
            await self._replay()
        except Exception as exc:  # e.g. JetStream disabled: live data still flows
            log.error("start-up replay failed (%s): serving live readings only", exc)
        self._phase = "ready"
        self._ready.set()
        log.info("exporter ready: %d devices after replay", len(self.state.devices))

    async def _replay(self) -> None:
        assert self._nc is not None
        js = self._nc.jetstream()
        started = time.perf_counter()
        timeout = self.settings.replay_timeout
        devices, readings = await asyncio.gather(
            replay_stream(js, stream=DEVICES, subject=subjects.DEVICES_ALL,
                          handler=self.ingest.on_device_event, timeout=timeout),
            replay_stream(js, stream=READINGS, subject=subjects.READINGS_ALL,
                          handler=self.ingest.on_reading, timeout=timeout),
        )
        log.info("replayed %d registry events and %d readings in %.2fs",
                 devices, readings, time.perf_counter() - started)

    async def _on_error(self, exc: Exception) -> None:
        # nats-py reports each failed connect attempt and each dropped message: say it
        # once per kind every 30 s, not thousands of times.
        kind = type(exc).__name__
        now = time.monotonic()
        if now - self._last_error_log.get(kind, -math.inf) < 30:
            return
        self._last_error_log[kind] = now
        if self._nc is None:
            log.warning("waiting for NATS at %s: %s (retrying every second)",
                        self.settings.nats_url, exc or kind)
        else:
            log.warning("NATS: %s: %s", kind, exc)

    async def _on_disconnected(self) -> None:
        if not self._stopping:
            log.warning("disconnected from NATS; /metrics keeps serving what it holds")

    async def _on_reconnected(self) -> None:
        log.info("reconnected to NATS: replaying what may have been missed")
        task = asyncio.create_task(self._replay_quietly())
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)

    async def _replay_quietly(self) -> None:
        try:
            assert self._nc is not None
            await ensure_streams(self._nc.jetstream())  # a restarted server lost the memory stream
            await self._replay()
        except Exception as exc:  # the live subscriptions carry on regardless
            log.warning("replay after reconnect failed: %s", exc)

    # --- status -------------------------------------------------------------------

    def _waiting_for(self) -> str:
        if self._bus_task is not None and self._bus_task.done():
            return self._phase
        if self._nc is None or not self._nc.is_connected:
            return f"connecting to NATS at {self.settings.nats_url}"
        return self._phase

    def health(self) -> dict[str, Any]:
        state = self.state
        return {
            "ready": self.ready,
            "phase": self._phase if self.ready else self._waiting_for(),
            "nats_connected": bool(self._nc is not None and self._nc.is_connected),
            "devices": len(state.devices),
            "readings_applied": state.readings_applied,
            "rejected": dict(state.rejected),
            "first_reading_at": state.first_reading_at,
            "last_reading_at": state.last_reading_at,
            "last_render_seconds": self.collector.last_render_seconds,
        }


def create_app(settings: ExporterSettings | None = None) -> ExporterApp:
    return ExporterApp(settings or ExporterSettings())
