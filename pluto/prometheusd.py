"""A real Prometheus for the embedded default and the tests.

    prometheus = PrometheusProcess(["127.0.0.1:9110"])
    await prometheus.start()          # free port, temp data dir, waits for /-/ready
    print(prometheus.url)             # say where it is
    await prometheus.query("total_hashrate")
    await prometheus.stop()

It runs the `prometheus` binary found on PATH (Debian package `prometheus`)
with the configuration of `deploy/prometheus/` (rendered by
`prometheus_config`), the reference's retention limits, and its own data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from pluto.natsd import free_port
from services.exporter.prometheus_config import (
    RETENTION_SIZE,
    RETENTION_TIME,
    RULES_FILE,
    render_prometheus_config,
    render_recording_rules,
)

__all__ = ["PrometheusError", "PrometheusProcess", "find_prometheus", "render_prometheus_config"]


class PrometheusError(RuntimeError):
    pass


def find_prometheus() -> str | None:
    """The `prometheus` binary on PATH, or None."""
    return shutil.which("prometheus")


class PrometheusProcess:
    """One Prometheus server process scraping the given exporters."""

    def __init__(
        self,
        exporter_targets: list[str],
        *,
        scrape_interval: str = "5s",
        evaluation_interval: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        workdir: Path | None = None,
        binary: str | None = None,
        retention_time: str = RETENTION_TIME,
        retention_size: str = RETENTION_SIZE,
    ) -> None:
        self.exporter_targets = list(exporter_targets)
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval or scrape_interval
        self.host = host
        self._fixed_port = port
        self.port = port or 0
        self._workdir = workdir
        self._own_workdir = workdir is None
        self._binary = binary
        self.retention = (retention_time, retention_size)
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise PrometheusError("not started")
        return self._workdir

    @property
    def log_file(self) -> Path:
        return self.workdir / "prometheus.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def write_config(self) -> Path:
        """Write prometheus.yml and its rules into the work dir; return the config's path."""
        (self.workdir / "rules").mkdir(parents=True, exist_ok=True)
        (self.workdir / RULES_FILE).write_text(render_recording_rules())
        config = self.workdir / "prometheus.yml"
        config.write_text(
            render_prometheus_config(self.exporter_targets, self.scrape_interval, self.evaluation_interval)
        )
        return config

    async def start(self, ready_timeout: float = 30.0) -> None:
        binary = self._binary or find_prometheus()
        if binary is None:
            raise PrometheusError("prometheus not found on PATH (Debian/Ubuntu: apt-get install prometheus)")
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="pluto-prometheus-"))
        config = self.write_config()
        attempts = 1 if self._fixed_port else 3  # a free port can be taken before we bind it
        for attempt in range(attempts):
            self.port = self._fixed_port or free_port()
            try:
                await self._spawn(binary, config, ready_timeout)
                return
            except PrometheusError:
                await self._terminate()
                if attempt == attempts - 1 or "address already in use" not in self._log_tail():
                    raise

    async def _spawn(self, binary: str, config: Path, ready_timeout: float) -> None:
        with open(self.log_file, "ab") as log:  # noqa: ASYNC230 - opened once, before spawning
            self._process = await asyncio.create_subprocess_exec(
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--storage.tsdb.retention.time={self.retention[0]}",
                f"--storage.tsdb.retention.size={self.retention[1]}",
                f"--web.listen-address={self.host}:{self.port}",
                "--web.enable-lifecycle",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C goes to our owner, which stops us in order
            )
        await self._wait_ready(ready_timeout)

    async def _wait_ready(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while loop.time() < deadline:
                if not self.running:
                    raise PrometheusError(
                        f"prometheus exited with {self._process and self._process.returncode}: "
                        f"{self._log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(f"{self.url}/-/ready") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise PrometheusError(f"prometheus not ready after {timeout}s: {self._log_tail()}")

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    async def stop(self) -> None:
        await self._terminate()
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    async def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def reload(self) -> None:
        """Re-read the configuration (after changing `exporter_targets`)."""
        self.write_config()
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.url}/-/reload") as resp:
                if resp.status != 200:
                    raise PrometheusError(f"reload failed: {resp.status} {await resp.text()}")

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; the result vector (`[{metric: {...}, value: [ts, "v"]}]`)."""
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.url}/api/v1/query", data={"query": expr}) as resp:
                body = await resp.json()
        if body.get("status") != "success":
            raise PrometheusError(f"query {expr!r} failed: {body.get('error', body)}")
        result = body["data"]["result"]
        if body["data"]["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return list(result)

    async def __aenter__(self) -> PrometheusProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
