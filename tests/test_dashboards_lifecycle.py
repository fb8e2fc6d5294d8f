"""The dashboards service end to end: real NATS, the Grafana double, files on disk.

Every wait is a condition polled against a deadline; no test asserts on timing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from services.dashboards import naming
from services.dashboards.grafana import GrafanaClient
from services.dashboards.render import TEMPLATES
from services.dashboards.tokens import access_token
from shared import streams
from shared.bus import jetstream
from shared.settings import BusSettings
from shared.subjects import OVERVIEW_KEY
from tests.grafana_double import GrafanaDouble
from tests.grafana_double.harness import SECRET, Fleet, Service, eventually, settings_for

SCAN = 0.2  # the double's provisioning interval in most tests (Grafana's default is 10 s)

StartService = Callable[..., Awaitable[Service]]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "grafana" / "dashboards"


@pytest.fixture
async def double(folder: Path) -> AsyncIterator[GrafanaDouble]:
    grafana = GrafanaDouble(folder, scan_interval=SCAN)
    await grafana.start()
    yield grafana
    await grafana.stop()


@pytest.fixture
async def fleet(bus_settings: BusSettings) -> AsyncIterator[Fleet]:
    watcher = await Fleet().start(bus_settings.nats_url)
    yield watcher
    await watcher.stop()


@pytest.fixture
async def start_service(
    bus_settings: BusSettings, double: GrafanaDouble, folder: Path
) -> AsyncIterator[StartService]:
    started: list[Service] = []

    async def start(**overrides: Any) -> Service:
        settings = settings_for(bus_settings.nats_url, double.url, folder, **overrides)
        service = await Service(settings).start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop()


@pytest.fixture
async def grafana(double: GrafanaDouble) -> AsyncIterator[GrafanaClient]:
    client = GrafanaClient(double.url, "admin", timeout=3)
    yield client
    await client.close()


def names_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def tops_in(root: Path) -> set[str]:
    """The top-level names under `root` of every file and folder, however deep."""
    return {p.relative_to(root).parts[0] for p in root.rglob("*")}


def token_of(uid: str) -> str:
    return access_token(SecretStr(SECRET), uid)


async def public_view(double: GrafanaDouble, token: str) -> tuple[int, dict[str, Any]]:
    """What an anonymous iframe gets (no auth header)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{double.url}/api/public/dashboards/{token}") as response:
            return response.status, await response.json(content_type=None)


async def serves(double: GrafanaDouble, token: str, title: str | None = None) -> bool:
    status, body = await public_view(double, token)
    return status == 200 and (title is None or body["dashboard"]["title"] == title)


def published_with(fleet: Fleet, key: str, **fields: Any) -> Callable[[], bool]:
    def check() -> bool:
        state = fleet.published(key)
        return state is not None and all(getattr(state, k) == v for k, v in fields.items())

    return check


async def test_full_lifecycle_add_update_remove_readd(
    start_service: StartService, fleet: Fleet, double: GrafanaDouble, folder: Path, grafana
) -> None:
    await start_service()
    overview = await eventually(lambda: fleet.published(OVERVIEW_KEY), what="overview published")
    assert overview.dashboard_uid == "pluto-overview"
    assert overview.public_path == f"/grafana/public-dashboards/{token_of('pluto-overview')}"
    assert await serves(double, token_of("pluto-overview"), naming.OVERVIEW_TITLE)

    # create
    await fleet.add("aabbccddeeff", "miner-1")
    state = await eventually(lambda: fleet.published("aabbccddeeff"), what="device published")
    uid = "pluto-d-aabbccddeeff"
    assert (state.dashboard_uid, state.title) == (uid, "miner-1")
    assert state.access_token == token_of(uid)
    assert state.public_path == f"/grafana/public-dashboards/{token_of(uid)}"
    assert json.loads((folder / f"{uid}.json").read_text())["title"] == "miner-1"
    assert await serves(double, token_of(uid), "miner-1")
    public = await grafana.get_public(uid)
    assert public is not None and public.isEnabled and state.public_uid == public.uid

    # update: new hostname, same URL
    await fleet.add("aabbccddeeff", "miner-renamed")
    await eventually(published_with(fleet, "aabbccddeeff", title="miner-renamed"), what="renamed")
    assert fleet.published("aabbccddeeff").public_path == state.public_path
    assert await serves(double, token_of(uid), "miner-renamed")

    # delete
    await fleet.remove("aabbccddeeff")
    gone = await eventually(lambda: fleet.unpublished("aabbccddeeff"), what="unpublished")
    assert gone.dashboard_uid == uid and gone.access_token is None
    assert not (folder / f"{uid}.json").exists()
    assert await grafana.get_public(uid) is None
    await eventually(lambda: uid not in double.db.dashboards, what="Grafana dropped it")
    assert (await public_view(double, token_of(uid)))[0] == 404

    # re-add: the same URL again
    await fleet.add("aabbccddeeff", "miner-1")
    again = await eventually(lambda: fleet.published("aabbccddeeff"), what="re-published")
    assert again.public_path == state.public_path
    assert await serves(double, token_of(uid), "miner-1")
    assert not double.provisioner.errors


