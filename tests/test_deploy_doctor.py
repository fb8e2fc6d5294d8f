"""`pluto doctor` against real parts: the nats-server (fixture), a real Prometheus
scraping a /metrics endpoint, and the Grafana test double (tests/grafana_double) with
the datasource endpoints added. Each failure case of docs/deploy.md's
troubleshooting section is produced and must show as a FAIL with its hint."""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
import yaml
from aiohttp import web

from pluto import doctor
from pluto.doctor import DoctorConfig, Report, run_doctor
from services.dashboards.render import Renderer
from shared import streams, subjects
from shared.models import DashboardState, DeviceAdded
from shared.registry import publish_added
from shared.streams import ensure_streams
from tests.deploy_grafana import GrafanaWithDatasource
from tests.deploy_helpers import free_port, prometheus_config, running_prometheus
from tests.grafana_double import GrafanaDouble
from tests.grafana_double.harness import eventually

DEAD_JOB = "pluto-dead-target"
DEVICE = "aabbccddee01"


def exporter_job() -> str:
    """The exporter's job name in this project's Prometheus config (else the doctor's default)."""
    path = prometheus_config()
    if path is None:
        return doctor.EXPORTER_JOB
    config = yaml.safe_load(path.read_text())
    jobs = [job["job_name"] for job in config.get("scrape_configs", [])]
    exporter = [j for j in jobs if "exporter" in j] or jobs
    return exporter[0]


@pytest.fixture
async def metrics_endpoint() -> AsyncIterator[str]:
    """Something Prometheus can scrape, standing in for the exporter."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text="pluto_up 1\n", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
def prometheus(metrics_endpoint: str, tmp_path: Path) -> Iterator[str]:
    config = (
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
        "scrape_configs:\n"
        f"  - job_name: {exporter_job()}\n    static_configs:\n      - targets: ['{metrics_endpoint}']\n"
        f"  - job_name: {DEAD_JOB}\n    static_configs:\n      - targets: ['127.0.0.1:{free_port()}']\n"
    )
    with running_prometheus(config, tmp_path / "prometheus") as url:
        yield url


async def targets_scraped(prometheus_url: str) -> bool:
    async with aiohttp.ClientSession() as http, http.get(prometheus_url + "/api/v1/targets") as resp:
        body = await resp.json()
    healths = {t["labels"]["job"]: t["health"] for t in body["data"]["activeTargets"]}
    return healths.get(exporter_job()) == "up" and healths.get(DEAD_JOB) == "down"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "dashboards"
    path.mkdir()
    overview = Renderer(doctor.DATASOURCE_UID).overview()
    (path / f"{overview.uid}.json").write_text(overview.text)
    return path


@pytest.fixture
async def grafana(folder: Path) -> AsyncIterator[GrafanaWithDatasource]:
    double = GrafanaWithDatasource(folder, scan_interval=0.2)
    await double.start()
    yield double
    await double.stop()


async def publish_everything(nats_url: str, grafana: GrafanaDouble) -> None:
    """What a working stack leaves behind: streams, a device, its states, a public overview."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        await ensure_streams(js)
        await publish_added(js, DeviceAdded(id=DEVICE, url="http://rig.local/", at=time.time()))
        for key in (DEVICE, subjects.OVERVIEW_KEY):
            state = DashboardState(
                kind="published", device_id=key, dashboard_uid="x", title="t", updated_at=1.0
            )
            await js.publish(subjects.dashboard_event(key, "published"), state.model_dump_json().encode())
        await js.add_consumer(streams.DEVICES, durable_name=doctor.DASHBOARDS_DURABLE, ack_policy="explicit")
        # Consume nothing: acknowledge the one event as the dashboards service would.
        sub = await js.pull_subscribe(
            subjects.DEVICES_ALL, durable=doctor.DASHBOARDS_DURABLE, stream=streams.DEVICES
        )
        for msg in await sub.fetch(1, timeout=5):
            await msg.ack_sync()
    finally:
        await client.close()
    headers = {"X-WEBAUTH-USER": "admin"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{grafana.url}/api/dashboards/uid/{doctor.OVERVIEW_UID}/public-dashboards",
            json={"isEnabled": True},
            headers=headers,
        ) as resp:
            assert resp.status == 200, await resp.text()


def config_for(nats_url: str, grafana: GrafanaDouble, folder: Path, **overrides: Any) -> DoctorConfig:
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "grafana_url": grafana.url,
        "dashboards_dir": folder,
        "exporter_job": exporter_job(),
        "timeout": 3.0,
        "skip": frozenset({"prometheus"}),
    }
    values.update(overrides)
    return DoctorConfig(**values)


def only(check: str, config: DoctorConfig) -> DoctorConfig:
    """The config with every part but `check` skipped."""
    config.skip = frozenset(set(doctor.CHECKS) - {check})
    return config


