"""The gateway without a network: folding readings, online/offline, the totals (the shared
fleet rules, shared/fleet.py, as the exporter applies them), and the views' handling of
removals, replays and bad messages."""

from __future__ import annotations

import asyncio
import math
import time
from typing import cast

import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from services.api import fleet
from services.api.views import Views
from shared.models import DashboardState, DeviceAdded, DeviceRemoved
from tests.api_helpers import reading


def _msg(subject: str, data: bytes) -> Msg:
    """A message as the views get it; they read its subject and data only, never reply."""
    return Msg(cast(NATS, None), subject=subject, data=data)


def _fold(track: fleet.DeviceTrack | None, **kwargs: object) -> fleet.DeviceTrack | None:
    value = reading("dev-a", **kwargs)  # type: ignore[arg-type]
    return fleet.fold(track, value, value.model_dump_json().encode(), time.time())


def test_fold_keeps_the_newest_and_the_last_good_reading() -> None:
    now = time.time()
    track = _fold(None, at=now - 10, hashrate_ghs=500.0, power_watts=10.0, hostname="alpha")
    assert track is not None and track.hashrate == 500.0 and track.efficiency == pytest.approx(20.0)
    assert _fold(track, at=now - 20, hashrate_ghs=1.0) is None  # older: ignored
    failed = _fold(track, ok=False, at=now - 5)
    assert failed is track and not track.latest_ok and track.last_error is not None
    assert track.last_error.error == "timeout" and track.last_error.at == pytest.approx(now - 5)
    assert track.hashrate == 500.0 and track.hostname == "alpha"  # the good reading's values stay
    assert track.last_ok is not None and track.last_ok.hashrate_ghs == 500.0
    assert track.latest.ok is False
    # A producer's clock ahead of ours counts as "now".
    ahead = _fold(None, at=now + 3600)
    assert ahead is not None and ahead.seen_at <= time.time()


def test_online_means_a_good_reading_within_offline_after() -> None:
    now = time.time()
    track = _fold(None, at=now - 10)
    assert fleet.is_online(track, now, 15) and not fleet.is_online(track, now, 5)
    assert not fleet.is_online(None, now, 15)
    failing = _fold(None, ok=False, at=now)
    assert not fleet.is_online(failing, now, 15)  # never a good reading


def test_values_follow_the_shared_fleet_rules() -> None:
    # The rules themselves are tested in test_fleet_rules.py; here, that fold applies them.
    legacy = _fold(None, hashrate_1m_ghs=321.0, power_watts=5.0)
    assert legacy is not None and legacy.hashrate == 321.0  # the 1-minute rate stands in
    assert legacy.efficiency == pytest.approx(5.0 / 0.321)
    absurd = _fold(
        None, hashrate_ghs=5e6, hashrate_1m_ghs=321.0, power_watts=20_000.0, efficiency_jth=math.nan
    )
    assert absurd is not None  # a reported but absurd current rate is dropped, as the exporter drops it
    assert absurd.hashrate is None and absurd.power is None and absurd.efficiency is None
    idle = _fold(None, hashrate_ghs=0.0, power_watts=3.0, firmware_version="")
    assert idle is not None and idle.hashrate == 0.0 and idle.efficiency is None  # zero is a value
    assert idle.firmware_version == "unknown"


def test_totals() -> None:
    now = time.time()
    tracks = [
        _fold(None, at=now, hashrate_ghs=1000.0, power_watts=15.0, firmware_version="v2"),
        _fold(None, at=now, hashrate_ghs=500.0, power_watts=10.0, firmware_version="v2"),
        _fold(None, at=now, power_watts=1.0),  # no hashrate: counts for power, not the average
        _fold(None, at=now - 100, hashrate_ghs=9999.0, power_watts=99.0, firmware_version="v1"),  # offline
        None,  # registered, never read
    ]
    totals = fleet.totals(tracks, now, 15)
    assert (totals.total_hardware, totals.hardware_online, totals.hardware_offline) == (5, 3, 2)
    assert totals.total_hashrate_ghs == 1500.0 and totals.average_hashrate_ghs == 750.0
    assert totals.total_power_watts == 26.0
    assert totals.total_efficiency_jth == pytest.approx(26.0 / 1.5)
    assert totals.firmware_versions == {"v2": 2, "unknown": 2, "v1": 1}
    idle = fleet.totals([_fold(None, at=now, hashrate_ghs=0.0, power_watts=2.0)], now, 15)
    assert idle.total_efficiency_jth is None and idle.average_hashrate_ghs == 0.0
    assert fleet.totals([], now, 15).total_hardware == 0


async def test_views_removals_and_replays() -> None:
    views = Views()
    now = time.time()
    added = DeviceAdded(id="dev-a", url="http://a.local/", at=now - 100)
    views.on_device_event(added)
    await views.on_reading(
        _msg("pluto.readings.dev-a", reading("dev-a", at=now - 50).model_dump_json().encode())
    )
    assert "dev-a" in views.tracks
    views.on_device_event(DeviceRemoved(id="dev-a", at=now - 40))
    assert "dev-a" not in views.tracks and "dev-a" not in views.devices
    # A poll under way at the removal is ignored...
    late = reading("dev-a", at=now - 39.99)
    late = late.model_copy(update={"poll_started_at": now - 41})
    await views.on_reading(_msg("pluto.readings.dev-a", late.model_dump_json().encode()))
    assert "dev-a" not in views.tracks
    # ...but after a replay, the reading of a device added again since may come before the events.
    replayed = Views()
    fresh = reading("dev-a", at=now, hashrate_ghs=7.0)
    await replayed.on_reading(_msg("pluto.readings.dev-a", fresh.model_dump_json().encode()))
    replayed.on_device_event(DeviceRemoved(id="dev-a", at=now - 40))
    replayed.on_device_event(DeviceAdded(id="dev-a", url="http://a.local/", at=now - 30))
    assert replayed.tracks["dev-a"].hashrate == 7.0 and "dev-a" in replayed.devices


async def test_views_reject_bad_messages_and_keep_the_newest_dashboard() -> None:
    views = Views()
    await views.on_reading(_msg("pluto.readings.dev-a", b"{"))
    await views.on_reading(_msg("pluto.readings.dev-a", reading("dev-b").model_dump_json().encode()))
    assert views.rejected == 2 and views.tracks == {}
    newer = DashboardState(kind="unpublished", device_id="dev-a", dashboard_uid="u", title="t", updated_at=20)
    older = DashboardState(
        kind="published", device_id="dev-a", dashboard_uid="u", title="t", updated_at=10, access_token="abc"
    )
    await views.on_dashboard(_msg("pluto.dashboards.dev-a.unpublished", newer.model_dump_json().encode()))
    await views.on_dashboard(_msg("pluto.dashboards.dev-a.published", older.model_dump_json().encode()))
    assert views.dashboard("dev-a") == newer
    await views.on_dashboard(_msg("pluto.dashboards.dev-a.published", newer.model_dump_json().encode()))
    await views.on_dashboard(_msg("pluto.dashboards.x.y.z", b"{}"))
    assert views.rejected == 4


async def test_wait_until_wakes_on_a_change_without_polling() -> None:
    views = Views()
    assert await views.wait_until(lambda: True, 0.01)
    assert not await views.wait_until(lambda: "dev-a" in views.devices, 0.01)
    waiter = asyncio.create_task(views.wait_until(lambda: "dev-a" in views.devices, 5))
    views.on_device_event(DeviceAdded(id="dev-a", url="http://a.local/", at=time.time()))
    assert await waiter
