"""`pluto doctor`: check a running Pluto stack part by part and say what is wrong.

One line per check, `PASS`, `FAIL`, `WARN` or `SKIP`, each FAIL followed by what to
look at; the exit status is 1 when anything failed. Checks, in order:

- NATS reachable; the three streams of the bus contract exist (never created here:
  a missing stream is a finding); devices registered vs dashboards published; the
  dashboards service's durable consumer and its backlog.
- Prometheus ready; the exporter's scrape target present and up.
- Grafana healthy (and served under its sub-path); the provisioned folder exists, is
  writable and holds dashboard files; the provisioned Prometheus datasource exists
  and answers; the auth-proxy login can read the overview dashboard and may publish;
  the overview's public dashboard answers anonymously.

Configured by flags, else by the environment the services themselves read
(`PLUTO_NATS_URL`, `PLUTO_DASHBOARDS_GRAFANA_URL`, `PLUTO_DASHBOARDS_GRAFANA_USER`,
`PLUTO_DASHBOARDS_DASHBOARDS_DIR`, ...): run inside the dashboards container it checks
exactly what that service sees, from the address Grafana's whitelist must allow.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp
import nats
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from shared import streams, subjects
from shared.registry import read_registry

OVERVIEW_UID = "pluto-overview"  # services/dashboards/naming.py
DATASOURCE_UID = "pluto-prometheus"  # services/dashboards/settings.py, deploy/grafana provisioning
EXPORTER_JOB = "pluto-exporter"  # deploy/prometheus/prometheus.yml
DASHBOARDS_DURABLE = "pluto-dashboards"  # services/dashboards/settings.py
PROBE_PUBLIC_UID = "pluto-doctor-probe"  # never created: PATCHing it only tests permission

PASS, FAIL, WARN, SKIP = "PASS", "FAIL", "WARN", "SKIP"
CHECKS = ("nats", "prometheus", "grafana", "folder")


def _env(*names: str, default: str) -> str:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return default


@dataclass
class DoctorConfig:
    nats_url: str = "nats://127.0.0.1:4222"
    prometheus_url: str = "http://127.0.0.1:9090"
    exporter_job: str = EXPORTER_JOB
    grafana_url: str = "http://127.0.0.1:3000/grafana"
    grafana_user: str = "admin"
    grafana_auth_header: str = "X-WEBAUTH-USER"
    dashboards_dir: Path = Path("/var/lib/grafana/dashboards")
    datasource_uid: str = DATASOURCE_UID
    overview_uid: str = OVERVIEW_UID
    durable: str = DASHBOARDS_DURABLE
    timeout: float = 5.0
    skip: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls) -> DoctorConfig:
        return cls(
            nats_url=_env("PLUTO_NATS_URL", default=cls.nats_url),
            prometheus_url=_env(
                "PLUTO_DOCTOR_PROMETHEUS_URL", "PLUTO_PROMETHEUS_URL", default=cls.prometheus_url
            ),
            exporter_job=_env("PLUTO_DOCTOR_EXPORTER_JOB", default=cls.exporter_job),
            grafana_url=_env(
                "PLUTO_DOCTOR_GRAFANA_URL", "PLUTO_DASHBOARDS_GRAFANA_URL", default=cls.grafana_url
            ),
            grafana_user=_env(
                "PLUTO_DOCTOR_GRAFANA_USER", "PLUTO_DASHBOARDS_GRAFANA_USER", default=cls.grafana_user
            ),
            grafana_auth_header=_env("PLUTO_DASHBOARDS_GRAFANA_AUTH_HEADER", default=cls.grafana_auth_header),
            dashboards_dir=Path(
                _env(
                    "PLUTO_DOCTOR_DASHBOARDS_DIR",
                    "PLUTO_DASHBOARDS_DASHBOARDS_DIR",
                    default=str(cls.dashboards_dir),
                )
            ),
            datasource_uid=_env("PLUTO_DASHBOARDS_DATASOURCE_UID", default=cls.datasource_uid),
            durable=_env("PLUTO_DASHBOARDS_DURABLE", default=cls.durable),
        )


@dataclass(frozen=True)
class Finding:
    status: str
    check: str
    detail: str
    hint: str = ""

    def lines(self) -> list[str]:
        out = [f"{self.status} {self.check}: {self.detail}"]
        if self.hint and self.status in (FAIL, WARN):
            out.extend(f"     -> {line}" for line in self.hint.splitlines())
        return out


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    out: TextIO | None = None

    def add(self, status: str, check: str, detail: str, hint: str = "") -> Finding:
        finding = Finding(status, check, detail, hint)
        self.findings.append(finding)
        if self.out is not None:
            for line in finding.lines():
                print(line, file=self.out, flush=True)
        return finding

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.status == FAIL]

    def status_of(self, check: str) -> str | None:
        for finding in self.findings:
            if finding.check == check:
                return finding.status
        return None


@dataclass
class Answer:
    """An HTTP answer, or none (status 0 and the error)."""

    status: int
    body: Any = None
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def message_id(self) -> str:
        return str(self.body.get("messageId", "")) if isinstance(self.body, dict) else ""

    def describe(self) -> str:
        if self.status == 0:
            return f"no answer ({self.error})"
        snippet = self.text.strip().replace("\n", " ")[:200]
        return f"HTTP {self.status}" + (f": {snippet}" if snippet else "")


class Doctor:
    def __init__(self, config: DoctorConfig, report: Report) -> None:
        self.config = config
        self.report = report
        self._http: aiohttp.ClientSession | None = None
        self.public_token: str | None = None

    # -- plumbing ----------------------------------------------------------------------------

    async def _get(self, url: str, **kwargs: Any) -> Answer:
        return await self._request("GET", url, **kwargs)

    async def _request(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, json_body: Any = None
    ) -> Answer:
        assert self._http is not None
        try:
            async with self._http.request(
                method, url, headers=headers, json=json_body, allow_redirects=False
            ) as resp:
                raw = await resp.content.read(1024 * 1024)
                text = raw.decode("utf-8", "replace")
                body: Any = None
                with contextlib.suppress(ValueError):
                    body = json.loads(text) if text else None
                return Answer(resp.status, body, text, dict(resp.headers))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Answer(0, error=str(exc) or type(exc).__name__)

    def _grafana(self, path: str) -> str:
        return self.config.grafana_url.rstrip("/") + path

    def _as_user(self) -> dict[str, str]:
        return {self.config.grafana_auth_header: self.config.grafana_user}

    # -- run ---------------------------------------------------------------------------------

    async def run(self) -> Report:
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        # No cookie jar and no Origin header: Grafana's CSRF check has nothing to object to.
        async with aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as http:
            self._http = http
            steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
                ("nats", self.check_nats),
                ("prometheus", self.check_prometheus),
                ("folder", self.check_folder),
                ("grafana", self.check_grafana),
            ]
            for name, step in steps:
                if name in self.config.skip:
                    self.report.add(SKIP, name, "skipped (--skip)")
                    continue
                await step()
        self._http = None
        return self.report

    # -- NATS --------------------------------------------------------------------------------

    async def check_nats(self) -> None:
        url = self.config.nats_url

        async def quiet(exc: Exception) -> None:  # nats-py prints a traceback per attempt otherwise
            return None

        refused = await _tcp_refused(url, self.config.timeout)
        if refused:
            self.report.add(
                FAIL,
                "nats",
                f"cannot connect to {url}: {refused}",
                "is NATS running and is PLUTO_NATS_URL right? (compose: nats://nats:4222; "
                "`docker compose ps nats`)",
            )
            self.report.add(SKIP, "streams", "NATS not reachable")
            return
        try:
            async with asyncio.timeout(self.config.timeout):
                client = await nats.connect(
                    url,
                    name="pluto-doctor",
                    connect_timeout=self.config.timeout,
                    max_reconnect_attempts=0,
                    allow_reconnect=False,
                    error_cb=quiet,
                )
        except Exception as exc:  # nats-py raises several unrelated types here
            self.report.add(
                FAIL,
                "nats",
                f"cannot connect to {url}: {_describe(exc)}",
                "is NATS running and is PLUTO_NATS_URL right? (compose: nats://nats:4222; "
                "`docker compose ps nats`)",
            )
            self.report.add(SKIP, "streams", "NATS not reachable")
            return
        try:
            server = client.connected_server_version
            version = f"{server.major}.{server.minor}.{server.patch}"
            self.report.add(PASS, "nats", f"connected to {url} (nats-server {version})")
            await self._check_streams(client.jetstream(timeout=self.config.timeout))
        finally:
            await client.close()

    async def _check_streams(self, js: JetStreamContext) -> None:
        missing = []
        counts: dict[str, int] = {}
        for name in (streams.DEVICES, streams.READINGS, streams.DASHBOARDS):
            try:
                info = await js.stream_info(name)
            except NotFoundError:
                missing.append(name)
            except Exception as exc:
                self.report.add(
                    FAIL,
                    "streams",
                    f"JetStream did not answer for {name}: {_describe(exc)}",
                    "is JetStream enabled on the server (`nats-server -js`, or the chart's "
                    "config.jetstream.enabled)?",
                )
                return
            else:
                counts[name] = info.state.messages
        if missing:
            self.report.add(
                FAIL,
                "streams",
                f"missing: {', '.join(missing)}",
                "every Pluto service creates the streams when it starts: is any running against "
                "this NATS? (`pluto devices list` creates them too)",
            )
            return
        self.report.add(
            PASS,
            "streams",
            ", ".join(f"{name} ({count} msgs)" for name, count in counts.items()),
        )
        await self._check_dashboard_states(js)
        await self._check_consumer(js)

    async def _check_dashboard_states(self, js: JetStreamContext) -> None:
        try:
            devices = await read_registry(js, timeout=self.config.timeout)
            states = await _last_per_subject(js, subjects.DASHBOARDS_ALL, self.config.timeout)
        except Exception as exc:
            self.report.add(WARN, "dashboards-published", f"could not read the streams: {exc!r}")
            return
        published = {
            subject.split(".")[2]
            for subject, data in states.items()
            if subject.endswith(".published") and _newest(states, subject, data)
        }
        waiting = sorted(d for d in devices if d not in published)
        overview = subjects.OVERVIEW_KEY in published
        detail = (
            f"{len(devices)} devices registered, {len(published & set(devices))} device dashboards published"
        )
        detail += ", overview published" if overview else ", overview NOT published"
        if waiting or not overview:
            shown = ", ".join(waiting[:10]) + (" ..." if len(waiting) > 10 else "")
            self.report.add(
                WARN,
                "dashboards-published",
                detail + (f"; waiting: {shown}" if waiting else ""),
                "the dashboards service publishes after Grafana loads each file (up to one scan, "
                "10 s); if this stays, read its log and the Grafana checks below",
            )
        else:
            self.report.add(PASS, "dashboards-published", detail)

    async def _check_consumer(self, js: JetStreamContext) -> None:
        try:
            info = await js.consumer_info(streams.DEVICES, self.config.durable)
        except NotFoundError:
            self.report.add(
                WARN,
                "dashboards-consumer",
                f"no durable consumer {self.config.durable!r} on {streams.DEVICES}",
                "the dashboards service has never run against this NATS: start it "
                "(compose service `dashboards`)",
            )
            return
        except Exception as exc:
            self.report.add(WARN, "dashboards-consumer", f"could not read it: {exc!r}")
            return
        backlog = (info.num_pending or 0) + (info.num_ack_pending or 0)
        detail = (
            f"{self.config.durable}: {info.num_pending or 0} events not delivered, "
            f"{info.num_ack_pending or 0} in progress, {info.num_redelivered or 0} redelivered"
        )
        if backlog:
            self.report.add(
                WARN,
                "dashboards-consumer",
                detail,
                "events waiting: the dashboards service is down, or retrying because Grafana "
                "refuses or fails (see the Grafana checks)",
            )
        else:
            self.report.add(PASS, "dashboards-consumer", detail)

    # -- Prometheus --------------------------------------------------------------------------

    async def check_prometheus(self) -> None:
        base = self.config.prometheus_url.rstrip("/")
        ready = await self._get(base + "/-/ready")
        if ready.status != 200:
            self.report.add(
                FAIL,
                "prometheus",
                f"{base}/-/ready: {ready.describe()}",
                "is Prometheus running (compose service `prometheus`) and is the URL right? "
                "503 means it is still replaying its WAL",
            )
            self.report.add(SKIP, "exporter-target", "Prometheus not ready")
            return
        self.report.add(PASS, "prometheus", f"{base} ready")
        targets = await self._get(base + "/api/v1/targets?state=active")
        if targets.status != 200 or not isinstance(targets.body, dict):
            self.report.add(FAIL, "exporter-target", f"/api/v1/targets: {targets.describe()}")
            return
        active = targets.body.get("data", {}).get("activeTargets", [])
        job = self.config.exporter_job
        mine = [t for t in active if t.get("labels", {}).get("job") == job or t.get("scrapePool") == job]
        if not mine:
            jobs = sorted({str(t.get("labels", {}).get("job")) for t in active})
            self.report.add(
                FAIL,
                "exporter-target",
                f"no active target of job {job!r} (jobs: {', '.join(jobs) or 'none'})",
                "Prometheus is not running this project's scrape config: mount deploy/prometheus "
                "at /etc/prometheus, or pass --exporter-job",
            )
            return
        down = [t for t in mine if t.get("health") != "up"]
        if down:
            first = down[0]
            self.report.add(
                FAIL,
                "exporter-target",
                f"{len(down)}/{len(mine)} {job} targets not up: {first.get('scrapeUrl')} "
                f"{first.get('health')} {first.get('lastError', '')}".rstrip(),
                "is the exporter running and reachable from Prometheus at that address? "
                "(health 'unknown' means no scrape has finished yet)",
            )
            return
        urls = ", ".join(str(t.get("scrapeUrl")) for t in mine[:3])
        self.report.add(PASS, "exporter-target", f"{len(mine)} {job} target(s) up: {urls}")

    # -- the provisioned folder -------------------------------------------------------------

    async def check_folder(self) -> None:
        folder = self.config.dashboards_dir
        findings = await asyncio.to_thread(lambda: list(_folder_findings(folder, self.config.overview_uid)))
        for finding in findings:
            self.report.add(*finding)

    # -- Grafana -----------------------------------------------------------------------------

    async def check_grafana(self) -> None:
        health = await self._get(self._grafana("/api/health"))
        if health.status in (301, 302):
            self.report.add(
                FAIL,
                "grafana",
                f"{self._grafana('/api/health')}: redirected to {health.headers.get('Location')}",
                "Grafana serves from a sub-path: the Grafana URL must include it "
                "(http://grafana:3000/grafana)",
            )
            return
        if health.status != 200 or not isinstance(health.body, dict):
            self.report.add(
                FAIL,
                "grafana",
                f"{self._grafana('/api/health')}: {health.describe()}",
                "is Grafana running (compose service `grafana`) and is the URL right? "
                "A 404 here usually means serve_from_sub_path is off while the URL has /grafana",
            )
            return
        if health.body.get("database") != "ok":
            self.report.add(FAIL, "grafana", f"database {health.body.get('database')!r}", "see Grafana's log")
            return
        self.report.add(
            PASS, "grafana", f"{self.config.grafana_url} healthy (version {health.body.get('version')})"
        )
        await self._check_datasource()
        if await self._check_dashboard_read():
            if await self._check_publish_permission():
                await self._check_public_view()

    async def _check_datasource(self) -> None:
        uid = self.config.datasource_uid
        found = await self._get(self._grafana(f"/api/datasources/uid/{uid}"), headers=self._as_user())
        if found.status == 404:
            self.report.add(
                FAIL,
                "datasource",
                f"no datasource with uid {uid!r}",
                "the dashboards name the datasource by this uid: mount deploy/grafana/provisioning "
                "at /etc/grafana/provisioning (datasources/prometheus.yaml) and restart Grafana",
            )
            return
        if found.status != 200 or not isinstance(found.body, dict):
            self.report.add(
                WARN, "datasource", f"cannot read datasource {uid!r}: {found.describe()}", _auth_hint(found)
            )
            return
        url = found.body.get("url")
        access = found.body.get("access")
        method = (found.body.get("jsonData") or {}).get("httpMethod")
        health = await self._get(self._grafana(f"/api/datasources/uid/{uid}/health"), headers=self._as_user())
        if health.status == 200 and isinstance(health.body, dict) and health.body.get("status") == "OK":
            self.report.add(PASS, "datasource", f"{uid} -> {url} (access {access}, {method}) answers")
            return
        message = health.body.get("message") if isinstance(health.body, dict) else health.describe()
        self.report.add(
            FAIL,
            "datasource",
            f"{uid} -> {url!r} does not answer: {message}",
            "Grafana's server (access proxy) must reach Prometheus at that URL: check "
            "PLUTO_PROMETHEUS_URL on the grafana container (development http://prometheus:9090, "
            "production http://pluto_prometheus_1:9090, next http://pluto-next_prometheus_1:9090) "
            "and that both are on one network",
        )

    async def _check_dashboard_read(self) -> bool:
        uid = self.config.overview_uid
        user = self.config.grafana_user
        got = await self._get(self._grafana(f"/api/dashboards/uid/{uid}"), headers=self._as_user())
        if got.status == 200:
            meta = got.body.get("meta", {}) if isinstance(got.body, dict) else {}
            provisioned = "provisioned" if meta.get("provisioned") else "NOT provisioned"
            self.report.add(PASS, "auth-proxy", f"{user!r} reads dashboard {uid} ({provisioned})")
            return True
        if got.status == 404:
            self.report.add(
                PASS, "auth-proxy", f"{user!r} signed in through {self.config.grafana_auth_header}"
            )
            self.report.add(
                FAIL,
                "dashboard-loaded",
                f"Grafana has no dashboard {uid}",
                "Grafana loads files from /var/lib/grafana/dashboards every 10 s: is that the "
                "volume the dashboards service writes to (see the folder check), is the file valid "
                "JSON with that uid, and does Grafana's log mention provisioning errors?",
            )
            return True
        self.report.add(FAIL, "auth-proxy", f"{user!r} cannot read {uid}: {got.describe()}", _auth_hint(got))
        return False

    async def _check_publish_permission(self) -> bool:
        listing = await self._get(self._grafana("/api/dashboards/public-dashboards"), headers=self._as_user())
        if listing.status == 404 and not listing.message_id:
            self.report.add(
                FAIL,
                "public-dashboards",
                "the public dashboards API answers 404: the feature is off",
                "grafana.ini: [public_dashboards] enabled = true (and, up to 11.3, "
                "[feature_toggles] enable = publicDashboards)",
            )
            return False
        if listing.status != 200:
            self.report.add(FAIL, "public-dashboards", f"listing: {listing.describe()}", _auth_hint(listing))
            return False
        total = listing.body.get("totalCount") if isinstance(listing.body, dict) else "?"
        self.report.add(PASS, "public-dashboards", f"enabled, {total} public dashboards")
        # PATCH a public dashboard that cannot exist: Grafana checks the permission first
        # (403 without dashboards.public:write), then answers 404 for the unknown uid.
        probe = await self._request(
            "PATCH",
            self._grafana(
                f"/api/dashboards/uid/{self.config.overview_uid}/public-dashboards/{PROBE_PUBLIC_UID}"
            ),
            headers=self._as_user(),
            json_body={},
        )
        user = self.config.grafana_user
        if probe.status == 404 and probe.message_id.startswith("publicdashboards."):
            self.report.add(PASS, "publish-permission", f"{user!r} may publish (org Admin)")
            return True
        if probe.status == 403:
            self.report.add(
                FAIL,
                "publish-permission",
                f"{user!r} may not publish: {probe.describe()}",
                "publishing needs org Admin: use the `admin` login (PLUTO_DASHBOARDS_GRAFANA_USER) "
                "or give that user the Admin role; auto-signed-up logins are Viewers",
            )
            return False
        self.report.add(FAIL, "publish-permission", f"probe: {probe.describe()}", _auth_hint(probe))
        return False

    async def _check_public_view(self) -> None:
        uid = self.config.overview_uid
        mine = await self._get(
            self._grafana(f"/api/dashboards/uid/{uid}/public-dashboards"), headers=self._as_user()
        )
        if mine.status == 404:
            self.report.add(
                WARN,
                "public-view",
                f"{uid} has no public dashboard yet",
                "the dashboards service publishes it once Grafana has loaded the file; see "
                "dashboards-published above and the service's log",
            )
            return
        if mine.status != 200 or not isinstance(mine.body, dict):
            self.report.add(FAIL, "public-view", f"public dashboard of {uid}: {mine.describe()}")
            return
        token = str(mine.body.get("accessToken", ""))
        self.public_token = token
        if not mine.body.get("isEnabled"):
            self.report.add(
                FAIL,
                "public-view",
                f"the public dashboard of {uid} is paused (isEnabled false)",
                "the dashboards service enables it on its next reconcile; restart it to force one",
            )
            return
        # Anonymous: no auth header, as an iframe viewer.
        view = await self._get(self._grafana(f"/api/public/dashboards/{token}"))
        if view.status != 200:
            self.report.add(
                FAIL,
                "public-view",
                f"anonymous view of {uid}: {view.describe()}",
                "403 notEnabled: paused; 404: unknown token (Grafana lost its database: the "
                "dashboards service re-publishes with the same token on reconcile)",
            )
            return
        self.report.add(PASS, "public-view", f"{uid} answers anonymously at /public-dashboards/{token}")
        page = await self._get(self._grafana(f"/public-dashboards/{token}"))
        frame = page.headers.get("X-Frame-Options", "")
        if page.status == 200 and frame.lower() == "deny":
            self.report.add(
                FAIL,
                "embedding",
                "the public page sends X-Frame-Options: deny, so iframes stay blank",
                "grafana.ini: [security] allow_embedding = true",
            )
        elif page.status == 200:
            self.report.add(PASS, "embedding", "the public page may be framed")


async def _tcp_refused(url: str, timeout: float) -> str | None:
    """Why the first server of a NATS URL list refuses a TCP connection (None: it accepts).

    nats-py retries a refused connection until its timeout; this answers at once.
    """
    first = urlsplit(url.split(",")[0].strip())
    host, port = first.hostname or "127.0.0.1", first.port or 4222
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        return _describe(exc)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _auth_hint(answer: Answer) -> str:
    if answer.status == 401:
        return (
            "Grafana did not accept the auth-proxy login: this host's address must be in "
            "[auth.proxy] whitelist (GF_AUTH_PROXY_WHITELIST: the gateway's and the dashboards "
            "service's fixed IPs), and header_name must be X-WEBAUTH-USER"
        )
    if answer.status == 403:
        return "signed in, but without the permission: use an org Admin login (`admin`)"
    if answer.status == 0:
        return "Grafana did not answer: is it running, and is the URL right?"
    return "see Grafana's log"


def _newest(states: dict[str, bytes], subject: str, data: bytes) -> bool:
    """A published state counts unless the same key's unpublished state is newer."""
    other = subject.rsplit(".", 1)[0] + ".unpublished"
    if other not in states:
        return True
    try:
        return float(json.loads(data)["updated_at"]) >= float(json.loads(states[other])["updated_at"])
    except (ValueError, KeyError, TypeError):
        return True


