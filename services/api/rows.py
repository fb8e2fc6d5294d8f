"""The fleet table's rows: one device's summary, serialized once per change.

A page of the device list is a hundred rows out of thousands, asked for again
and again while each row changes only when its device reports (every few
seconds), its registration changes, or it goes offline. So each row's JSON,
made by the `DeviceSummary` model, is kept with the state it was made from and
made again only when that state changes; a page joins the kept rows.
"""

from __future__ import annotations

from typing import Any

from services.api import fleet
from services.api.models import DeviceList, DeviceSummary, LastError, Status
from services.api.views import Views
from shared.models import DeviceAdded


def last_error(track: fleet.DeviceTrack | None) -> LastError | None:
    if track is None or track.last_error is None:
        return None
    failed = track.last_error
    return LastError(error=failed.error, message=failed.message, at=failed.at)


def summary_fields(views: Views, device_id: str, now: float, offline_after: float) -> dict[str, Any]:
    """A device's row, as the fields of `DeviceSummary`. An offline device shows no measured value."""
    device = views.devices[device_id]
    track = views.tracks.get(device_id)
    online = fleet.is_online(track, now, offline_after)
    return {
        "id": device_id,
        "hostname": views.hostname(device_id),
        "url": str(device.url),
        "labels": device.labels,
        "status": Status.ONLINE if online else Status.OFFLINE,
        "failing": track is not None and not track.latest_ok,
        "hashrate_ghs": track.hashrate if online and track else None,
        "power_watts": track.power if online and track else None,
        "asic_temp_celsius": track.temperature if online and track else None,
        "efficiency_jth": track.efficiency if online and track else None,
        "firmware_version": track.firmware_version if track is not None else None,
        "last_seen_at": track.seen_at if track is not None else None,
        "last_ok_at": track.last_ok_at if track is not None else None,
        "last_error": last_error(track),
    }


_Key = tuple[DeviceAdded, float | None, bool]
_ITEMS = b'{"items":['  # how a DeviceList's JSON begins


class RowCache:
    def __init__(self) -> None:
        self._rows: dict[str, tuple[_Key, bytes]] = {}

    def row(self, views: Views, device_id: str, now: float, offline_after: float) -> bytes:
        track = views.tracks.get(device_id)
        key: _Key = (
            views.devices[device_id],
            track.latest_started if track is not None else None,
            fleet.is_online(track, now, offline_after),
        )
        held = self._rows.get(device_id)
        if held is not None and held[0][0] is key[0] and held[0][1:] == key[1:]:
            return held[1]
        body = (
            DeviceSummary(**summary_fields(views, device_id, now, offline_after)).model_dump_json().encode()
        )
        if len(self._rows) > 2 * len(views.devices) + 1000:  # devices came and went: start afresh
            self._rows.clear()
        self._rows[device_id] = (key, body)
        return body

    def page(
        self, views: Views, ids: list[str], now: float, offline_after: float, envelope: DeviceList
    ) -> bytes:
        """`envelope` (made without items) with the rows of `ids` put in: a DeviceList's JSON."""
        rows = b",".join(self.row(views, device_id, now, offline_after) for device_id in ids)
        empty = envelope.model_dump_json().encode()
        assert empty.startswith(_ITEMS) and not envelope.items
        return _ITEMS + rows + empty[len(_ITEMS) :]
