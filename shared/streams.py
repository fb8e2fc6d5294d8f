"""The JetStream streams of the bus contract, declared in one place.

Stream configs are built fresh on each call: FastStream mutates the JStream
objects it is given, and tests run several brokers in one process.
"""

from __future__ import annotations

import logging

from faststream.nats import JStream
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
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
