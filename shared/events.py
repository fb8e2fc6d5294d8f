"""Decoding messages off the bus, with one clear error for anything malformed."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from shared import subjects
from shared.ids import InvalidDeviceId
from shared.models import DeviceAdded, DeviceEvent, DeviceRemoved

_DEVICE_EVENT: TypeAdapter[DeviceAdded | DeviceRemoved] = TypeAdapter(DeviceEvent)


class BadMessage(ValueError):
    """A message that does not follow the bus contract; say why, never crash."""


def _summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<body>'}: {err['msg']}" for err in exc.errors()
    )[:500]


def decode_device_event(subject: str, data: bytes) -> DeviceAdded | DeviceRemoved:
    """A device event whose subject and body agree on the device id and the kind."""
    try:
        subject_id = subjects.device_id_of(subject)
    except (ValueError, InvalidDeviceId) as exc:
        raise BadMessage(f"bad subject {subject!r}: {exc}") from None
    try:
        event = _DEVICE_EVENT.validate_json(data)
    except ValidationError as exc:
        raise BadMessage(f"bad device event on {subject}: {_summary(exc)}") from None
    if event.id != subject_id or not subject.endswith("." + event.kind):
        raise BadMessage(f"device event on {subject} is for {event.id!r}/{event.kind}")
    return event
