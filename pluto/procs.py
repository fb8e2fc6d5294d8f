"""Child processes of `pluto up`: started with a ready check, stopped in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path | None
    ready_line: str | None = None
    _log_file: object | None = field(default=None, repr=False)
    _drain: asyncio.Task[None] | None = field(default=None, repr=False)


async def start_module(
    name: str,
    module: str,
    args: list[str],
    env: dict[str, str],
    log_path: Path,
    ready_pattern: str | None = None,
    ready_timeout: float = 20.0,
) -> Child:
    """`python -m module args` with its stderr in `log_path`.

    With `ready_pattern`, waits for a stdout line matching it (the child says
    where it listens); other stdout lines go to the log too.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "ab")  # noqa: ASYNC230 - lives as long as the child
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        stdout=asyncio.subprocess.PIPE if ready_pattern else log_file,
        stderr=log_file,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, **env},
        start_new_session=True,  # Ctrl-C reaches `pluto up` only; it stops children in order
    )
    child = Child(name, process, log_path, _log_file=log_file)
    if ready_pattern:
        assert process.stdout is not None
        pattern = re.compile(ready_pattern)
        try:
            async with asyncio.timeout(ready_timeout):
                while True:
                    raw = await process.stdout.readline()
                    if not raw:
                        raise RuntimeError(f"{name} exited before it was ready; see {log_path}")
                    line = raw.decode(errors="replace").strip()
                    if pattern.search(line):
                        child.ready_line = line
                        break
        except TimeoutError:
            await stop_child(child)
            raise RuntimeError(f"{name} not ready after {ready_timeout}s; see {log_path}") from None
        # Keep draining stdout into the log so the child never blocks on a full pipe.
        child._drain = asyncio.create_task(_drain(process.stdout, log_file))
    return child


async def _drain(stream: asyncio.StreamReader, sink: object) -> None:
    while raw := await stream.readline():
        sink.write(raw)  # type: ignore[attr-defined]
        sink.flush()  # type: ignore[attr-defined]


async def stop_child(child: Child, timeout: float = 10.0) -> int | None:
    process = child.process
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if child._log_file is not None:
        child._log_file.close()  # type: ignore[attr-defined]
    return process.returncode
