"""The bus contract as an AsyncAPI document, produced from the models in `shared/`."""

from __future__ import annotations

from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI

from shared.models import DashboardState, DeviceAdded, DeviceReading, DeviceRemoved
from shared.streams import stream_configs

_CHANNELS = (
    ("pluto.devices.{id}.added", DeviceAdded, "a device joined the fleet (stream PLUTO_DEVICES)"),
    ("pluto.devices.{id}.removed", DeviceRemoved, "a device left the fleet (stream PLUTO_DEVICES)"),
    ("pluto.readings.{id}", DeviceReading, "one reading per poll (stream PLUTO_READINGS)"),
    (
        "pluto.dashboards.{id}.published",
        DashboardState,
        "a dashboard is public (stream PLUTO_DASHBOARDS; id `_overview` for the fleet overview)",
    ),
    ("pluto.dashboards.{id}.unpublished", DashboardState, "a dashboard was withdrawn"),
)


def contract_broker() -> NatsBroker:
    """A broker that only describes: one publisher per subject of the contract."""
    broker = NatsBroker()
    for subject, model, description in _CHANNELS:
        broker.publisher(subject, schema=model, title=subject, description=description)
    return broker


def asyncapi_json() -> str:
    streams = "; ".join(
        f"{c.name}: {', '.join(c.subjects or [])}, {c.storage}, {c.max_msgs_per_subject} per subject"
        for c in stream_configs()
    )
    spec = AsyncAPI(
        contract_broker(),
        title="Pluto fleet telemetry bus",
        version="1.0.0",
        description=f"Subjects and payloads on NATS. Streams: {streams}.",
        schema_version="3.0.0",
    )
    return spec.to_specification().to_json()
