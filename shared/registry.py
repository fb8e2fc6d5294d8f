"""The device registry, read from PLUTO_DEVICES: publish events, or replay them into a set."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from shared import streams, subjects
from shared.events import BadMessage, decode_device_event
from shared.models import DeviceAdded, DeviceRemoved

log = logging.getLogger(__name__)


async def publish_added(js: JetStreamContext, device: DeviceAdded) -> None:
    """Store a registration; returns once the stream has it (so nothing is lost)."""
    await js.publish(
        subjects.device_added(device.id), device.model_dump_json().encode(), stream=streams.DEVICES
    )


async def publish_removed(js: JetStreamContext, device_id: str) -> None:
    event = DeviceRemoved(id=device_id, at=time.time())
    await js.publish(
        subjects.device_removed(device_id), event.model_dump_json().encode(), stream=streams.DEVICES
    )


DeviceEventHandler = Callable[[DeviceAdded | DeviceRemoved], None]


async def follow_registry(
    js: JetStreamContext, handle: DeviceEventHandler, caught_up: asyncio.Event | None = None
) -> JetStreamContext.PushSubscription:
    """Replay the registry (last event per device, in stream order), then follow it live.

    `caught_up` is set once the replay has been handled. A nats-py subscription
    rather than a FastStream subscriber: replaying 7,500 devices took 4.5 s through
    FastStream's per-message pipeline and 0.4 s this way.
    """

    async def on_message(msg: Msg) -> None:
        try:
            event = decode_device_event(msg.subject, msg.data)
        except BadMessage as exc:
            log.warning("ignoring device event: %s", exc)
        else:
            handle(event)

    return await streams.follow_last_per_subject(
        js,
        streams.DEVICES,
        subjects.DEVICES_ALL,
        on_message,
        caught_up if caught_up is not None else asyncio.Event(),
    )


async def read_registry(js: JetStreamContext, timeout: float = 10.0) -> dict[str, DeviceAdded]:
    """The current device set, once: the registry replayed, applied in stream order."""
    devices: dict[str, DeviceAdded] = {}

    def apply(event: DeviceAdded | DeviceRemoved) -> None:
        if isinstance(event, DeviceAdded):
            devices[event.id] = event
        else:
            devices.pop(event.id, None)

    caught_up = asyncio.Event()
    subscription = await follow_registry(js, apply, caught_up)
    try:
        await asyncio.wait_for(caught_up.wait(), timeout)
    finally:
        await subscription.unsubscribe()
    return devices
