"""Subject names and the JetStream streams that hold them.

| subject                              | stream           | kept                          |
|--------------------------------------|------------------|-------------------------------|
| pluto.devices.<id>.added / .removed  | PLUTO_DEVICES    | file, last message per subject|
| pluto.readings.<id>                  | PLUTO_READINGS   | memory, last per subject, 1 h |
| pluto.dashboards.<id>.published / …  | PLUTO_DASHBOARDS | file, last message per subject|

The device registry is PLUTO_DEVICES itself: replaying the last message of
every subject in stream order gives the current device set (a re-added
device's `added` is newer than its `removed`), so no service keeps a database.
"""

from __future__ import annotations

from shared.ids import validate_device_id

DEVICES_ALL = "pluto.devices.>"
READINGS_ALL = "pluto.readings.*"
DASHBOARDS_ALL = "pluto.dashboards.>"

# The overview dashboard's slot in the dashboards subjects; not a valid device id.
OVERVIEW_KEY = "_overview"


def device_added(device_id: str) -> str:
    return f"pluto.devices.{validate_device_id(device_id)}.added"


def device_removed(device_id: str) -> str:
    return f"pluto.devices.{validate_device_id(device_id)}.removed"


def reading(device_id: str) -> str:
    return f"pluto.readings.{validate_device_id(device_id)}"


def dashboard_event(key: str, kind: str) -> str:
    if key != OVERVIEW_KEY:
        validate_device_id(key)
    if kind not in ("published", "unpublished"):
        raise ValueError(f"unknown dashboard event kind {kind!r}")
    return f"pluto.dashboards.{key}.{kind}"


def device_id_of(subject: str) -> str:
    """`pluto.devices.<id>.added` / `pluto.readings.<id>` -> `<id>` (validated)."""
    parts = subject.split(".")
    if len(parts) < 3 or parts[0] != "pluto":
        raise ValueError(f"not a pluto subject: {subject!r}")
    return validate_device_id(parts[2])