async def _last_per_subject(js: JetStreamContext, subject: str, timeout: float) -> dict[str, bytes]:
    """The last message of every subject matching `subject` (empty stream: {})."""
    info = await js.stream_info(streams.DASHBOARDS)
    if not info.state.messages:
        return {}
    found: dict[str, bytes] = {}
    sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.LAST_PER_SUBJECT)
    try:
        async with asyncio.timeout(timeout):
            while True:
                msg = await sub.next_msg(timeout=timeout)
                found[msg.subject] = msg.data
                if msg.metadata.num_pending == 0:
                    return found
    finally:
        await sub.unsubscribe()


def _folder_findings(folder: Path, overview_uid: str) -> Iterator[tuple[str, str, str, str]]:
    if not folder.is_dir():
        yield (
            FAIL,
            "folder",
            f"{folder} does not exist",
            "run this where the dashboards volume is mounted (e.g. `docker compose exec dashboards "
            "python -m pluto.doctor`) or pass --dashboards-dir",
        )
        return
    probe = folder / f".pluto-doctor-{uuid.uuid4().hex}.tmp"  # a dot-file: Grafana never reads it
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        yield (
            FAIL,
            "folder",
            f"{folder} is not writable by uid {os.getuid()}: {exc.strerror}",
            "the dashboards service writes here: the volume must be owned by its user "
            "(compose: the `dashboards-volume` init service; k8s: fsGroup 10001)",
        )
        return
    files = sorted(p for p in folder.glob("*.json") if p.is_file())
    if not files:
        yield (
            FAIL,
            "folder",
            f"{folder} is writable but holds no dashboard files",
            "the dashboards service writes them: is it running, and does it mount this same volume "
            "at PLUTO_DASHBOARDS_DASHBOARDS_DIR?",
        )
        return
    bad = []
    for path in files:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or not doc.get("uid"):
                bad.append(path.name)
        except (OSError, ValueError):
            bad.append(path.name)
    names = {p.name for p in files}
    if bad:
        yield (
            FAIL,
            "folder",
            f"{len(bad)} of {len(files)} files are not valid dashboards: {', '.join(bad[:5])}",
            "Grafana skips them; the dashboards service rewrites its own files on reconcile, "
            "remove anything else",
        )
    elif f"{overview_uid}.json" not in names:
        yield (
            WARN,
            "folder",
            f"{len(files)} dashboard files, but no {overview_uid}.json",
            "the dashboards service writes the overview at start: read its log",
        )
    else:
        yield (PASS, "folder", f"{folder}: writable, {len(files)} dashboard files", "")


