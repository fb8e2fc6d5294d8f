"""The device registry, read from PLUTO_DEVICES: publish events, or replay them into a set."""

from __future__ import annotations

import asyncio
import logging
import time

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
