"""The poller service: device events in, readings out.

Story: the registry (PLUTO_DEVICES) is replayed, last event per device, by an
ordered consumer that then stays live; every added device gets a polling loop,
every removed one loses it; every poll publishes one reading on
`pluto.readings.<id>` (core publish: the stream captures it, no ack wait).
"""

from __future__ import annotations

import logging
import random

from faststream import FastStream
from faststream.nats import DeliverPolicy, NatsBroker, NatsMessage

from services.poller.client import make_session
from services.poller.polling import DevicePoller
from services.poller.scheduler import Cadence, Scheduler, Target
from services.poller.settings import PollerSettings
from shared import streams, subjects
from shared.bus import make_broker, prepare_bus
from shared.events import BadMessage, decode_device_event
from shared.models import DeviceAdded, DeviceReading

log = logging.getLogger(__name__)


class PollerService:
    """What the poller holds while it runs: the HTTP session, the loops, the broker."""

    def __init__(self, settings: PollerSettings, broker: NatsBroker, rng: random.Random | None = None):
        self.settings = settings
        self.broker = broker
        self._rng = rng
        self._readings_out = broker.publisher(
            "pluto.readings.{device_id}",
            schema=DeviceReading,
            title="pluto.readings.<id>",
            description="one reading (or error reading) per poll of a device",
        )
        self.scheduler: Scheduler | None = None
        self.poller: DevicePoller | None = None

    async def start(self) -> None:
        await prepare_bus(self.broker)
        session = make_session(self.settings.max_connections)
        self.poller = DevicePoller(session, self.settings, self._publish)
        self._session = session
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

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.close()
        if self.poller is not None:
            await self._session.close()

    async def _publish(self, reading: DeviceReading) -> None:
        await self._readings_out.publish(reading, subject=subjects.reading(reading.device_id))

    def on_device_event(self, subject: str, data: bytes) -> None:
        assert self.scheduler is not None and self.poller is not None, "service not started"
        try:
            event = decode_device_event(subject, data)
        except BadMessage as exc:
            log.warning("ignoring device event: %s", exc)
            return
        if isinstance(event, DeviceAdded):
            self.scheduler.upsert(Target(event.id, str(event.url)))
        else:
            self.scheduler.remove(event.id)
            self.poller.forget(event.id)


def create_app(settings: PollerSettings, rng: random.Random | None = None) -> FastStream:
    broker = make_broker(settings, name="poller")
    service = PollerService(settings, broker, rng)

    @broker.subscriber(
        subjects.DEVICES_ALL,
        stream=streams.jstream(streams.DEVICES),
        ordered_consumer=True,  # every replica needs the whole registry: no durable, no acks
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        title="pluto.devices.<id>.added|removed",
        description="the device registry, replayed on start, then live",
    )
    async def device_events(msg: NatsMessage) -> None:
        service.on_device_event(msg.raw_message.subject, msg.body)

    app = FastStream(broker, on_startup=[service.start], on_shutdown=[service.stop])
    app.context.set_global("poller", service)
    return app
