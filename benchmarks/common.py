"""Pieces the benchmarks share: processes on loopback, CPU time, percentiles, output."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Proc:
    process: asyncio.subprocess.Process
    ready_line: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def start_python(
    module: str,
    *args: str,
    env: dict[str, str] | None = None,
    ready: str | None = None,
    log: Path | None = None,
) -> Proc:
    """`python -m module args`; with `ready`, waits for a stdout line matching it."""
    sink = open(log, "ab") if log else asyncio.subprocess.DEVNULL  # noqa: ASYNC230
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        stdout=asyncio.subprocess.PIPE if ready else sink,
        stderr=sink,
        env={**os.environ, **(env or {})},
    )
    proc = Proc(process)
    if ready:
        assert process.stdout is not None
        async with asyncio.timeout(60):
            while True:
                line = (await process.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"{module} exited before it was ready")
                if re.search(ready, line):
                    proc.ready_line = line.strip()
                    break
    return proc


def row(
    name: str,
    value: float,
    unit: str,
    baseline: float | None = None,
    baseline_name: str = "",
) -> str:
    text = f"{name:<46} {_figure(value):>12} {unit}"
    if baseline is not None and baseline > 0:
        text += f"   baseline {baseline_name}: {_figure(baseline)} {unit}   ratio {value / baseline:.2f}"
    return text


def _figure(value: float) -> str:
    """Three significant digits at least: 0.256 s, 3.42 ms, 12,345 req/s."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"
