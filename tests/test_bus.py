from __future__ import annotations

import time

import pytest
from nats.js.api import StorageType
from pydantic import ValidationError

from shared import subjects
from shared.bus import jetstream
from shared.ids import InvalidDeviceId, device_id_from_mac, device_id_from_url, validate_device_id
from shared.models import DeviceAdded
from shared.streams import DEVICES, READINGS


async def test_streams_are_declared_with_contract_settings(broker) -> None:
    js = jetstream(broker)
    devices = await js.stream_info(DEVICES)
    readings = await js.stream_info(READINGS)
    assert devices.config.subjects == [subjects.DEVICES_ALL]
    assert devices.config.max_msgs_per_subject == 1
    assert StorageType(readings.config.storage) == StorageType.MEMORY
    assert readings.config.max_msgs_per_subject == 1


@pytest.mark.parametrize(
    "bad",
    ["", "A", "a.b", "a*b", "a>b", "../x", "a b", "-a", "a-", "x" * 33, "é", "overview.json", "_overview"],
)
def test_invalid_device_ids_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidDeviceId):
        validate_device_id(bad)
    with pytest.raises(InvalidDeviceId):
        subjects.reading(bad)


def test_ids_from_mac_and_url_are_stable_and_valid() -> None:
    assert device_id_from_mac("AA:BB:CC:DD:EE:FF") == "aabbccddeeff"
    assert device_id_from_mac("not a mac") is None
    a = device_id_from_url("http://192.168.1.5")
    assert a == device_id_from_url("http://192.168.1.5")
    assert a != device_id_from_url("http://192.168.1.5:81")
    assert validate_device_id(device_id_from_url("http://" + "h" * 300 + "/../x"))


def test_device_added_rejects_credentials_and_bad_ids() -> None:
    with pytest.raises(ValidationError):
        DeviceAdded(id="ok", url="http://u:p@host/", at=time.time())
    with pytest.raises(ValidationError):
        DeviceAdded(id="../etc", url="http://host/", at=time.time())
    with pytest.raises(ValidationError):
        DeviceAdded(id="ok", url="file:///etc/passwd", at=time.time())


def test_asyncapi_documents_every_subject_with_its_payload() -> None:
    import json

    from pluto.contract import asyncapi_json

    spec = json.loads(asyncapi_json())
    assert spec["asyncapi"].startswith("3.")
    channels = {c["address"] for c in spec["channels"].values()}
    assert channels == {
        "pluto.devices.{id}.added",
        "pluto.devices.{id}.removed",
        "pluto.readings.{id}",
        "pluto.dashboards.{id}.published",
        "pluto.dashboards.{id}.unpublished",
    }
    schemas = spec["components"]["schemas"]
    assert {"DeviceAdded", "DeviceRemoved", "DeviceReading", "DashboardState"} <= set(schemas)
    assert "power_watts" in schemas["DeviceReading"]["properties"]
