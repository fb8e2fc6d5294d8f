"""The exporter service over a real nats-server: live readings, start-up replay, bad input, removal."""

from __future__ import annotations

import contextlib
import logging

import aiohttp
import pytest

from pluto.natsd import NatsServer, free_port
from services.exporter.ingest import shard_of
from services.exporter.settings import ExporterSettings
from tests.exporter_helpers import (  # noqa: F401 - the fixtures are used by name
    Bus,
    ExporterFactory,
    Samples,
    bus_fixture,
    error_reading,
    make_reading,
    names,
    nan_reading_json,
    scrape,
    start_exporter_fixture,
    value,
    wait_for,
)


async def test_readings_on_the_bus_appear_on_metrics(bus: Bus, start_exporter: ExporterFactory) -> None:
    app = await start_exporter()
    await bus.reading(make_reading("dev-a", hostname="bitaxe-a", power_watts=14.25))
    await bus.reading(make_reading("dev-b", hostname="bitaxe-b", power_watts=0.0))

    async def both() -> Samples | None:
        samples = await scrape(app)
        return samples if value(samples, "total_hardware") == 2 else None

    samples = await wait_for(both, what="two devices on /metrics")
    assert value(samples, "pluto_power_watts", device="dev-a", hostname="bitaxe-a") == 14.25
    assert value(samples, "pluto_power_watts", device="dev-b") == 0.0
    assert value(samples, "bitaxe__a_power_watts") == 14.25
    assert value(samples, "total_power_watts") == 14.25
    async with aiohttp.ClientSession() as session:
        async with session.get(app.metrics_url) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")


async def test_metrics_is_complete_at_start_from_the_streams(
    bus: Bus, start_exporter: ExporterFactory
) -> None:
    """Restart safety: what was published before the exporter started is there at once."""
    for i in range(50):
        await bus.reading(make_reading(f"dev-{i}", hashrate_ghs=100.0 + i))
    await bus.added("dev-7", hostname="seven")
    await bus.removed("dev-3")
    await bus.reading(make_reading("dev-3"))  # a poll that raced the removal

    app = await start_exporter()  # ready = replay done; nothing new is published after this
    samples = await scrape(app)
    assert value(samples, "total_hardware") == 49
    assert value(samples, "pluto_device_up", device="dev-3") is None
    assert value(samples, "total_hashrate") == pytest.approx(sum(100.0 + i for i in range(50)) - 103.0)
    assert value(samples, "pluto_hashrate_ghs", device="dev-42") == 142.0

    # A second exporter (a restart) sees the same fleet.
    again = await start_exporter()
    assert value(await scrape(again), "total_hashrate") == value(samples, "total_hashrate")
    # A big answer is compressed for a client that accepts it (Prometheus does).
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(again.metrics_url, headers={"Accept-Encoding": "gzip"}) as resp:
            assert resp.headers.get("Content-Encoding") == "gzip"


async def test_metrics_answers_503_and_says_why_until_nats_is_there(start_exporter: ExporterFactory) -> None:
    app = await start_exporter(wait_ready=False, nats_url=f"nats://127.0.0.1:{free_port()}")
    async with aiohttp.ClientSession() as session:
        async with session.get(app.metrics_url) as resp:
            assert resp.status == 503
            assert "connecting to NATS" in await resp.text()
        async with session.get(app.metrics_url.replace("/metrics", "/healthz")) as resp:
            health = await resp.json()
    assert health["ready"] is False and health["nats_connected"] is False