def statuses(report: Report) -> dict[str, str]:
    return {f.check: f.status for f in report.findings}


def finding(report: Report, check: str) -> doctor.Finding:
    return next(f for f in report.findings if f.check == check)


async def test_a_working_stack_passes_every_check(nats_server, grafana, folder, prometheus) -> None:
    await publish_everything(nats_server.url, grafana)
    await eventually(lambda: targets_scraped(prometheus), timeout=20, what="both targets scraped")
    out = io.StringIO()
    config = config_for(nats_server.url, grafana, folder, prometheus_url=prometheus, skip=frozenset())
    report = await run_doctor(config, out=out)
    text = out.getvalue()
    assert not report.failed, text
    assert statuses(report) == {
        "nats": "PASS",
        "streams": "PASS",
        "dashboards-published": "PASS",
        "dashboards-consumer": "PASS",
        "prometheus": "PASS",
        "exporter-target": "PASS",
        "folder": "PASS",
        "grafana": "PASS",
        "datasource": "PASS",
        "auth-proxy": "PASS",
        "public-dashboards": "PASS",
        "publish-permission": "PASS",
        "public-view": "PASS",
    }, text
    assert all(line.split(" ", 1)[0] in ("PASS", "FAIL", "WARN", "SKIP") for line in text.splitlines())

    # The exporter target down: the same Prometheus, a job whose target refuses connections.
    down = await run_doctor(
        only(
            "prometheus",
            config_for(nats_server.url, grafana, folder, prometheus_url=prometheus, exporter_job=DEAD_JOB),
        )
    )
    assert statuses(down) == {"prometheus": "PASS", "exporter-target": "FAIL", "nats": "SKIP",
                              "folder": "SKIP", "grafana": "SKIP"}  # fmt: skip
    assert "not up" in finding(down, "exporter-target").detail
    # A job Prometheus does not have: the scrape config is not this project's.
    missing = await run_doctor(
        only(
            "prometheus",
            config_for(nats_server.url, grafana, folder, prometheus_url=prometheus, exporter_job="nope"),
        )
    )
    assert "deploy/prometheus" in finding(missing, "exporter-target").hint


async def test_nats_down_and_streams_missing(nats_server, grafana, folder) -> None:
    dead = f"nats://127.0.0.1:{free_port()}"
    report = await run_doctor(only("nats", config_for(dead, grafana, folder)))
    assert statuses(report)["nats"] == "FAIL"
    assert statuses(report)["streams"] == "SKIP"
    assert "PLUTO_NATS_URL" in finding(report, "nats").hint

    report = await run_doctor(only("nats", config_for(nats_server.url, grafana, folder)))
    assert statuses(report)["nats"] == "PASS"
    streams_finding = finding(report, "streams")
    assert streams_finding.status == "FAIL"
    for name in (streams.DEVICES, streams.READINGS, streams.DASHBOARDS):
        assert name in streams_finding.detail


async def test_dashboards_not_appearing(nats_server, grafana, folder) -> None:
    """A registered device without a published dashboard, no consumer, an empty folder."""
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        await ensure_streams(js)
        await publish_added(js, DeviceAdded(id=DEVICE, url="http://rig.local/", at=time.time()))
    finally:
        await client.close()
    for path in folder.glob("*.json"):
        path.unlink()
    report = await run_doctor(
        config_for(nats_server.url, grafana, folder, skip=frozenset({"prometheus", "grafana"}))
    )
    assert finding(report, "dashboards-published").status == "WARN"
    assert DEVICE in finding(report, "dashboards-published").detail
    assert finding(report, "dashboards-consumer").status == "WARN"
    assert finding(report, "folder").status == "FAIL"
    assert "no dashboard files" in finding(report, "folder").detail

    (folder / "broken.json").write_text("{not json")
    report = await run_doctor(only("folder", config_for(nats_server.url, grafana, folder)))
    assert "broken.json" in finding(report, "folder").detail

    report = await run_doctor(only("folder", config_for(nats_server.url, grafana, folder / "absent")))
    assert "does not exist" in finding(report, "folder").detail

    # Grafana has not loaded the overview (the file is elsewhere): the dashboard check says so.
    await grafana.scan()
    report = await run_doctor(only("grafana", config_for(nats_server.url, grafana, folder)))
    assert finding(report, "dashboard-loaded").status == "FAIL"
    assert "/var/lib/grafana/dashboards" in finding(report, "dashboard-loaded").hint


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
async def test_folder_not_writable(nats_server, grafana, folder) -> None:
    folder.chmod(0o555)
    try:
        report = await run_doctor(only("folder", config_for(nats_server.url, grafana, folder)))
    finally:
        folder.chmod(0o755)
    assert "not writable" in finding(report, "folder").detail


