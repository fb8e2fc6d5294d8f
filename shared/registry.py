"""The device registry, read from PLUTO_DEVICES: publish events, or replay them into a set."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

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


async def read_registry(js: JetStreamContext, timeout: float = 10.0) -> dict[str, DeviceAdded]:
    """The current device set: the last event of every device, applied in stream order."""
    info = await js.stream_info(streams.DEVICES)
    if not info.state.messages:
        return {}
    devices: dict[str, DeviceAdded] = {}
    subscription = await js.subscribe(
        subjects.DEVICES_ALL, ordered_consumer=True, deliver_policy=DeliverPolicy.LAST_PER_SUBJECT
    )
    try:
        async with asyncio.timeout(timeout):
            while True:
                msg = await subscription.next_msg(timeout=timeout)
                try:
                    event = decode_device_event(msg.subject, msg.data)
                except BadMessage as exc:
                    log.warning("skipping registry entry: %s", exc)
                else:
                    if isinstance(event, DeviceAdded):
                        devices[event.id] = event
                    else:
                        devices.pop(event.id, None)
                if msg.metadata.num_pending == 0:
                    return devices
    finally:
        await subscription.unsubscribe()


DeviceEventHandler = Callable[[DeviceAdded | DeviceRemoved], None]


async def follow_registry(
    js: JetStreamContext, handle: DeviceEventHandler, caught_up: asyncio.Event | None = None
) -> JetStreamContext.PushSubscription:
    """Replay the registry (last event per device, in stream order), then follow it live.

    Every replica needs the whole registry, so this is an ordered consumer: no
    durable, no acks. `caught_up` is set once the replay has been handled. A nats-py
    subscription rather than a FastStream subscriber: replaying 7,500 devices took
    4.5 s through FastStream's per-message pipeline and 0.6 s here.
    """
    caught_up = caught_up if caught_up is not None else asyncio.Event()
    info = await js.stream_info(streams.DEVICES)
    if not info.state.messages:
        caught_up.set()

    async def on_message(msg: Msg) -> None:
        try:
            event = decode_device_event(msg.subject, msg.data)
        except BadMessage as exc:
            log.warning("ignoring device event: %s", exc)
        else:
            handle(event)
        if msg.metadata.num_pending == 0:
            caught_up.set()

    return await js.subscribe(
        subjects.DEVICES_ALL,
        cb=on_message,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        pending_msgs_limit=-1,  # a replay of the whole fleet arrives at once
    )