async def test_bad_messages_cost_no_other_device_and_are_logged_once(
    bus: Bus, start_exporter: ExporterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = await start_exporter()
    caplog.set_level(logging.WARNING, logger="services.exporter")
    await bus.reading(make_reading("good"))
    for _ in range(3):
        await bus.raw("pluto.readings.broken", b"{not json")
        await bus.raw("pluto.readings.schema", b'{"device_id": "schema", "ok": "perhaps"}')
        await bus.raw("pluto.readings.liar", make_reading("someone-else").model_dump_json().encode())
        await bus.raw("pluto.devices.x.added", b"[]")
    await bus.raw("pluto.readings.good2", nan_reading_json("good2", "power_watts"))
    await bus.reading(make_reading("good3"))

    async def settled() -> Samples | None:
        samples = await scrape(app)
        return samples if value(samples, "total_hardware") == 3 else None

    samples = await wait_for(settled, what="the three good devices")
    assert value(samples, "pluto_exporter_rejected_messages_total", reason="invalid_reading") == 6
    assert value(samples, "pluto_exporter_rejected_messages_total", reason="subject_mismatch") == 3
    assert value(samples, "pluto_exporter_rejected_messages_total", reason="invalid_device_event") == 3
    assert value(samples, "pluto_power_watts", device="good2") is None
    assert value(samples, "pluto_frequency_mhz", device="good2") == 525.0
    assert value(samples, "pluto_reading_invalid_fields_total", device="good2",
                 field="power_watts") == 1
    for subject in ("pluto.readings.broken", "pluto.readings.schema", "pluto.readings.liar",
                    "pluto.devices.x.added"):
        logged = [r for r in caplog.records if subject in r.getMessage()]
        assert len(logged) == 1, (subject, [r.getMessage() for r in logged])
    assert "device broken" in next(r.getMessage() for r in caplog.records
                                   if "pluto.readings.broken" in r.getMessage())


async def test_a_removed_device_leaves_metrics_at_the_next_scrape(
    bus: Bus, start_exporter: ExporterFactory
) -> None:
    app = await start_exporter()
    await bus.reading(make_reading("stay"))
    await bus.reading(make_reading("leave", hostname="leaver"))
    await wait_for(lambda: _device_count(app, 2), what="both devices")

    await bus.removed("leave")
    samples = await wait_for(lambda: _samples_when(app, "total_hardware", 1), what="removal")
    assert not [k for k in samples if ("device", "leave") in k[1]]
    assert "leaver_power_watts" not in names(samples)

    await bus.added("leave", hostname="leaver")  # added again: readings count again
    await bus.reading(make_reading("leave", hostname="leaver"))
    samples = await wait_for(lambda: _samples_when(app, "total_hardware", 2), what="re-added")
    assert value(samples, "leaver_power_watts") == 15.5


async def test_error_readings_show_as_poll_errors(bus: Bus, start_exporter: ExporterFactory) -> None:
    app = await start_exporter()
    await bus.reading(error_reading("never-answered"))
    samples = await wait_for(lambda: _samples_when(app, "total_hardware", 1), what="device")
    assert value(samples, "pluto_device_up", device="never-answered") == 0
    assert value(samples, "hardware_offline") == 1
    assert value(samples, "pluto_device_poll_errors_total", device="never-answered",
                 error="timeout") == 1


async def test_replicas_share_the_fleet_by_shard(bus: Bus, start_exporter: ExporterFactory) -> None:
    ids = [f"dev-{i}" for i in range(20)]
    for device_id in ids:
        await bus.reading(make_reading(device_id))
    apps = [await start_exporter(shard_index=i, shard_count=2) for i in range(2)]
    held = [{dict(k[1])["device"] for k in (await scrape(app)) if k[0] == "pluto_device_up"}
            for app in apps]
    assert held[0] | held[1] == set(ids)
    assert not held[0] & held[1]
    assert held[1] == {d for d in ids if shard_of(d, 2) == 1}


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUTO_NATS_URL", "nats://fleet:4222")
    monkeypatch.setenv("PLUTO_EXPORTER_PORT", "9999")
    monkeypatch.setenv("PLUTO_EXPORTER_POLL_INTERVAL", "10")
    monkeypatch.setenv("PLUTO_EXPORTER_PER_HOST_NAMES", "false")
    settings = ExporterSettings()
    assert settings.nats_servers == ["nats://fleet:4222"]
    assert settings.port == 9999
    assert settings.offline_after == 30.0
    assert settings.per_host_names is False
    monkeypatch.delenv("PLUTO_EXPORTER_POLL_INTERVAL")
    monkeypatch.setenv("PLUTO_POLLER_INTERVAL_S", "2")  # the poller's cadence, if not set here
    assert ExporterSettings().offline_after == 6.0
    assert ExporterSettings(poll_interval=1).offline_after == 3.0
    monkeypatch.setenv("PLUTO_EXPORTER_NATS_URL", "nats://mine:4222")
    assert ExporterSettings().nats_url == "nats://mine:4222"
    with pytest.raises(ValueError):
        ExporterSettings(shard_index=2, shard_count=2)


async def test_the_exporter_rides_out_a_nats_restart(
    bus: Bus, start_exporter: ExporterFactory, nats_server: NatsServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="services.exporter")
    app = await start_exporter()
    await bus.reading(make_reading("before", power_watts=1.0))
    await wait_for(lambda: _device_count(app, 1), what="the first device")

    nats_server.kill()
    await nats_server.start()  # same port, same store: the registry survives, readings do not
    samples = await scrape(app)  # still serving what it holds
    assert value(samples, "pluto_power_watts", device="before") == 1.0

    await bus.nc.flush()  # the test's own client reconnects too
    await wait_for(lambda: _publish_and_see(bus, app), timeout=20, what="readings after reconnect")
    await wait_for(lambda: _logged(caplog, "replayed"), what="the replay after reconnecting")
    assert not [r for r in caplog.records if "replay after reconnect failed" in r.getMessage()]


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return sum(text in r.getMessage() for r in caplog.records) >= 2  # at start, after reconnect


async def _publish_and_see(bus: Bus, app) -> bool:  # type: ignore[no-untyped-def]
    with contextlib.suppress(Exception):  # the bus may still be reconnecting
        await bus.nc.publish("pluto.readings.after", make_reading("after").model_dump_json().encode())
    return value(await scrape(app), "pluto_device_up", device="after") == 1


async def _device_count(app, n: int) -> bool:  # type: ignore[no-untyped-def]
    return value(await scrape(app), "total_hardware") == n


async def _samples_when(app, name: str, expected: float):  # type: ignore[no-untyped-def]
    samples = await scrape(app)
    return samples if value(samples, name) == expected else None