async def test_authentication_failing(nats_server, grafana, folder) -> None:
    await grafana.scan()
    # The login does not arrive (not whitelisted, or another header name): 401.
    report = await run_doctor(
        only("grafana", config_for(nats_server.url, grafana, folder, grafana_auth_header="X-Other-User"))
    )
    assert finding(report, "auth-proxy").status == "FAIL"
    assert "whitelist" in finding(report, "auth-proxy").hint
    # Signed in, but a Viewer: reading works, publishing does not.
    report = await run_doctor(
        only("grafana", config_for(nats_server.url, grafana, folder, grafana_user="viewer"))
    )
    assert finding(report, "auth-proxy").status == "PASS"
    assert finding(report, "publish-permission").status == "FAIL"
    assert "org Admin" in finding(report, "publish-permission").hint
    # The sub-path left out of the URL: Grafana redirects.
    report = await run_doctor(
        only("grafana", config_for(nats_server.url, grafana, folder, grafana_url=grafana.root))
    )
    assert finding(report, "grafana").status == "FAIL"
    assert "sub-path" in finding(report, "grafana").hint


async def test_public_dashboard_not_accessible(nats_server, folder) -> None:
    disabled = GrafanaWithDatasource(folder, scan_interval=0.2, public_dashboards_enabled=False)
    await disabled.start()
    try:
        report = await run_doctor(only("grafana", config_for(nats_server.url, disabled, folder)))
    finally:
        await disabled.stop()
    assert finding(report, "public-dashboards").status == "FAIL"
    assert "[public_dashboards] enabled" in finding(report, "public-dashboards").hint

    grafana = GrafanaWithDatasource(folder, scan_interval=0.2)
    await grafana.start()
    try:
        report = await run_doctor(only("grafana", config_for(nats_server.url, grafana, folder)))
        assert finding(report, "public-view").status == "WARN"  # not published yet
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{grafana.url}/api/dashboards/uid/{doctor.OVERVIEW_UID}/public-dashboards",
                json={"isEnabled": False},
                headers={"X-WEBAUTH-USER": "admin"},
            ) as resp:
                assert resp.status == 200
        report = await run_doctor(only("grafana", config_for(nats_server.url, grafana, folder)))
        assert finding(report, "public-view").status == "FAIL"
        assert "paused" in finding(report, "public-view").detail
    finally:
        await grafana.stop()


async def test_datasource_not_connecting(nats_server, folder) -> None:
    grafana = GrafanaWithDatasource(folder, scan_interval=0.2, datasource_ok=False)
    await grafana.start()
    try:
        report = await run_doctor(only("grafana", config_for(nats_server.url, grafana, folder)))
        assert finding(report, "datasource").status == "FAIL"
        assert "PLUTO_PROMETHEUS_URL" in finding(report, "datasource").hint
        grafana.datasource["uid"] = "another-uid"
        report = await run_doctor(only("grafana", config_for(nats_server.url, grafana, folder)))
        assert "no datasource with uid" in finding(report, "datasource").detail
    finally:
        await grafana.stop()


def test_cli_registration_and_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="pluto")
    doctor.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["doctor", "--skip", "prometheus", "--grafana-url", "http://x:1/grafana"])
    assert args.func is doctor.cmd_doctor
    assert args.skip == ["prometheus"]

    dead = free_port()
    code = doctor.main(
        [
            "--nats-url", f"nats://127.0.0.1:{dead}", "--grafana-url", f"http://127.0.0.1:{dead}/grafana",
            "--dashboards-dir", str(tmp_path / "none"), "--skip", "prometheus", "--timeout", "2",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL nats:" in out and "FAIL grafana:" in out and "FAIL folder:" in out
    assert "check(s) failed" in out


def test_configuration_comes_from_the_services_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLUTO_NATS_URL", "nats://nats:4222")
    monkeypatch.setenv("PLUTO_DASHBOARDS_GRAFANA_URL", "http://pluto_grafana_1:3000/grafana")
    monkeypatch.setenv("PLUTO_DASHBOARDS_GRAFANA_USER", "ops")
    monkeypatch.setenv("PLUTO_DASHBOARDS_DASHBOARDS_DIR", "/srv/dash")
    monkeypatch.setenv("PLUTO_PROMETHEUS_URL", "http://pluto_prometheus_1:9090")
    config = DoctorConfig.from_env()
    assert config.nats_url == "nats://nats:4222"
    assert config.grafana_url == "http://pluto_grafana_1:3000/grafana"
    assert config.grafana_user == "ops"
    assert config.dashboards_dir == Path("/srv/dash")
    assert config.prometheus_url == "http://pluto_prometheus_1:9090"
    json.dumps(config.__dict__, default=str)  # printable