async def test_removing_what_is_already_gone_is_a_success(start_service: StartService, fleet: Fleet) -> None:
    await start_service()
    await fleet.remove("never-seen")
    state = await eventually(lambda: fleet.unpublished("never-seen"), what="unpublished")
    assert state.dashboard_uid == "pluto-d-never-seen"


async def test_template_change_rewrites_every_file_and_keeps_urls(
    start_service: StartService, fleet: Fleet, double: GrafanaDouble, folder: Path, tmp_path: Path
) -> None:
    first = await start_service()
    for i in range(3):
        await fleet.add(f"dev{i}", f"miner-{i}")
    for i in range(3):
        await eventually(lambda i=i: fleet.published(f"dev{i}"), what=f"dev{i} published")
    paths = {i: fleet.published(f"dev{i}").public_path for i in range(3)}
    await first.stop()

    upgraded = tmp_path / "templates-v2"
    shutil.copytree(TEMPLATES, upgraded)
    for name in ("device.json.j2", "overview.json.j2"):
        path = upgraded / name
        path.write_text(path.read_text().replace('"now-1h"', '"now-6h"'))
    await start_service(templates_dir=upgraded)

    def upgraded_everywhere() -> bool:
        uids = [f"pluto-d-dev{i}" for i in range(3)] + ["pluto-overview"]
        return all(
            json.loads((folder / f"{uid}.json").read_text())["time"]["from"] == "now-6h"
            and uid in double.db.dashboards
            and double.db.dashboards[uid].data["time"]["from"] == "now-6h"
            for uid in uids
        )

    await eventually(upgraded_everywhere, what="files rewritten and reloaded")
    for i in range(3):
        assert await serves(double, token_of(f"pluto-d-dev{i}"), f"miner-{i}")
        assert fleet.published(f"dev{i}").public_path == paths[i]


async def test_grafana_down_then_up_loses_nothing(
    start_service: StartService,
    fleet: Fleet,
    double: GrafanaDouble,
    broker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="services.dashboards")
    service = await start_service()
    await eventually(lambda: fleet.published(OVERVIEW_KEY), what="overview published")
    js = jetstream(broker)
    before = (await js.consumer_info(streams.DEVICES, service.settings.durable)).delivered.consumer_seq
    await double.stop()
    await fleet.add("late", "late-miner")

    async def retried() -> bool:
        info = await js.consumer_info(streams.DEVICES, service.settings.durable)
        return info.num_redelivered == 1 and info.delivered.consumer_seq >= before + 3

    await eventually(retried, what="the event handed back and retried")
    assert fleet.published("late") is None
    assert service.app is not None  # still running
    await double.start()
    await eventually(lambda: fleet.published("late"), what="published once Grafana is back")
    assert await serves(double, token_of("pluto-d-late"), "late-miner")
    said = [r for r in caplog.records if "is not answering" in r.getMessage()]
    assert len(said) == 1, "the outage is said once"
    assert any("answers again" in r.getMessage() for r in caplog.records)

    async def settled() -> bool:
        info = await js.consumer_info(streams.DEVICES, service.settings.durable)
        return info.num_ack_pending == 0 and info.num_pending == 0

    await eventually(settled, what="every event acknowledged")


async def test_grafana_5xx_is_retried_until_it_works(
    start_service: StartService, fleet: Fleet, double: GrafanaDouble
) -> None:
    await start_service()
    await eventually(lambda: fleet.published(OVERVIEW_KEY), what="overview published")
    double.fail(500, path_contains="public-dashboards")
    await fleet.add("flaky", "flaky-miner")
    await eventually(
        lambda: sum("public-dashboards" in s.path and "pluto-d-flaky" in s.path for s in double.seen) > 3,
        what="publish attempts answered 500",
    )
    assert fleet.published("flaky") is None
    double.clear_faults()
    await eventually(lambda: fleet.published("flaky"), what="published after the faults")
    assert await serves(double, token_of("pluto-d-flaky"))


