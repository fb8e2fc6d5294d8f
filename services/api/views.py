"""The gateway's memory: the streams, replayed and then followed live.

Three ordered JetStream consumers on the broker's nats-py connection (no durable,
no acks: every replica needs everything), each replaying the last message of every
subject and then staying live:

- the registry (PLUTO_DEVICES) through `shared.registry.follow_registry`;
- readings (PLUTO_READINGS, thousands a second): each folded into the device's
  track (newest reading, newest good one, newest error);
- dashboard states (PLUTO_DASHBOARDS): the newest per dashboard.

A nats-py callback costs a few microseconds where FastStream's per-message
pipeline costs about half a millisecond. Every read of the API is answered from
here; nothing on a read path calls Grafana or a device. The views are caught up
once each replay has delivered what its stream held when the gateway started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from pydantic import ValidationError

from services.api.fleet import DeviceTrack, fold
from shared import streams, subjects
from shared.ids import InvalidDeviceId
from shared.models import DashboardState, DeviceAdded, DeviceReading, DeviceRemoved
from shared.registry import follow_registry

log = logging.getLogger(__name__)

_MAX_LOGGED_SUBJECTS = 1000  # bounds the log-once memory under a flood of bad messages


class Views:
    """The current device set, each device's readings and every dashboard's state."""

    def __init__(self) -> None:
        self.devices: dict[str, DeviceAdded] = {}
        self.tracks: dict[str, DeviceTrack] = {}
        self.dashboards: dict[str, DashboardState] = {}
        self.devices_caught_up = asyncio.Event()
        self.readings_caught_up = asyncio.Event()
        self.dashboards_caught_up = asyncio.Event()
        self.readings_applied = 0
        self.rejected = 0
        self.registry_version = 0  # bumps on every registry event
        self._removed: dict[str, float] = {}  # id -> when, for ids whose newest registry event is a removal
        self._order: list[str] | None = None  # ids sorted for display; None when stale
        self._haystacks: dict[str, str] = {}  # id -> lower-case text the `q` filter searches
        self._changed = asyncio.Event()  # set (and replaced) on every registry or dashboard change
        self._logged: set[str] = set()
        self._subscriptions: list[JetStreamContext.PushSubscription] = []

    # --- lifecycle ------------------------------------------------------------

    async def start(self, js: JetStreamContext) -> None:
        self._subscriptions = [
            await follow_registry(js, self.on_device_event, self.devices_caught_up),
            await streams.follow_last_per_subject(
                js, streams.READINGS, subjects.READINGS_ALL, self.on_reading, self.readings_caught_up
            ),
            await streams.follow_last_per_subject(
                js, streams.DASHBOARDS, subjects.DASHBOARDS_ALL, self.on_dashboard, self.dashboards_caught_up
            ),
        ]

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            with contextlib.suppress(NatsError, OSError):  # NATS may be gone: nothing to undo there
                await subscription.unsubscribe()
        self._subscriptions = []

    @property
    def caught_up(self) -> dict[str, bool]:
        return {
            "devices": self.devices_caught_up.is_set(),
            "readings": self.readings_caught_up.is_set(),
            "dashboards": self.dashboards_caught_up.is_set(),
        }

    # --- the registry -----------------------------------------------------------

    def on_device_event(self, event: DeviceAdded | DeviceRemoved) -> None:
        if isinstance(event, DeviceAdded):
            self.devices[event.id] = event
            self._removed.pop(event.id, None)
        else:
            self.devices.pop(event.id, None)
            self._removed[event.id] = event.at
            # Readings from before the removal go (late ones are ignored, below); on a replay,
            # readings of a device removed and added again since can arrive first: they stay.
            track = self.tracks.get(event.id)
            if track is not None and track.latest_started <= event.at:
                del self.tracks[event.id]
        self._order = None
        self.registry_version += 1
        self._notify()

    # --- readings ---------------------------------------------------------------

    async def on_reading(self, msg: Msg) -> None:
        try:
            device_id = subjects.device_id_of(msg.subject)
            reading = DeviceReading.model_validate_json(msg.data)
        except (ValueError, InvalidDeviceId, ValidationError) as exc:
            self._reject(msg.subject, exc)
            return
        if reading.device_id != device_id:
            self._reject(msg.subject, ValueError(f"reading is for device {reading.device_id!r}"))
            return
        removed_at = self._removed.get(device_id)
        if removed_at is not None and reading.poll_started_at <= removed_at:
            return  # a poll that was under way when the device was removed
        held = self.tracks.get(device_id)
        hostname = held.hostname if held is not None else None
        track = fold(held, reading, msg.data, time.time())
        if track is None:
            return
        self.tracks[device_id] = track
        self.readings_applied += 1
        if track.hostname != hostname:
            self._order = None  # the display name changed

    # --- dashboards ---------------------------------------------------------------

    async def on_dashboard(self, msg: Msg) -> None:
        parts = msg.subject.split(".")
        try:
            if len(parts) != 4:
                raise ValueError("expected pluto.dashboards.<key>.<kind>")
            key, kind = parts[2], parts[3]
            if msg.subject != subjects.dashboard_event(key, kind):
                raise ValueError("not a dashboard subject")
            state = DashboardState.model_validate_json(msg.data)
        except (ValueError, InvalidDeviceId, ValidationError) as exc:
            self._reject(msg.subject, exc)
            return
        if state.kind != kind:
            self._reject(msg.subject, ValueError(f"a {state.kind} state on a {kind} subject"))
            return
        held = self.dashboards.get(key)
        if held is None or state.updated_at >= held.updated_at:
            self.dashboards[key] = state
            self._notify()

    def dashboard(self, key: str) -> DashboardState | None:
        """The newest state of a dashboard, or None when none was ever announced."""
        return self.dashboards.get(key)

    # --- reading the views ---------------------------------------------------------

    def hostname(self, device_id: str) -> str | None:
        """What the device calls itself, else what it was registered as."""
        track = self.tracks.get(device_id)
        if track is not None and track.hostname:
            return track.hostname
        device = self.devices.get(device_id)
        return device.hostname if device is not None else None

    def ordered_ids(self) -> list[str]:
        """Registered device ids sorted by display name, then id (cached until something changes)."""
        if self._order is None:
            names = {device_id: (self.hostname(device_id) or device_id) for device_id in self.devices}
            self._order = sorted(self.devices, key=lambda i: (names[i].casefold(), i))
            self._haystacks = {
                device_id: "\n".join(
                    [device_id, names[device_id], str(device.url), *device.labels.values()]
                ).casefold()
                for device_id, device in self.devices.items()
            }
        return self._order

    def haystacks(self) -> dict[str, str]:
        """Device id -> the lower-case text the `q` filter searches (id, hostname, URL, labels)."""
        self.ordered_ids()
        return self._haystacks

    def find_url(self, url: str) -> str | None:
        """The id of the device registered with this URL (compared without a trailing slash)."""
        wanted = url.rstrip("/")
        for device_id, device in self.devices.items():
            if str(device.url).rstrip("/") == wanted:
                return device_id
        return None

    async def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait (without polling) until a registry or dashboard change makes `condition` true."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True

    # --- internals -------------------------------------------------------------------

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _reject(self, subject: str, exc: Exception) -> None:
        self.rejected += 1
        if subject in self._logged or len(self._logged) >= _MAX_LOGGED_SUBJECTS:
            return
        self._logged.add(subject)
        detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        log.warning("ignoring message on %s: %s (not logged again for this subject)", subject, detail)
