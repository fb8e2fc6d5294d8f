"""The dashboards service's parts, one at a time: templates, names, tokens, files, settings."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.dashboards import naming
from services.dashboards.files import DashboardFolder
from services.dashboards.render import TEMPLATES, Renderer, RenderError, revision_of
from services.dashboards.settings import DashboardsSettings
from services.dashboards.tokens import SecretMissing, access_token, load_or_create_secret, resolve_secret

HOSTILE = [
    'evil"},{"id":1',
    "{{ 7*7 }} {% raw %}",
    "</script><script>alert(1)</script>",
    "line\nbreak\ttab\x00nul\x1b[31m",
    "../../etc/passwd",
    "${__user.login} $__range",
    "\\u0022 \\",
    "🚀 ünïcode",
    "x" * 256,
]


def panels(text: str) -> list[dict]:
    return json.loads(text)["panels"]


def test_device_dashboard_has_every_panel_an_operator_expects() -> None:
    rendered = Renderer("pluto-prometheus").device("aabbccddeeff", "miner-1")
    titles = {p["title"] for p in panels(rendered.text)}
    for wanted in [
        "Status",
        "Uptime",
        "Hashrate",
        "Average hashrate over the range",
        "Power",
        "Efficiency",
        "Temperature",
        "Fan speed",
        "Voltages",
        "Shares per minute",
    ]:
        assert wanted in titles
    doc = json.loads(rendered.text)
    temperature = next(p for p in doc["panels"] if p["title"] == "Temperature")
    steps = [s["value"] for s in temperature["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert steps == [None, 30, 40, 50, 60, 70, 80]  # a colour step every 10 °C
    legends = {t["legendFormat"] for p in doc["panels"] for t in p["targets"]}
    assert {"voltage regulator", "core (set)", "core (actual)", "input", "accepted", "rejected"} <= legends
    average = next(p for p in doc["panels"] if p["title"] == "Average hashrate over the range")
    assert average["options"]["reduceOptions"]["calcs"] == ["mean"]


def test_overview_has_the_fleet_panels() -> None:
    rendered = Renderer("pluto-prometheus").overview()
    assert rendered.uid == "pluto-overview" and rendered.title == naming.OVERVIEW_TITLE
    titles = {p["title"] for p in panels(rendered.text)}
    for wanted in [
        "Devices",
        "Online",
        "Offline",
        "Total hashrate",
        "Average hashrate",
        "Total power",
        "Efficiency",
        "Total and average hashrate",
        "Firmware versions",
    ]:
        assert wanted in titles
    legends = {t["legendFormat"] for p in panels(rendered.text) for t in p["targets"]}
    assert {"{{version}}", "{{pool}}", "{{hostname}}"} <= legends


@pytest.mark.parametrize("title", HOSTILE)
def test_every_injected_value_is_json_encoded(title: str) -> None:
    rendered = Renderer("pluto-prometheus").device("dev-1", title)
    doc = json.loads(rendered.text)
    assert doc["title"] == title
    assert rendered.title == title


def test_rendered_dashboards_satisfy_provisioning_and_public_dashboards() -> None:
    renderer = Renderer("my-ds")
    longest = "a" * 32
    for rendered in (renderer.device(longest, "t"), renderer.overview()):
        doc = json.loads(rendered.text)
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", doc["uid"])
        assert doc.get("id") is None and doc["schemaVersion"] == 39 and doc["templating"]["list"] == []
        ids = [p["id"] for p in doc["panels"]]
        assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids))
        for panel in doc["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "my-ds"}
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
            for target in panel["targets"]:
                assert target["datasource"] == {"type": "prometheus", "uid": "my-ds"}
                assert target["expr"] in rendered.exprs
        assert revision_of(doc["tags"]) == rendered.revision


def test_device_queries_select_the_device_id_never_the_hostname() -> None:
    rendered = Renderer("pluto-prometheus").device("dev-7", "my-hostname")
    for expr in rendered.exprs:
        assert 'device="dev-7"' in expr
        assert "my-hostname" not in expr and "hostname" not in expr.split("by (")[0]
    # a hostname change changes the title only, so the queries (and their history) stay
    assert Renderer("pluto-prometheus").device("dev-7", "renamed").exprs == rendered.exprs


def test_revision_follows_content_and_templates(tmp_path: Path) -> None:
    base = Renderer("pluto-prometheus")
    assert base.device("d1", "a").revision == base.device("d1", "a").revision
    assert base.device("d1", "a").revision != base.device("d1", "b").revision
    changed = tmp_path / "templates"
    shutil.copytree(TEMPLATES, changed)
    device = changed / "device.json.j2"
    device.write_text(device.read_text().replace('"now-1h"', '"now-6h"'))
    assert Renderer("pluto-prometheus", templates_dir=changed).device("d1", "a").revision != (
        base.device("d1", "a").revision
    )


def test_a_broken_template_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "templates"
    shutil.copytree(TEMPLATES, broken)
    device = broken / "device.json.j2"
    device.write_text(device.read_text().replace('"id": {{ id }},', '"id": 1,', 1))
    (broken / "panels.json.j2").write_text(
        (broken / "panels.json.j2").read_text().replace('"id": {{ id }},', '"id": 1,')
    )
    with pytest.raises(RenderError, match="duplicate panel ids"):
        Renderer("ds", templates_dir=broken).device("d1", "t")
    device.write_text("{ not json")
    with pytest.raises(RenderError, match="not JSON"):
        Renderer("ds", templates_dir=broken).device("d1", "t")


def test_uids_and_file_names_come_from_device_ids() -> None:
    assert naming.device_uid("overview") != naming.OVERVIEW_UID
    assert naming.device_uid("a" * 32) == "pluto-d-" + "a" * 32
    assert len(naming.device_uid("a" * 32)) == 40
    assert naming.key_of(naming.device_uid("abc")) == "abc"
    assert naming.key_of(naming.OVERVIEW_UID) == "_overview"
    assert naming.key_of("someone-elses") is None
    with pytest.raises(ValueError):
        naming.device_uid("../x")


def test_titles_are_unique_and_stable() -> None:
    assert naming.choose_title("miner", "a", set()) == "miner"
    assert naming.choose_title("Miner", "b", {"miner"}) == "Miner · b"
    assert naming.choose_title(naming.OVERVIEW_TITLE, "c", set()) == f"{naming.OVERVIEW_TITLE} · c"
    # a hostname that looks disambiguated never takes a title another device could need
    assert naming.choose_title("miner · b", "d", set()) == "miner · b · d"
    assert naming.choose_title(None, "e", set()) == "e"
    assert naming.choose_title("  \n\t ", "f", set()) == "f"
    assert naming.choose_title("a\nb\x00c", "g", set()) == "a bc"
    # once disambiguated, a title stays when the other device leaves
    assert naming.choose_title("Miner", "b", set(), current="Miner · b") == "Miner · b"
    # ...and follows a hostname change
    assert naming.choose_title("rig", "b", set(), current="Miner · b") == "rig"


def test_access_tokens_are_grafana_shaped_stable_and_secret() -> None:
    secret = SecretStr("s" * 32)
    token = access_token(secret, "pluto-d-abc")
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert token == access_token(SecretStr("s" * 32), "pluto-d-abc")
    assert token != access_token(SecretStr("t" * 32), "pluto-d-abc")
    assert token != access_token(secret, "pluto-d-abd")


def test_secret_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "dashboards.secret"
    first = load_or_create_secret(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_secret(path).get_secret_value() == first.get_secret_value()
    with pytest.raises(SecretMissing):
        resolve_secret(DashboardsSettings(token_secret=None, token_secret_file=None))
    settings = DashboardsSettings(token_secret_file=path)
    assert resolve_secret(settings).get_secret_value() == first.get_secret_value()


async def test_files_are_written_atomically_inside_the_folder(tmp_path: Path) -> None:
    folder = DashboardFolder(tmp_path / "dash")
    assert await folder.write("pluto-d-a", '{"uid": "pluto-d-a", "title": "A"}\n')
    assert not await folder.write("pluto-d-a", '{"uid": "pluto-d-a", "title": "A"}\n')
    path = tmp_path / "dash" / "pluto-d-a.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert [p.name for p in (tmp_path / "dash").iterdir()] == ["pluto-d-a.json"]
    assert await folder.scan() == {"pluto-d-a": "A"}
    for bad in ["../x", "a/b", "", "x" * 41, "a.b"]:
        with pytest.raises(ValueError):
            folder.path_of(bad)
    assert await folder.delete("pluto-d-a")
    assert not await folder.delete("pluto-d-a")  # already gone is fine


def test_settings_read_the_service_prefix_and_the_shared_bus_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLUTO_NATS_URL", "nats://shared:4222")
    monkeypatch.setenv("PLUTO_DASHBOARDS_GRAFANA_URL", "http://grafana:3000/grafana/")
    monkeypatch.setenv("PLUTO_DASHBOARDS_DASHBOARDS_DIR", "/tmp/x")
    monkeypatch.setenv("PLUTO_GRAFANA_USER", "not-for-us")
    settings = DashboardsSettings()
    assert settings.nats_url == "nats://shared:4222"
    assert settings.grafana_url == "http://grafana:3000/grafana"
    assert settings.dashboards_dir == Path("/tmp/x")
    assert settings.grafana_user == "admin"
    with pytest.raises(ValueError):
        DashboardsSettings(token_secret="short")
