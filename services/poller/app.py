"""The poller service: device events in, readings out.

Story: the registry (PLUTO_DEVICES) is replayed, last event per device, by an
ordered consumer that then stays live (`shared.registry.follow_registry`, a plain
nats-py subscription: 7x faster than a FastStream subscriber for a fleet-sized
replay); every added device gets a polling loop, every removed one loses it;
every poll publishes one reading on `pluto.readings.<id>` (core publishes,
batched per socket write: the stream captures them, no ack wait). `/healthz` and
`/readyz` (shared/health.py) say whether NATS is connected and the replay has
caught up.
"""

from __future__ import annotations

import asyncio
import logging
import random

import aiohttp
from faststream import FastStream
from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from services.poller.client import make_session
from services.poller.polling import DevicePoller, Target
from services.poller.publishing import BatchingPublisher
from services.poller.scheduler import Cadence, Scheduler
from services.poller.settings import PollerSettings
from shared.bus import jetstream, make_broker, prepare_bus
from shared.health import Health, HealthServer, nats_connected
from shared.models import DeviceAdded, DeviceRemoved
from shared.registry import follow_registry

log = logging.getLogger(__name__)


class PollerService:
    """What the poller holds while it runs: the HTTP session, the loops, the broker."""

    def __init__(self, settings: PollerSettings, broker: NatsBroker, rng: random.Random | None = None):
        self.settings = settings
        self.broker = broker
        self._rng = rng
        self.scheduler: Scheduler[Target] | None = None
        self.poller: DevicePoller | None = None
        self.registry_caught_up = asyncio.Event()
        self._registry: JetStreamContext.PushSubscription | None = None
        self._session: aiohttp.ClientSession | None = None
        self._publisher: BatchingPublisher | None = None
        self._stopping = False
        # For /healthz: counted where readings pass anyway, so a probe reads numbers only.
        self.readings_published = 0
        self.health_endpoint = HealthServer(
            "poller", self.health, host=settings.health_host, port=settings.health_port
        )

    async def start(self) -> None:
        await prepare_bus(self.broker)
        self._publisher = BatchingPublisher(self.broker.connection, self.settings.publish_window_s)
        self._session = make_session(self.settings.max_in_flight + self.settings.max_in_flight_failing)
        self.poller = DevicePoller(self._session, self.settings, self._publish)
        self.scheduler = Scheduler(
            self.poller.poll_once,
            Cadence(
                self.settings.interval_s,
                self.settings.jitter,
                self.settings.backoff_after,
                self.settings.backoff_max_s,
            ),
            self._rng,
        )
        self._registry = await follow_registry(
            jetstream(self.broker), self.on_device_event, self.registry_caught_up
        )

    async def stop(self) -> None:
        self._stopping = True
        if self._registry is not None:
            await self._registry.unsubscribe()
        if self.scheduler is not None:
            await self.scheduler.close()
        if self._session is not None:
            await self._session.close()
        if self._publisher is not None:
            await self._publisher.close()

    def _publish(self, subject: str, reading: bytes) -> None:
        # The hot path (thousands a second): core publishes on the broker's own nats-py
        # connection, batched per socket write; the stream captures them.
        assert self._publisher is not None, "service not started"
        self.readings_published += 1
        self._publisher.publish(subject, reading)

    def on_device_event(self, event: DeviceAdded | DeviceRemoved) -> None:
        assert self.scheduler is not None and self.poller is not None, "service not started"
        if isinstance(event, DeviceAdded):
            self.scheduler.upsert(Target.of(event.id, str(event.url)))
        else:
            self.scheduler.remove(event.id)
            self.poller.forget(event.id)

    def health(self) -> Health:
        """Ready once NATS is connected and the registry replay has been handled."""
        connected = nats_connected(self.broker)
        caught_up = self.registry_caught_up.is_set()
        facts = {
            "nats_connected": connected,
            "registry_caught_up": caught_up,
            "devices_polled": len(self.scheduler.device_ids) if self.scheduler is not None else 0,
            "failing_devices": self.poller.failing_devices if self.poller is not None else 0,
            "readings_published": self.readings_published,
        }
        if self._stopping:
            reason = "shutting down"
        elif not connected:
            reason = "NATS not connected"
        elif not caught_up:
            # Polling a partial registry is fine, but it is not yet the whole fleet.
            reason = "replaying the device registry"
        else:
            return Health(ready=True, facts=facts)
        return Health(ready=False, reason=reason, facts=facts)


def create_app(settings: PollerSettings, rng: random.Random | None = None) -> FastStream:
    broker = make_broker(settings, name="poller")
    service = PollerService(settings, broker, rng)

    # The endpoint starts first and stops last: /healthz answers (and /readyz says why
    # not) while NATS is still being reached, and until the very end.
    app = FastStream(
        broker,
        on_startup=[service.health_endpoint.start, service.start],
        on_shutdown=[service.stop],
        after_shutdown=[service.health_endpoint.stop],
    )
    app.context.set_global("poller", service)
    return app
