"""CLI: `python -m services.simulator --devices N --port P [--host H] [--seed S] [--fault name=mode]...`

Prints exactly one line to stdout once it accepts connections:
`simulator listening on http://HOST:PORT with N devices`. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any

from pydantic import ValidationError

from services.simulator.faults import Fault, parse_fault_arg
from services.simulator.server import start_simulator
from services.simulator.settings import SimulatorSettings
from shared.logs import setup_logging

log = logging.getLogger("pluto.simulator")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.simulator", description="AxeOS device simulator"
    )
    # Defaults are None so that only flags actually given override the environment.
    parser.add_argument("--devices", type=int, help="number of devices (PLUTO_SIM_DEVICES)")
    parser.add_argument("--host", help="listen address (PLUTO_SIM_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port, 0 = any free (PLUTO_SIM_PORT)")
    parser.add_argument("--seed", type=int, help="seed for reproducible devices and values")
    parser.add_argument("--reboot-seconds", type=float, help="how long a reboot answers 503")
    parser.add_argument(
        "--fault",
        action="append",
        dest="faults",
        metavar="NAME=MODE[,k=v...]",
        help="start a device faulty, e.g. mockaxe3=timeout or mockaxe2=status,code=503",
    )
    parser.add_argument(
        "--omit-mac", action="append", metavar="NAME", help="serve this device without macAddr"
    )
    return parser.parse_args(argv)


def load_settings(args: argparse.Namespace) -> SimulatorSettings:
    given: dict[str, Any] = {k: v for k, v in vars(args).items() if v is not None}
    return SimulatorSettings(**given)


async def serve(settings: SimulatorSettings, faults: list[tuple[str, Fault]]) -> None:
    sim = await start_simulator(
        settings.devices,
        settings.host,
        settings.port,
        settings.seed,
        reboot_seconds=settings.reboot_seconds,
        faults=faults,
        omit_mac=settings.omit_mac,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The launcher waits for exactly this line.
    print(f"simulator listening on {sim.base_url} with {len(sim.fleet)} devices", flush=True)
    log.info("serving %d devices at %s/d/<name>", len(sim.fleet), sim.base_url)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
        faults = [parse_fault_arg(text) for text in settings.faults]
    except (ValidationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings, faults))
    except KeyError as exc:  # a --fault or --omit-mac naming a device that does not exist
        print(f"error: no such device: {exc.args[0]}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
