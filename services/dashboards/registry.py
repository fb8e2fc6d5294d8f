"""The desired state, read from the bus: the device registry and our own dashboard events.

PLUTO_DEVICES keeps the last `added`/`removed` message of every device; the
newest of a device's two subjects is its current state. One device is looked
up with a direct get (`last message on pluto.devices.<id>.*`); the whole fleet
is replayed with an ordered consumer (DeliverPolicy.LAST_PER_SUBJECT).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import TypeAdapter, ValidationError

from shared import streams, subjects
from shared.models import DashboardState, DeviceAdded, DeviceEvent, DeviceRemoved

log = logging.getLogger(__name__)

_EVENT = TypeAdapter[DeviceAdded | DeviceRemoved](DeviceEvent)
REPLAY_TIMEOUT = 10.0  # per message, only a guard against a vanished server


class BadEvent(ValueError):
    """A message on a device subject that is not a valid event for that device."""


@dataclass(frozen=True)
class Latest:
    """A device's current registry entry."""

    seq: int
    event: DeviceAdded | DeviceRemoved


def parse_event(subject: str, data: bytes) -> DeviceAdded | DeviceRemoved:
    """The event in a `pluto.devices.<id>.<kind>` message, checked against its subject."""
    try:
        device_id = subjects.device_id_of(subject)
        event = _EVENT.validate_json(data)
    except (ValueError, ValidationError) as exc:
        raise BadEvent(f"{subject}: {exc}") from exc
    if event.id != device_id or not subject.endswith("." + event.kind):
        raise BadEvent(f"{subject}: carries a {event.kind} event of device {event.id!r}")
    return event


class Registry:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def latest(self, device_id: str) -> Latest | None:
        """The device's newest event; None if it was never registered. BadEvent if unreadable."""
        try:
            msg = await self._js.get_last_msg(streams.DEVICES, f"pluto.devices.{device_id}.*")
        except NotFoundError:
            return None
        return Latest(seq=msg.seq or 0, event=parse_event(msg.subject or "", msg.data or b""))

    async def devices(self) -> dict[str, DeviceAdded]:
        """Every registered device (its newest event is `added`)."""
        newest: dict[str, tuple[int, DeviceAdded | DeviceRemoved]] = {}
        async for subject, seq, data in self._replay(streams.DEVICES, subjects.DEVICES_ALL):
            try:
                event = parse_event(subject, data)
            except BadEvent:
                continue  # the event handler says so once, with context
            if event.id not in newest or newest[event.id][0] < seq:
                newest[event.id] = (seq, event)
        return {
            device_id: event for device_id, (_, event) in newest.items() if isinstance(event, DeviceAdded)
        }

    async def dashboard_states(self) -> dict[str, DashboardState]:
        """Our own last published/unpublished event per dashboard key."""
        states: dict[str, tuple[int, DashboardState]] = {}
        async for subject, seq, data in self._replay(streams.DASHBOARDS, subjects.DASHBOARDS_ALL):
            parts = subject.split(".")
            if len(parts) != 4:
                continue
            try:
                state = DashboardState.model_validate_json(data)
            except ValidationError:
                continue
            known = states.get(parts[2])
            if state.kind == parts[3] and (known is None or known[0] < seq):
                states[parts[2]] = (seq, state)
        return {key: state for key, (_, state) in states.items()}

    async def _replay(self, stream: str, subject: str) -> AsyncIterator[tuple[str, int, bytes]]:
        info = await self._js.stream_info(stream)
        if not info.state.messages:
            return
        sub = await self._js.subscribe(
            subject, ordered_consumer=True, deliver_policy=DeliverPolicy.LAST_PER_SUBJECT
        )
        try:
            while True:
                msg = await sub.next_msg(timeout=REPLAY_TIMEOUT)
                meta = msg.metadata
                yield msg.subject, meta.sequence.stream, msg.data
                if meta.num_pending == 0:
                    return
        finally:
            await sub.unsubscribe()
