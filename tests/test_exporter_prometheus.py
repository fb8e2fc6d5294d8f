"""A real Prometheus scraping the real exporter over real NATS, with deploy/prometheus' config.

Readings are published on the bus as the poller publishes them (the contract);
Prometheus must then answer every family, per-host name and overview name,
and `sum(...)` / `avg(...)` over them, with the values the devices served.
Without the `prometheus` / `promtool` binaries these tests skip, except under
CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from pluto.prometheusd import PrometheusProcess
from services.exporter import families as fam
from services.exporter.app import ExporterApp
from services.exporter.prometheus_config import render_prometheus_config, render_recording_rules
from shared.models import DeviceReading
from tests.exporter_helpers import (  # noqa: F401 - the fixtures are used by name
    Bus,
    ExporterFactory,
    PrometheusFactory,
    bus_fixture,
    make_reading,
    nan_reading_json,
    prometheus_for_fixture,
    require_binary,
    scalar,
    scrape,
    start_exporter_fixture,
    until,
    value,
    values,
)

ROOT = Path(__file__).resolve().parents[1]
def expected_measures(reading: DeviceReading) -> dict[str, float]:
    out = {m.name: getattr(reading, m.attr) for m in fam.MEASURES}
    return {name: v for name, v in out.items() if v is not None}


# --- the names and the values -------------------------------------------------------------


async def test_prometheus_answers_every_family_and_name_with_the_served_values(
    bus: Bus, start_exporter: ExporterFactory, prometheus_for: PrometheusFactory
) -> None:
    readings = [
        make_reading("alpha", hostname="alpha", hashrate_ghs=3050.5, power_watts=61.25,
                     stratum_url="solo.ckpool.org", stratum_port=3333, shares_accepted=15_000,
                     shares_rejected=40),
        # A stalled miner: zero is a value, not a gap.
        make_reading("beta", hostname="beta.local", hashrate_ghs=0.0, hashrate_1m_ghs=0.0,
                     power_watts=12.0, fan_percent=0.0, fan_rpm=0.0, shares_rejected=0,
                     efficiency_jth=None, firmware_version="v2.4.1"),
        # Legacy firmware: fewer fields; the absent ones stay absent.
        make_reading("gamma", hostname="gamma", firmware="legacy", hashrate_ghs=750.0,
                     hashrate_1m_ghs=None, hashrate_10m_ghs=None, hashrate_1h_ghs=None,
                     hashrate_1d_ghs=None, expected_hashrate_ghs=None, error_percentage=None,
                     vr_temp_celsius=None, fan2_rpm=None, power_watts=15.5,
                     stratum_url="umbrel.local", stratum_port=2018),
    ]
    for reading in readings:
        await bus.reading(reading)
    app = await start_exporter()
    prometheus = await prometheus_for(app)
    await until(prometheus, "total_hardware", 3, "the recording rules to see 3 devices")
    await until(prometheus, "count(pluto_device_up)", 3)
    assert await scalar(prometheus, 'up{job="pluto-exporter"}') == 1

    # Every labelled family, per device; no value where the device sent none.
    for m in fam.MEASURES:
        got = await values(prometheus, m.name)
        served = {r.device_id: expected_measures(r).get(m.name) for r in readings}
        if m.attr == "efficiency_jth":  # derived where absent, undefined at 0 GH/s
            served["beta"] = None
        assert got == pytest.approx({d: v for d, v in served.items() if v is not None}), m.name
    for c in fam.COUNTS:
        got = await values(prometheus, c.name)
        assert got == {r.device_id: getattr(r, c.attr) for r in readings}, c.name
    assert await values(prometheus, fam.DEVICE_UP) == {"alpha": 1, "beta": 1, "gamma": 1}
    assert await values(prometheus, fam.DEVICE_REBOOTS) == {"alpha": 0, "beta": 0, "gamma": 0}
    assert set(await values(prometheus, fam.DEVICE_LAST_SUCCESS)) == {"alpha", "beta", "gamma"}
    info = await prometheus.query(f'{fam.DEVICE_INFO}{{device="gamma"}}')
    assert info[0]["metric"] | {"firmware_version": "v2.5.0", "asic_model": "BM1370",
                                "board_version": "601", "firmware": "legacy",
                                "pool": "Public Pool Local", "hostname": "gamma"} == info[0]["metric"]

    # The reference's per-host names.
    prefixes = app.collector.prefixes()
    assert prefixes == {"alpha": "alpha", "beta": "beta__local", "gamma": "gamma"}
    for r in readings:
        by_suffix = {m.host_suffix: getattr(r, m.attr) for m in fam.MEASURES if m.host_suffix}
        by_suffix |= {c.host_suffix: getattr(r, c.attr) for c in fam.COUNTS if c.host_suffix}
        if r.device_id == "beta":
            by_suffix["_efficiency"] = None
        for suffix, served in by_suffix.items():
            answer = await scalar(prometheus, f"{prefixes[r.device_id]}{suffix}")
            assert answer == (pytest.approx(served) if served is not None else None), suffix

    # The overview, from the recording rules; the exporter's own copy is dropped at scrape.
    hashrates = [3050.5, 0.0, 750.0]
    power = 61.25 + 12.0 + 15.5
    assert await scalar(prometheus, "hardware_online") == 3
    assert await scalar(prometheus, "hardware_offline") == 0
    assert await scalar(prometheus, "total_hashrate") == pytest.approx(sum(hashrates))
    assert await scalar(prometheus, "average_hashrate") == pytest.approx(sum(hashrates) / 3)
    assert await scalar(prometheus, "total_power_watts") == pytest.approx(power)
    assert await scalar(prometheus, "total_efficiency") == pytest.approx(power / sum(hashrates) * 1000)
    versions = await prometheus.query("firmware_version_distribution")
    assert {r["metric"]["version"]: float(r["value"][1]) for r in versions} == {"v2.5.0": 2, "v2.4.1": 1}
    pools = await prometheus.query("shares_by_pool_accepted")
    assert {r["metric"]["pool"]: float(r["value"][1]) for r in pools} == {
        "CKPool Main": 15_000, "Ocean Main": 12_345, "Public Pool Local": 12_345}
    rejected = await prometheus.query("shares_by_pool_rejected")
    assert {r["metric"]["pool"]: float(r["value"][1]) for r in rejected} == {
        "CKPool Main": 40, "Ocean Main": 0, "Public Pool Local": 12}
    assert await prometheus.query('total_hashrate{job="pluto-exporter"}') == []

    # The aggregations the reference's dashboards run.
    assert await scalar(prometheus, "sum(pluto_hashrate_ghs)") == pytest.approx(sum(hashrates))
    assert await scalar(prometheus, "avg(pluto_hashrate_ghs)") == pytest.approx(sum(hashrates) / 3)
    assert await scalar(prometheus, "sum(alpha_power_watts)") == 61.25
    assert await scalar(prometheus, "avg(gamma_hashrate_ghs)") == 750.0
    assert await scalar(prometheus, "sum(total_hashrate)") == pytest.approx(sum(hashrates))
    assert await scalar(prometheus, "avg(average_hashrate)") == pytest.approx(sum(hashrates) / 3)
    # The exporter's own overview (what a Prometheus without the rules sees) agrees.
    assert app.collector.overview
    own = await app_overview(app)
    assert own["total_hashrate"] == pytest.approx(sum(hashrates))
    assert own["total_efficiency"] == pytest.approx(power / sum(hashrates) * 1000)


async def app_overview(app: ExporterApp) -> dict[str, float | None]:
    samples = await scrape(app)
    return {name: value(samples, name) for name in ("total_hashrate", "total_efficiency")}


# --- what changes: offline, removal, reboot, bad fields, hostnames --------------------------


async def test_a_silent_device_turns_offline_and_leaves_the_totals_in_prometheus(
    bus: Bus, start_exporter: ExporterFactory, prometheus_for: PrometheusFactory
) -> None:
    app = await start_exporter(poll_interval=0.2, offline_after_polls=3)  # offline after 0.6 s
    prometheus = await prometheus_for(app)
    await bus.reading(make_reading("silent", hashrate_ghs=700.0, power_watts=14.0))

    async def poll_steady() -> None:  # a device that keeps answering, like the poller would
        while True:
            await bus.reading(make_reading("steady", hashrate_ghs=3000.0, power_watts=60.0))
            await asyncio.sleep(0.1)

    steady = asyncio.create_task(poll_steady())
    try:
        await until(prometheus, "hardware_offline", 1, "the silent device to turn offline")
        await until(prometheus, "total_hashrate", 3000.0)
        assert await scalar(prometheus, "hardware_online") == 1
        assert await scalar(prometheus, "total_hardware") == 2
        assert await scalar(prometheus, "total_power_watts") == 60.0
        assert await values(prometheus, fam.DEVICE_UP) == {"silent": 0, "steady": 1}
        assert "silent" not in await values(prometheus, "pluto_hashrate_ghs")  # no stale value
        assert await scalar(prometheus, "host__silent_hashrate_ghs") is None
    finally:
        steady.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await steady


async def test_removal_reboot_bad_fields_and_hostile_hostnames_in_prometheus(
    bus: Bus, start_exporter: ExporterFactory, prometheus_for: PrometheusFactory
) -> None:
    hostnames = {"d1": "1miner", "d2": "miner-1", "d3": "miner.1", "d4": "pluto",
                 "d5": 'q"uote\\', "d6": "bitaxe", "d7": "bitaxe"}
    for i, (device_id, hostname) in enumerate(hostnames.items()):
        await bus.added(device_id, hostname=hostname, at=1_700_000_000 + i)
        await bus.reading(make_reading(device_id, hostname=hostname, power_watts=10.0 + i,
                                       shares_accepted=1000, uptime_seconds=500))
    app = await start_exporter()
    prometheus = await prometheus_for(app)
    await until(prometheus, "total_hardware", 7)
    assert await scalar(prometheus, 'up{job="pluto-exporter"}') == 1  # the scrape parses

    prefixes = app.collector.prefixes()
    assert prefixes["d1"] == "_1miner" and prefixes["d6"] == "bitaxe"
    assert len(set(prefixes.values())) == 7
    for i, device_id in enumerate(hostnames):
        assert await scalar(prometheus, f"{prefixes[device_id]}_power_watts") == 10.0 + i

    # Removal: the device's series end at the next scrape.
    await bus.removed("d7")
    await until(prometheus, "total_hardware", 6, "the removal")
    await until(prometheus, 'count(pluto_power_watts{device="d7"})', None, "d7's series to go")
    assert await scalar(prometheus, f"{prefixes['d7']}_power_watts") is None

    # Reboot: counts restart on the device, the counter in Prometheus does not go down.
    await bus.reading(make_reading("d6", hostname="bitaxe", shares_accepted=7, uptime_seconds=3))
    await until(prometheus, 'pluto_shares_accepted_total{device="d6"}', 1007)
    assert await scalar(prometheus, 'resets(pluto_shares_accepted_total{device="d6"}[1m])') == 0
    assert await scalar(prometheus, 'pluto_device_reboots_total{device="d6"}') == 1
    assert await scalar(prometheus, "bitaxe_shares_accepted") == 1007

    # A NaN field: dropped alone, counted; the scrape stays valid.
    await bus.raw("pluto.readings.d2", nan_reading_json("d2", "asic_temp_celsius"))
    await until(prometheus, 'pluto_reading_invalid_fields_total{device="d2"}', 1)
    assert await scalar(prometheus, 'pluto_asic_temperature_celsius{device="d2"}') is None
    assert await scalar(prometheus, 'pluto_power_watts{device="d2"}') == 15.5
    assert await scalar(prometheus, 'up{job="pluto-exporter"}') == 1

    # A hostname change: per-host names follow; the labelled series keep the device.
    await bus.reading(make_reading("d3", hostname="renamed", power_watts=33.0))
    await until(prometheus, "renamed_power_watts", 33.0, "the new per-host name")
    await until(prometheus, f"{prefixes['d3']}_power_watts", None, "the old per-host name to go")
    assert await values(prometheus, 'pluto_power_watts{hostname="renamed"}') == {"d3": 33.0}


# --- configuration ------------------------------------------------------------------------------


def test_deploy_files_are_the_rendered_configuration() -> None:
    deploy = ROOT / "deploy" / "prometheus"
    assert (deploy / "prometheus.yml").read_text() == render_prometheus_config(["exporter:9110"])
    assert (deploy / "rules" / "pluto-overview.yml").read_text() == render_recording_rules()
    assert "scrape_interval: 5s" in (deploy / "prometheus.yml").read_text()


async def _promtool(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        require_binary("promtool"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def test_promtool_accepts_the_config_and_the_rules(tmp_path: Path) -> None:
    deploy = ROOT / "deploy" / "prometheus"
    code, out = await _promtool("check", "config", str(deploy / "prometheus.yml"))
    assert code == 0, out
    code, out = await _promtool("check", "rules", str(deploy / "rules" / "pluto-overview.yml"))
    assert code == 0, out
    assert "10 rules found" in out
    # What PrometheusProcess writes for the embedded default is valid too.
    runner = PrometheusProcess(["127.0.0.1:9110", "127.0.0.1:9111"], workdir=tmp_path)
    code, out = await _promtool("check", "config", str(runner.write_config()))
    assert code == 0, out


def test_without_prometheus_ci_fails_and_elsewhere_skips(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_binary("prometheus")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require_binary("promtool")


async def test_prometheus_process_starts_reports_its_url_and_stops(tmp_path: Path) -> None:
    require_binary("prometheus")
    prometheus = PrometheusProcess(["127.0.0.1:1"])
    async with prometheus:
        assert prometheus.url.startswith("http://127.0.0.1:")
        assert await scalar(prometheus, "vector(42)") == 42
        workdir = prometheus.workdir
        assert (workdir / "prometheus.yml").exists()
    assert not prometheus.running
    assert not workdir.exists()  # a temp dir of its own, removed on stop
