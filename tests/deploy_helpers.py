"""Shared by the deploy tests: paths, the schemas (from registry packages, never fetched),
real Prometheus processes, and loading the compose files."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
ENVIRONMENTS = ("development", "production", "next")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# What the seed fixes per environment: (compose project, Prometheus host, Grafana host).
SEED_NAMES = {
    "development": ("pluto-dev", "prometheus", "grafana"),
    "production": ("pluto", "pluto_prometheus_1", "pluto_grafana_1"),
    "next": ("pluto-next", "pluto-next_prometheus_1", "pluto-next_grafana_1"),
}
PLUTO_SERVICES = ("poller", "exporter", "dashboards", "api")


def compose_path(env: str) -> Path:
    return DEPLOY / f"compose.{env}.yaml"


def load_compose(env: str) -> dict[str, Any]:
    return yaml.safe_load(compose_path(env).read_text())


@cache
def compose_schema() -> dict[str, Any]:
    """The Compose specification's JSON schema, as vendored by the check-jsonschema package."""
    vendor = files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str, package: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if found is None:
        message = f"{name} is missing (apt-get install -y {package})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def prometheus_binary() -> str:
    return _binary("prometheus", "prometheus")


def promtool_binary() -> str:
    return _binary("promtool", "prometheus")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_http(url: str, *, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Until `url` answers 200 (a real condition, polled), or fail with why not."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    last = ""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    raise AssertionError(f"{url} not ready after {timeout}s: {last}")


@contextlib.contextmanager
def running_prometheus(config_text: str, workdir: Path) -> Iterator[str]:
    """A real Prometheus with this config, on a free port; yields its base URL."""
    binary = prometheus_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(config_text)
    port = free_port()
    with open(workdir / "prometheus.log", "ab") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/-/ready", process=process)
        yield base
    finally:
        stop(process)


def prometheus_config() -> Path | None:
    """This project's Prometheus config (written beside the exporter), when it exists."""
    for name in ("prometheus.yml", "prometheus.yaml"):
        path = DEPLOY / "prometheus" / name
        if path.exists():
            return path
    return None


def known_env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads (its fields with prefix or aliases)."""
    prefix = cls.model_config.get("env_prefix", "")
    names: set[str] = set()
    for field_name, info in cls.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            names.update(str(c).upper() for c in choices if isinstance(c, str))
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def interpolate(value: str) -> str:
    """Compose's `${VAR:-default}` -> default, `${VAR:?message}` -> a stand-in secret."""

    def one(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3) or ""
        if op == ":?":
            return f"stand-in-secret-for-{name.lower()}"
        return rest if op == ":-" else ""

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}", one, value)