async def test_grafana_restarted_with_an_empty_database_is_repaired(
    start_service: StartService, fleet: Fleet, double: GrafanaDouble, grafana
) -> None:
    await start_service(reconcile_interval=0.3)
    await fleet.add("abc", "miner")
    state = await eventually(lambda: fleet.published("abc"), what="published")
    await double.restart(empty=True)
    assert await grafana.get_public("pluto-d-abc") is None
    await eventually(lambda: serves(double, token_of("pluto-d-abc"), "miner"), what="republished")
    await eventually(lambda: serves(double, token_of("pluto-overview")), what="overview republished")
    assert fleet.published("abc").public_path == state.public_path


async def test_reconcile_repairs_drift(
    start_service: StartService, fleet: Fleet, double: GrafanaDouble, folder: Path, grafana
) -> None:
    service = (await start_service()).service
    await eventually(lambda: service.passes >= 1, what="the start-up reconcile done")
    for device in ("keep", "lost-file", "lost-public", "foreign"):
        await fleet.add(device, device)
    for device in ("keep", "lost-file", "lost-public", "foreign"):
        await eventually(lambda d=device: fleet.published(d), what=f"{device} published")

    # a file deleted by hand
    (folder / "pluto-d-lost-file.json").unlink()
    # a public dashboard deleted by hand
    public = await grafana.get_public("pluto-d-lost-public")
    await grafana.delete_public("pluto-d-lost-public", public.uid)
    # republished by hand with another token
    public = await grafana.get_public("pluto-d-foreign")
    await grafana.delete_public("pluto-d-foreign", public.uid)
    await grafana.create_public("pluto-d-foreign", "f" * 32)
    # a dashboard whose device is gone (never registered here), published
    ghost = service.renderer.device("ghost", "ghost")
    (folder / "pluto-d-ghost.json").write_text(ghost.text)
    await grafana.reload_provisioning()
    await grafana.create_public("pluto-d-ghost", token_of("pluto-d-ghost"))

    report = await service.reconcile_now()
    assert report.repaired == {"lost-file", "lost-public", "foreign", "ghost"}, report.failed
    assert (folder / "pluto-d-lost-file.json").exists()
    for device in ("keep", "lost-file", "lost-public", "foreign"):
        assert await serves(double, token_of(f"pluto-d-{device}"), device)
    assert (await public_view(double, "f" * 32))[0] == 404
    assert not (folder / "pluto-d-ghost.json").exists()
    assert await grafana.get_public("pluto-d-ghost") is None
    assert fleet.unpublished("ghost") is not None
    assert (await service.reconcile_now()).repaired == set()  # nothing left to do


async def test_a_dashboard_deleted_with_its_file_leaves_no_orphan_public_dashboard(
    start_service: StartService, fleet: Fleet, double: GrafanaDouble, folder: Path, grafana
) -> None:
    service = (await start_service()).service
    await eventually(lambda: service.passes >= 1, what="the start-up reconcile done")
    await fleet.add("orphan", "orphan")
    await eventually(lambda: fleet.published("orphan"), what="published")
    # the registry loses the device and the file goes, as after a crash between two steps
    await service.registry._js.purge_stream(streams.DEVICES)  # type: ignore[union-attr]
    (folder / "pluto-d-orphan.json").unlink()
    await double.scan()  # Grafana < 11.5 keeps the public row of a deleted dashboard
    assert any(p.dashboard_uid == "pluto-d-orphan" for p in double.db.publics.values())
    await service.reconcile_now()
    assert not any(p.dashboard_uid == "pluto-d-orphan" for p in double.db.publics.values())


async def test_200_devices_added_at_once(
    start_service: StartService, fleet: Fleet, double: GrafanaDouble, folder: Path
) -> None:
    await start_service()
    ids = [f"bulk-{i:03d}" for i in range(200)]
    await asyncio.gather(*(fleet.add(d, f"bulk miner {i % 50}") for i, d in enumerate(ids)))
    await eventually(
        lambda: all(fleet.published(d) for d in ids), timeout=90, what="200 dashboards published"
    )
    titles = [fleet.published(d).title for d in ids]
    assert len({naming.title_key(t) for t in titles}) == 200
    assert len(names_in(folder)) == 201
    assert not double.provisioner.errors and not double.provisioner.write_revoked
    assert len(double.db.publics) == 201
    assert double.reloads < 200  # reloads are shared


