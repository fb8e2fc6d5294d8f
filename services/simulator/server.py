"""Run the simulator: in-process for tests and benchmarks, or from the CLI."""

from __future__ import annotations

import contextlib
import resource
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web

from services.simulator.app import create_app
from services.simulator.faults import Fault
from services.simulator.fleet import Fleet

# Thousands of devices polled concurrently mean thousands of sockets and bursts of connects.
_BACKLOG = 4096
_SHUTDOWN_SECONDS = 2.0


def raise_fd_limit() -> None:
    """Lift the soft open-files limit to the hard one: each polled device holds a socket."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def bind(host: str, port: int) -> socket.socket:
    """A bound, non-blocking listening socket; binding first is how port 0 learns its port."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def base_url_for(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass(eq=False)
class RunningSimulator:
    base_url: str
    fleet: Fleet
    runner: web.AppRunner

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def device_urls(self) -> list[str]:
        """Base URL per device, in index order: [0] is mockaxe1."""
        return self.fleet.device_urls

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def start_simulator(
    devices: int,
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int | None = None,
    *,
    reboot_seconds: float = 5.0,
    faults: Iterable[tuple[str, Fault]] = (),
    omit_mac: Iterable[str] = (),
) -> RunningSimulator:
    """Serve `devices` simulated devices; `port=0` picks a free port (see `.base_url`)."""
    raise_fd_limit()
    sock = bind(host, port)
    real_port = int(sock.getsockname()[1])
    fleet = Fleet(base_url_for(host, real_port), seed=seed, reboot_seconds=reboot_seconds)
    fleet.add(devices)
    try:
        for name, fault in faults:
            fleet.apply_fault(name, fault)
        for name in omit_mac:
            fleet.set_omit_mac(name)
    except Exception:
        sock.close()
        raise
    runner = web.AppRunner(
        create_app(fleet),
        access_log=None,  # a log line per request would cost more than the request
        handler_cancellation=True,  # a client that gives up ends a held (timeout) request
        shutdown_timeout=_SHUTDOWN_SECONDS,
    )
    await runner.setup()
    try:
        await web.SockSite(runner, sock, backlog=_BACKLOG).start()
    except BaseException:
        await runner.cleanup()
        sock.close()
        raise
    return RunningSimulator(base_url=fleet.base_url, fleet=fleet, runner=runner)
