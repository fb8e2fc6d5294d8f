"""The Kubernetes manifests: every overlay built (tests/deploy_kustomize.py, compared with
`kubectl kustomize` where kubectl exists) and every resource validated against the
Kubernetes JSON schemas of the kubernetes-validate package (strict: unknown fields fail);
then what the issue asks of them: one Deployment per service with its own replicas,
probes on the health endpoints, config from ConfigMaps and Secrets, NATS from its
official chart by reference."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

from services.api.settings import ApiSettings
from services.dashboards.settings import DashboardsSettings
from services.exporter.settings import ExporterSettings
from services.poller.settings import PollerSettings
from tests.deploy_helpers import DEPLOY, PLUTO_SERVICES, known_env_names
from tests.deploy_kustomize import KustomizeError, build, by_kind_and_name

K8S = DEPLOY / "k8s"
OVERLAYS = {"development": "pluto-dev", "production": "pluto", "next": "pluto-next"}
# The oldest and the newest Kubernetes the manifests must be valid for.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
SETTINGS: dict[str, type[BaseSettings]] = {
    "poller": PollerSettings,
    "exporter": ExporterSettings,
    "dashboards": DashboardsSettings,
    "api": ApiSettings,
}
# Health endpoints of every Deployment: (port, liveness path, readiness path). The poller
# and the dashboards service serve only these (shared/health.py).
HEALTH = {
    "poller": (9111, "/healthz", "/readyz"),
    "exporter": (9110, "/healthz", "/readyz"),
    "dashboards": (9112, "/healthz", "/readyz"),
    "api": (8080, "/healthz", "/readyz"),
    "prometheus": (9090, "/-/healthy", "/-/ready"),
    "grafana": (3000, "/grafana/api/health", "/grafana/api/health"),
}
SECRET_KEYS = {"grafana-admin-password", "dashboards-token-secret", "api-operator-token"}
COPIES = {
    "prometheus.yml": DEPLOY / "prometheus" / "prometheus.yml",
    "pluto-overview.yml": DEPLOY / "prometheus" / "rules" / "pluto-overview.yml",
    "grafana.ini": DEPLOY / "grafana" / "grafana.ini",
    "datasources.yaml": DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml",
    "dashboard-providers.yaml": DEPLOY / "grafana" / "provisioning" / "dashboards" / "pluto.yaml",
}


def rendered(overlay: str) -> dict[tuple[str, str], dict[str, Any]]:
    return by_kind_and_name(build(K8S / "overlays" / overlay))


def deployment(docs: dict[tuple[str, str], dict[str, Any]], name: str) -> dict[str, Any]:
    return docs[("Deployment", name)]


def container(docs: dict[tuple[str, str], dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = deployment(docs, name)["spec"]["template"]["spec"]["containers"]
    return found


def configmap(docs: dict[tuple[str, str], dict[str, Any]], base_name: str) -> dict[str, Any]:
    (found,) = [
        d for (kind, name), d in docs.items() if kind == "ConfigMap" and name.startswith(base_name + "-")
    ]
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_resource_is_valid_kubernetes(overlay: str, version: str) -> None:
    docs = build(K8S / "overlays" / overlay)
    assert docs
    errors = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_the_schemas_catch_a_mistake() -> None:
    docs = rendered("production")
    bad = yaml.safe_load(yaml.safe_dump(deployment(docs, "api")))
    bad["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_renderer_agrees_with_kubectl_kustomize(overlay: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(
            "kubectl (with its built-in kustomize) is not installed; the Python renderer stands alone"
        )
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=60
    )
    if out.returncode != 0 and "unknown command" in out.stderr:
        pytest.skip(f"this kubectl has no kustomize: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    theirs = by_kind_and_name([d for d in yaml.safe_load_all(out.stdout) if d])
    assert rendered(overlay) == theirs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_deployment_per_service_with_its_own_replicas(overlay: str) -> None:
    docs = rendered(overlay)
    names = sorted(name for kind, name in docs if kind == "Deployment")
    assert names == sorted([*PLUTO_SERVICES, "prometheus", "grafana"])
    k = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    assert sorted(r["name"] for r in k["replicas"]) == sorted(PLUTO_SERVICES)
    for item in k["replicas"]:
        assert deployment(docs, item["name"])["spec"]["replicas"] == item["count"]
    for name in PLUTO_SERVICES:
        spec = container(docs, name)
        assert spec["command"] == ["python", "-m", f"services.{name}"]
        assert re.fullmatch(r"pluto-fleet:[\w.-]+", spec["image"])
    for name, namespace in ((n, OVERLAYS[overlay]) for n in names):
        assert deployment(docs, name)["metadata"]["namespace"] == namespace


def test_replicas_differ_where_production_scales() -> None:
    production = rendered("production")
    development = rendered("development")
    assert (
        deployment(production, "api")["spec"]["replicas"] > deployment(development, "api")["spec"]["replicas"]
    )
    # every poller replica polls every device today
    assert deployment(production, "poller")["spec"]["replicas"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_on_the_health_endpoints(overlay: str) -> None:
    docs = rendered(overlay)
    # Every Deployment is probed: a new one without a health endpoint fails here.
    assert sorted(name for kind, name in docs if kind == "Deployment") == sorted(HEALTH)
    for name, (port, live, ready) in HEALTH.items():
        spec = container(docs, name)
        ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
        for probe, path in (("livenessProbe", live), ("readinessProbe", ready)):
            http = spec[probe]["httpGet"]
            assert http["path"] == path, (name, probe)
            assert ports[http["port"]] == port, (name, probe)
    # The poller and the dashboards service listen where the probes look: on every
    # address (the kubelet probes the pod's IP), on the probed port.
    for name, prefix in (("poller", "PLUTO_POLLER"), ("dashboards", "PLUTO_DASHBOARDS")):
        env = {v["name"]: v.get("value") for v in container(docs, name).get("env", [])}
        assert env[f"{prefix}_HEALTH_HOST"] == "0.0.0.0", name
        assert int(env[f"{prefix}_HEALTH_PORT"]) == HEALTH[name][0], name


def test_probed_paths_exist_in_the_services() -> None:
    """The probe paths are real routes of the exporter, the gateway and shared/health.py."""
    import shared.health as health
    from services.exporter import routes

    source = Path(health.__file__).read_text()
    assert '"/healthz"' in source and '"/readyz"' in source
    for name in ("poller", "dashboards"):
        assert SETTINGS[name].model_fields["health_port"].default == HEALTH[name][0], name

    source = Path(routes.__file__).read_text()
    assert '"/healthz"' in source and '"/readyz"' in source
    import services.api.routes_status as status

    source = Path(status.__file__).read_text()
    assert '"/healthz"' in source and '"/readyz"' in source
    assert ExporterSettings.model_fields["port"].default == HEALTH["exporter"][0]
    assert ApiSettings.model_fields["port"].default == HEALTH["api"][0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_from_configmaps_and_secrets(overlay: str) -> None:
    docs = rendered(overlay)
    config = configmap(docs, "pluto-config")
    assert config["data"]["PLUTO_NATS_URL"] == "nats://nats:4222"  # the chart's Service, release `nats`
    for name in PLUTO_SERVICES:
        spec = container(docs, name)
        assert {"configMapRef": {"name": config["metadata"]["name"]}} in spec["envFrom"]
        env = spec.get("env", [])
        # no secret in a manifest: every secret-looking variable comes from pluto-secrets
        for var in env:
            if re.search(r"PASSWORD|SECRET|TOKEN", var["name"]):
                ref = var["valueFrom"]["secretKeyRef"]
                assert ref["name"] == "pluto-secrets" and ref["key"] in SECRET_KEYS
        # and every name is a real setting of that service
        known = known_env_names(SETTINGS[name]) | {"PLUTO_PROMETHEUS_URL"}
        names = {v["name"] for v in env} | set(config["data"])
        assert not sorted(n for n in names if n.startswith("PLUTO_") and n not in known), name
    grafana = container(docs, "grafana")
    (password,) = [v for v in grafana["env"] if v["name"] == "GF_SECURITY_ADMIN_PASSWORD"]
    assert password["valueFrom"]["secretKeyRef"] == {"name": "pluto-secrets", "key": "grafana-admin-password"}
    grafana_env = configmap(docs, "grafana-env")["data"]
    assert grafana_env["PLUTO_PROMETHEUS_URL"] == "http://prometheus:9090"
    assert grafana_env["GF_SERVER_ROOT_URL"].endswith("/grafana/")
    whitelist = grafana_env["GF_AUTH_PROXY_WHITELIST"]
    assert whitelist and "0.0.0.0/0" not in whitelist
    assert not [d for (kind, _), d in docs.items() if kind == "Secret"]  # secrets are created by hand


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grafana_and_prometheus_use_this_projects_files(overlay: str) -> None:
    docs = rendered(overlay)
    assert (
        configmap(docs, "prometheus-config")["data"]["prometheus.yml"] == COPIES["prometheus.yml"].read_text()
    )
    assert configmap(docs, "grafana-config")["data"]["grafana.ini"] == COPIES["grafana.ini"].read_text()
    prometheus = container(docs, "prometheus")
    assert "--storage.tsdb.retention.time=7d" in prometheus["args"]
    assert "--storage.tsdb.retention.size=5GB" in prometheus["args"]
    mounts = {m["mountPath"]: m for m in container(docs, "grafana")["volumeMounts"]}
    assert mounts["/var/lib/grafana/dashboards"]["readOnly"] is True
    dashboards_mounts = {m["mountPath"]: m["name"] for m in container(docs, "dashboards")["volumeMounts"]}
    assert dashboards_mounts["/var/lib/grafana/dashboards"] == "dashboards"
    claims = {
        name: {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in
               deployment(docs, name)["spec"]["template"]["spec"]["volumes"]}
        for name in ("grafana", "dashboards")
    }  # fmt: skip
    assert claims["grafana"]["dashboards"] == claims["dashboards"]["dashboards"] == "dashboards"
    assert claims["grafana"]["data"] == "grafana-data"  # Grafana's database: not shared
    assert docs[("PersistentVolumeClaim", "dashboards")]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", container(docs, "grafana")["image"])


def test_copies_of_the_config_files_have_not_drifted() -> None:
    for name, original in COPIES.items():
        copy = K8S / "base" / "files" / name
        assert copy.read_text() == original.read_text(), (
            f"{copy} differs from {original}: run deploy/k8s/sync-files.sh"
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pluto_pods_run_locked_down(overlay: str) -> None:
    docs = rendered(overlay)
    for name in (*PLUTO_SERVICES, "prometheus", "grafana"):
        pod = deployment(docs, name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        security = pod["containers"][0]["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
    for name in PLUTO_SERVICES:
        assert deployment(docs, name)["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001


def test_only_the_gateway_and_the_dashboards_service_reach_grafana() -> None:
    docs = rendered("production")
    policy = docs[("NetworkPolicy", "grafana-from-gateway-and-dashboards")]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "grafana"
    (rule,) = policy["spec"]["ingress"]
    sources = sorted(p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in rule["from"])
    assert sources == ["api", "dashboards"]
    assert rule["ports"] == [{"port": 3000, "protocol": "TCP"}]


def test_nats_comes_from_its_official_chart_by_reference() -> None:
    k = yaml.safe_load((K8S / "nats" / "kustomization.yaml").read_text())
    (chart,) = k["helmCharts"]
    assert chart["name"] == "nats"
    assert chart["repo"] == "https://nats-io.github.io/k8s/helm/charts/"
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(chart["version"]))
    assert chart["releaseName"] == "nats"  # -> Service `nats`, PLUTO_NATS_URL=nats://nats:4222
    assert not (K8S / "nats" / "charts").exists(), "the chart is referenced, never vendored"
    values = yaml.safe_load((K8S / "nats" / chart["valuesFile"]).read_text())
    jetstream = values["config"]["jetstream"]
    assert jetstream["enabled"] is True
    assert jetstream["fileStore"]["enabled"] is True and jetstream["fileStore"]["pvc"]["enabled"] is True
    assert jetstream["memoryStore"]["enabled"] is True  # PLUTO_READINGS is a memory stream
    docs = "\n".join(p.read_text() for p in (K8S / "nats").glob("*.yaml"))
    assert f"--version {chart['version']}" in docs


def test_renderer_refuses_what_it_does_not_know(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\npatches: []\n")
    with pytest.raises(KustomizeError, match="unsupported"):
        build(tmp_path)
    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "secret.txt").write_text("x")
    (inner / "kustomization.yaml").write_text(
        "configMapGenerator:\n  - name: x\n    files: [../secret.txt]\n"
    )
    with pytest.raises(KustomizeError, match="security"):
        build(inner)