async def run_doctor(config: DoctorConfig, out: TextIO | None = None) -> Report:
    return await Doctor(config, Report(out=out)).run()


def configure(args: argparse.Namespace) -> DoctorConfig:
    config = DoctorConfig.from_env()
    for name in (
        "nats_url",
        "prometheus_url",
        "exporter_job",
        "grafana_url",
        "grafana_user",
        "datasource_uid",
        "overview_uid",
        "timeout",
    ):
        value = getattr(args, name, None)
        if value is not None:
            setattr(config, name, value)
    if args.dashboards_dir is not None:
        config.dashboards_dir = args.dashboards_dir
    config.skip = frozenset(args.skip or ())
    return config


def cmd_doctor(args: argparse.Namespace) -> int:
    config = configure(args)
    print(
        f"pluto doctor: NATS {config.nats_url}, Prometheus {config.prometheus_url}, "
        f"Grafana {config.grafana_url} as {config.grafana_user!r}, folder {config.dashboards_dir}",
        flush=True,
    )
    report = asyncio.run(run_doctor(config, out=sys.stdout))
    failed = report.failed
    if failed:
        print(f"pluto doctor: {len(failed)} check(s) failed: {', '.join(f.check for f in failed)}")
        return 1
    print("pluto doctor: all checks passed")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register `doctor` on the `pluto` command line (its own `func`)."""
    doctor = subparsers.add_parser(
        "doctor",
        help="check NATS, streams, Prometheus, Grafana and the provisioned folder; say what is wrong",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doctor.add_argument("--nats-url", help="default: PLUTO_NATS_URL")
    doctor.add_argument("--prometheus-url", help="default: PLUTO_PROMETHEUS_URL, else http://127.0.0.1:9090")
    doctor.add_argument("--exporter-job", help=f"Prometheus job of the exporter (default {EXPORTER_JOB})")
    doctor.add_argument(
        "--grafana-url",
        help="with the sub-path; default: PLUTO_DASHBOARDS_GRAFANA_URL, else http://127.0.0.1:3000/grafana",
    )
    doctor.add_argument(
        "--grafana-user", help="auth-proxy login (default: PLUTO_DASHBOARDS_GRAFANA_USER, admin)"
    )
    doctor.add_argument(
        "--dashboards-dir", type=Path, help="provisioned folder (default: PLUTO_DASHBOARDS_DASHBOARDS_DIR)"
    )
    doctor.add_argument("--datasource-uid", help=f"default {DATASOURCE_UID}")
    doctor.add_argument("--overview-uid", help=f"default {OVERVIEW_UID}")
    doctor.add_argument("--timeout", type=float, help="seconds per request (default 5)")
    doctor.add_argument("--skip", action="append", choices=CHECKS, help="leave a part out (repeatable)")
    doctor.set_defaults(func=cmd_doctor)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pluto")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["doctor", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
