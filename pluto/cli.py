"""The `pluto` command line: run the system, run one service, manage the device registry."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import runpy
import sys
import time
from pathlib import Path

import aiohttp
import nats

from pluto import doctor
from shared.ids import InvalidDeviceId, device_id_from_mac, device_id_from_url, validate_device_id
from shared.models import DeviceAdded
from shared.registry import publish_added, publish_removed, read_registry
from shared.settings import BusSettings
from shared.streams import ensure_streams

SERVICE_NAMES = ("poller", "exporter", "dashboards", "api", "simulator")
DEFAULT_DATA_DIR = Path(".pluto")


def _nats_url() -> str:
    """PLUTO_NATS_URL, else the URL a running `pluto up` left in ./.pluto, else the default."""
    if "PLUTO_NATS_URL" in os.environ:
        return BusSettings().nats_url
    written = DEFAULT_DATA_DIR / "nats_url"
    if written.exists():
        return written.read_text().strip()
    return BusSettings().nats_url


async def _with_js(action):  # type: ignore[no-untyped-def]
    client = await nats.connect(_nats_url(), name="pluto-cli", connect_timeout=5, max_reconnect_attempts=0)
    try:
        js = client.jetstream()
        await ensure_streams(js)
        return await action(js)
    finally:
        await client.close()


async def _identify(url: str, timeout: float = 3.0) -> tuple[str | None, str | None]:
    """Ask the device for its MAC and hostname (best effort; old firmware has no MAC)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
            http.get(url.rstrip("/") + "/api/system/info") as resp,
        ):
            if resp.status != 200:
                return None, None
            body = await resp.content.read(256 * 1024)
        info = json.loads(body)
    except (aiohttp.ClientError, TimeoutError, ValueError, OSError):
        return None, None
    if not isinstance(info, dict):
        return None, None
    mac = info.get("macAddr") if isinstance(info.get("macAddr"), str) else None
    hostname = info.get("hostname") if isinstance(info.get("hostname"), str) else None
    return mac, hostname[:256] if hostname else None


def cmd_devices_add(args: argparse.Namespace) -> int:
    labels = dict(item.split("=", 1) for item in args.label or [])
    mac, hostname = (None, None) if args.no_probe else asyncio.run(_identify(args.url))
    device_id = args.id or (mac and device_id_from_mac(mac)) or device_id_from_url(args.url)
    try:
        device = DeviceAdded(
            id=device_id, url=args.url, hostname=hostname, mac=mac, labels=labels, at=time.time()
        )
    except ValueError as exc:
        print(f"pluto: cannot register {args.url}: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_with_js(lambda js: publish_added(js, device)))
    print(f"added {device.id} ({device.url})")
    return 0


def cmd_devices_remove(args: argparse.Namespace) -> int:
    try:
        validate_device_id(args.id)
    except InvalidDeviceId as exc:
        print(f"pluto: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_with_js(lambda js: publish_removed(js, args.id)))
    print(f"removed {args.id}")
    return 0


def cmd_devices_list(args: argparse.Namespace) -> int:
    devices = asyncio.run(_with_js(read_registry))
    if args.json:
        print(json.dumps([d.model_dump(mode="json") for d in devices.values()], indent=2))
    else:
        for device in devices.values():
            print(f"{device.id}\t{device.url}\t{device.hostname or ''}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    sys.argv = [f"services.{args.service}", *args.rest]
    runpy.run_module(f"services.{args.service}", run_name="__main__", alter_sys=True)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from pluto.up import UpOptions, run_up

    options = UpOptions(
        data_dir=args.data_dir,
        devices=args.devices,
        nats_port=args.nats_port,
        simulator_port=args.simulator_port,
        interval_s=args.interval,
        status_every_s=args.status_every,
        exporter_port=args.exporter_port,
        api_port=args.api_port,
        grafana_url=args.grafana_url,
    )
    return asyncio.run(run_up(options))


def cmd_asyncapi(args: argparse.Namespace) -> int:
    from pluto.contract import asyncapi_json

    print(asyncapi_json())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pluto", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run everything locally: NATS, simulator, all services")
    up.add_argument("--devices", type=int, default=6, help="simulated devices (default 6)")
    up.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    up.add_argument("--nats-port", type=int, default=None)
    up.add_argument("--simulator-port", type=int, default=None)
    up.add_argument("--interval", type=float, default=5.0, help="poll interval in seconds")
    up.add_argument("--status-every", type=float, default=10.0, help="seconds between status lines")
    up.add_argument("--exporter-port", type=int, default=None, help="default 9110, else a free port")
    up.add_argument("--api-port", type=int, default=None, help="default 8080, else a free port")
    up.add_argument(
        "--grafana-url",
        default="http://127.0.0.1:3000/grafana",
        help="Grafana's base URL, sub-path included (used when it answers)",
    )
    up.set_defaults(func=cmd_up)

    run = sub.add_parser("run", help="run one service in the foreground")
    run.add_argument("service", choices=SERVICE_NAMES)
    run.add_argument("rest", nargs=argparse.REMAINDER)
    run.set_defaults(func=cmd_run)

    devices = sub.add_parser("devices", help="the device registry (events on NATS)")
    dsub = devices.add_subparsers(dest="devices_command", required=True)
    add = dsub.add_parser("add", help="register a device by its base URL")
    add.add_argument("url")
    add.add_argument("--id", help="device id (default: from the MAC the device reports, else the URL)")
    add.add_argument("--label", action="append", metavar="KEY=VALUE")
    add.add_argument("--no-probe", action="store_true", help="do not ask the device for its MAC")
    add.set_defaults(func=cmd_devices_add)
    remove = dsub.add_parser("remove", help="unregister a device")
    remove.add_argument("id")
    remove.set_defaults(func=cmd_devices_remove)
    listing = dsub.add_parser("list", help="list registered devices")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_devices_list)

    api = sub.add_parser("asyncapi", help="print the bus contract as an AsyncAPI document")
    api.set_defaults(func=cmd_asyncapi)

    doctor.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (nats.errors.NoServersError, nats.errors.TimeoutError, OSError) as exc:
        print(f"pluto: cannot reach NATS at {_nats_url()}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
