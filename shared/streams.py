"""The JetStream streams of the bus contract, declared in one place.

Stream configs are built fresh on each call: FastStream mutates the JStream
objects it is given, and tests run several brokers in one process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from faststream.nats import JStream
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from shared import subjects

log = logging.getLogger(__name__)

DEVICES = "PLUTO_DEVICES"
READINGS = "PLUTO_READINGS"
DASHBOARDS = "PLUTO_DASHBOARDS"


def stream_configs() -> list[StreamConfig]:
    return [
        StreamConfig(
            name=DEVICES,
            description="device registry: the last added/removed event of every device",
            subjects=[subjects.DEVICES_ALL],
            storage=StorageType.FILE,
            max_msgs_per_subject=1,
        ),
        StreamConfig(
            name=READINGS,
            description="the latest reading of every device, so consumers start complete",
            subjects=[subjects.READINGS_ALL],
            storage=StorageType.MEMORY,
            max_msgs_per_subject=1,
            max_age=3600.0,
        ),
        StreamConfig(
            name=DASHBOARDS,
            description="the published/unpublished state of every dashboard",
            subjects=[subjects.DASHBOARDS_ALL],
            storage=StorageType.FILE,
            max_msgs_per_subject=1,
        ),
    ]


def jstream(name: str) -> JStream:
    """A JStream handle for FastStream subscribers; declaration is ensure_streams' job."""
    return JStream(name=name, declare=False)


async def ensure_streams(js: JetStreamContext) -> None:
    """Create the streams, or bring an existing one's config up to date."""
    for config in stream_configs():
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config=config)
            log.info("created stream %s", config.name)
        else:
            await js.update_stream(config=config)


async def follow_last_per_subject(
    js: JetStreamContext,
    stream: str,
    subject: str,
    handle: Callable[[Msg], Awaitable[None]],
    caught_up: asyncio.Event,
) -> JetStreamContext.PushSubscription:
    """Replay the last message of every subject, in stream order, then follow live.

    An ordered consumer: every replica gets everything, no durable, no acks.
    `caught_up` is set once the replay has been handled: a message reports nothing
    pending, or the stream's last message at start (the last of its subject, so it
    is replayed) has been handled.
    """
    info = await js.stream_info(stream)
    last_seq = info.state.last_seq
    if not info.state.messages:
        caught_up.set()

    async def on_message(msg: Msg) -> None:
        await handle(msg)
        if not caught_up.is_set():
            meta = msg.metadata
            if meta.num_pending == 0 or meta.sequence.stream >= last_seq:
                caught_up.set()

    return await js.subscribe(
        subject,
        stream=stream,
        cb=on_message,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        pending_msgs_limit=-1,  # a replay of the whole fleet arrives at once
    )
