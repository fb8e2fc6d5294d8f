"""Who each simulated device is: the facts that stay fixed while the simulator runs.

Everything here is derived from the device index (and the seed), so the same
`--seed` gives the same fleet, and `mockaxe7` is the same device whichever way
the fleet grew to include it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class Generation(StrEnum):
    LEGACY = "legacy"  # ESP-Miner ~2.1: `hashRate` only, string bestDiff, `fanSpeedRpm`
    NEW = "new"  # ESP-Miner 2.15: per-window hashrates, numeric bestDiff, vrTemp, fanrpm


@dataclass(frozen=True, slots=True)
class Pool:
    url: str
    port: int


# The reference system's pools plus one it does not know, so pool labelling has a miss case.
POOLS: tuple[Pool, ...] = (
    Pool("mine.ocean.xyz", 3334),
    Pool("solo.ckpool.org", 3333),
    Pool("solo.ckpool.org", 4334),
    Pool("umbrel.local", 2018),
    Pool("stratum.unknown-pool.invalid", 3333),
)


@dataclass(frozen=True, slots=True)
class Board:
    asic_model: str
    board_version: str
    device_model: str
    asic_count: int
    small_core_count: int
    frequency: int  # MHz
    core_voltage: int  # mV
    frequency_options: tuple[int, ...]
    voltage_options: tuple[int, ...]


LEGACY_BOARDS: tuple[Board, ...] = (
    Board("BM1366", "204", "Ultra", 1, 894, 485, 1200, (400, 425, 450, 485, 525), (1100, 1150, 1200, 1250)),
    Board("BM1397", "0.11", "Max", 1, 672, 425, 1400, (400, 425, 450, 475), (1300, 1350, 1400, 1450)),
)
_BM1370_MHZ = (400, 490, 525, 575, 600)
_BM1370_MV = (1000, 1060, 1100, 1150, 1200)
NEW_BOARDS: tuple[Board, ...] = (
    Board("BM1370", "601", "Gamma", 1, 2040, 525, 1150, _BM1370_MHZ, _BM1370_MV),
    Board("BM1368", "401", "Supra", 1, 1276, 490, 1166, (400, 425, 450, 490, 525), (1100, 1150, 1166, 1200)),
    Board("BM1370", "800", "GammaTurbo", 2, 2040, 525, 1150, _BM1370_MHZ, _BM1370_MV),
)

LEGACY_VERSION = "v2.1.0"
NEW_VERSION = "v2.15.0"
# Secrets carry this marker so a test can grep any output for a leak.
SECRET_MARKER = "SIMSECRET"
_BTC_ADDRESS = "bc1qsimulatorxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"


def device_name(index: int) -> str:
    return f"mockaxe{index}"


def generation_for(index: int) -> Generation:
    return Generation.LEGACY if index % 2 else Generation.NEW


def mac_for(index: int) -> str:
    """`02:00:00:00:00:01` for device 1: locally administered, so never a real vendor's MAC."""
    return f"02:00:00:{(index >> 16) & 0xFF:02X}:{(index >> 8) & 0xFF:02X}:{index & 0xFF:02X}"


def ipv4_for(index: int) -> str:
    return f"10.{(index >> 16) & 0xFF}.{(index >> 8) & 0xFF}.{index & 0xFF}"


def secret(name: str, what: str) -> str:
    return f"{SECRET_MARKER}-{name}-{what}"


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    index: int
    name: str
    generation: Generation
    mac: str
    ipv4: str
    board: Board
    pool: Pool
    fallback_pool: Pool
    best_diff: float
    share_rate: float  # accepted shares per second of uptime
    reject_ratio: float  # rejected per accepted
    start_uptime: float  # seconds already up when the simulator starts
    start_accepted: int
    start_rejected: int

    @property
    def stratum_user(self) -> str:
        return f"{_BTC_ADDRESS}.{self.name}"


def device_rng(index: int, seed: int | None) -> random.Random:
    # A string seed is hashed (sha512) by random.Random: stable across runs and processes.
    return random.Random(f"pluto-sim:{seed}:{index}") if seed is not None else random.Random()


def make_profile(index: int, seed: int | None) -> DeviceProfile:
    rng = device_rng(index, seed)
    generation = generation_for(index)
    boards = LEGACY_BOARDS if generation is Generation.LEGACY else NEW_BOARDS
    # Spread pools by index, not randomly, so every pool is present in any fleet of 5+.
    pool = POOLS[(index - 1) % len(POOLS)]
    return DeviceProfile(
        index=index,
        name=device_name(index),
        generation=generation,
        mac=mac_for(index),
        ipv4=ipv4_for(index),
        board=boards[(index // 2) % len(boards)],
        pool=pool,
        fallback_pool=POOLS[index % len(POOLS)],
        best_diff=float(int(10 ** rng.uniform(8.0, 10.5))),
        share_rate=rng.uniform(0.5, 2.0),
        reject_ratio=rng.uniform(0.0005, 0.003),
        start_uptime=rng.uniform(3_600.0, 30 * 86_400.0),
        start_accepted=rng.randint(10_000, 20_000),
        start_rejected=rng.randint(0, 50),
    )


_SUFFIXES = ("", "k", "M", "G", "T", "P", "E")


def format_difficulty(value: float) -> str:
    """Old firmware's string form of a difficulty: `4.93G`, `25.1k`, `1.2M`."""
    step = 0
    while value >= 1000.0 and step < len(_SUFFIXES) - 1:
        value /= 1000.0
        step += 1
    text = f"{value:.3g}"
    if "e" in text:  # 999.95 rounds to 1e+03: show it as 1000 rather than in exponent form
        text = f"{value:.0f}"
    return f"{text}{_SUFFIXES[step]}"