HOSTILE = {
    "h-quote": 'evil"},{"uid":"pluto-overview',
    "h-path": "../../../../tmp/escape",
    "h-path2": "/etc/passwd",
    "overview": "overview",
    "h-overview": naming.OVERVIEW_TITLE,
    "h-jinja": "{{ 7*7 }}{% raw %}",
    "h-html": "</script><img src=x onerror=alert(1)>",
    "h-ctrl": "line\nbreak\x00\x1b[31m",
    "h-long": "L" * 256,
    "h-empty": "",
    "h-space": "   ",
    "h-dup1": "twin",
    "h-dup2": "twin",
    "h-dup3": "TWIN",
    "h-fake": "twin · h-dup1",
    "h-uni": "🚀 rig ünï",
    "h-null": None,
}


async def test_hostile_hostnames_stay_inside_the_folder_with_unique_titles(
    start_service: StartService, fleet: Fleet, double: GrafanaDouble, folder: Path, tmp_path: Path
) -> None:
    await start_service()
    for device, hostname in HOSTILE.items():
        await fleet.add(device, hostname)
    await eventually(lambda: all(fleet.published(d) for d in HOSTILE), what="every hostile device published")
    states = {d: fleet.published(d) for d in HOSTILE}
    assert len({naming.title_key(s.title) for s in states.values()} | {"pluto fleet overview"}) == (
        len(HOSTILE) + 1
    )
    assert len({s.dashboard_uid for s in states.values()}) == len(HOSTILE)
    expected = {f"pluto-d-{d}.json" for d in HOSTILE} | {"pluto-overview.json"}
    assert names_in(folder) == expected
    assert tops_in(tmp_path) <= {"grafana", "nats", "nats.log"}, tops_in(tmp_path)
    assert not double.provisioner.errors and not double.provisioner.write_revoked
    assert states["h-quote"].title == HOSTILE["h-quote"]
    assert states["overview"].dashboard_uid != "pluto-overview"
    for device in HOSTILE:
        assert await serves(double, token_of(f"pluto-d-{device}"), states[device].title)
    assert await serves(double, token_of("pluto-overview"), naming.OVERVIEW_TITLE)


async def test_without_reload_permission_it_waits_for_the_scan(
    start_service: StartService, fleet: Fleet, double: GrafanaDouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.dashboards")
    double.reload_permitted = False
    await start_service()
    await fleet.add("slow", "slow-miner")
    await fleet.add("slow2", "slow-miner-2")
    await eventually(lambda: fleet.published("slow") and fleet.published("slow2"), what="published")
    assert await serves(double, token_of("pluto-d-slow"), "slow-miner")
    assert double.reloads == 0
    refused = [r for r in caplog.records if "refused the provisioning reload" in r.getMessage()]
    assert len(refused) == 1


async def test_bad_events_are_logged_once_and_dropped(
    start_service: StartService, fleet: Fleet, broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.dashboards")
    service = await start_service()
    await fleet.publish_raw("pluto.devices.broken.added", b"{not json")
    await fleet.publish_raw(
        "pluto.devices.other.added", b'{"kind":"added","id":"mismatch","url":"http://x/","at":1}'
    )
    await fleet.add("fine", "fine")
    await eventually(lambda: fleet.published("fine"), what="good device published")
    js = jetstream(broker)

    async def settled() -> bool:
        info = await js.consumer_info(streams.DEVICES, service.settings.durable)
        return info.num_ack_pending == 0 and info.num_pending == 0

    await eventually(settled, what="bad events terminated, not redelivered")
    dropped = [r for r in caplog.records if "dropping device event" in r.getMessage()]
    assert len(dropped) == 2
    assert "pluto.devices.broken.added" in dropped[0].getMessage()


async def test_events_published_while_the_service_is_down_are_not_lost(
    start_service: StartService, fleet: Fleet, double: GrafanaDouble
) -> None:
    first = await start_service()
    await eventually(lambda: fleet.published(OVERVIEW_KEY), what="overview published")
    await first.stop()
    await fleet.add("while-down", "while-down")
    await start_service()
    await eventually(lambda: fleet.published("while-down"), what="published after restart")
    assert await serves(double, token_of("pluto-d-while-down"), "while-down")
