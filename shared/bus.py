"""One way to connect: FastStream's NatsBroker over nats-py, streams ensured on start."""

from __future__ import annotations

import logging

from faststream.nats import NatsBroker
from nats.js import JetStreamContext

from shared.settings import BusSettings
from shared.streams import ensure_streams


def make_broker(settings: BusSettings, *, name: str) -> NatsBroker:
    """A broker for service `name`. Call `prepare_bus` before its subscribers start."""
    return NatsBroker(
        settings.nats_servers,
        name=f"pluto-{name}",
        allow_reconnect=True,
        max_reconnect_attempts=-1,  # a service outlives a NATS restart
        reconnect_time_wait=1,
        connect_timeout=5,
        # FastStream logs two lines per message at this level: per-message detail is
        # for debugging, not for a fleet's steady stream of events.
        log_level=logging.DEBUG,
    )


def jetstream(broker: NatsBroker) -> JetStreamContext:
    return broker.config.connection_state.stream


async def prepare_bus(broker: NatsBroker) -> None:
    """Connect and make sure the contract's streams exist (idempotent).

    Subscribers bind to existing streams only, so this runs before they start.
    """
    await broker.connect()
    await ensure_streams(jetstream(broker))


async def connect(settings: BusSettings, *, name: str) -> NatsBroker:
    """A started broker with the streams in place (for the CLI and tests)."""
    broker = make_broker(settings, name=name)
    await prepare_bus(broker)
    await broker.start()
    return broker
