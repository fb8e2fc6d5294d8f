"""Fault modes: how a simulated device can be told to misbehave.

A fault is a pydantic model per mode (the `mode` field discriminates), so the
control API and the CLI validate parameters the same way. This module only
describes faults and rewrites payload fields; the HTTP side lives in
`responses.py`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, field_validator

# Hostnames that break naive code: path traversal, quoting, non-ASCII, a leading digit, length.
HOSTILE_HOSTNAMES: tuple[str, ...] = (
    "../../x",
    "a\"b{c}'d",
    "矿机-⛏",
    "1miner",
    "h" * 300,
)
DEFAULT_OVERSIZED_BYTES = 4 * 1024 * 1024


class FaultMode(StrEnum):
    """The modes, for reference; the models below carry them as plain string literals
    so that validation errors read `'timeout'`, not an enum repr."""

    TIMEOUT = "timeout"
    STATUS = "status"
    INVALID_JSON = "invalid_json"
    OVERSIZED = "oversized"
    SLOW_BODY = "slow_body"
    WRONG_TYPES = "wrong_types"
    BAD_VALUES = "bad_values"
    HOSTILE_HOSTNAME = "hostile_hostname"
    NOT_OBJECT = "not_object"
    REBOOT = "reboot"


class _Fault(BaseModel):
    # A misspelt parameter should fail loudly rather than silently use the default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutFault(_Fault):
    """Accept the request, never answer (until the client gives up)."""

    mode: Literal["timeout"] = "timeout"


class StatusFault(_Fault):
    """Answer with an HTTP error status and a small text body."""

    mode: Literal["status"] = "status"
    code: int = Field(default=500, ge=400, le=599)


class InvalidJsonFault(_Fault):
    """200 with the payload cut in half: not parseable JSON."""

    mode: Literal["invalid_json"] = "invalid_json"


class OversizedFault(_Fault):
    """200 with a valid JSON object of exactly `size` bytes (the payload plus padding)."""

    mode: Literal["oversized"] = "oversized"
    size: int = Field(default=DEFAULT_OVERSIZED_BYTES, ge=64, le=512 * 1024 * 1024)
    # Without Content-Length the client cannot refuse up front; it must cap while reading.
    chunked: bool = False


class SlowBodyFault(_Fault):
    """200, headers at once, then `chunk` bytes of the body every `interval` seconds."""

    mode: Literal["slow_body"] = "slow_body"
    interval: float = Field(default=0.5, gt=0, le=60)
    chunk: int = Field(default=4, ge=1, le=65_536)


class WrongTypesFault(_Fault):
    """Some numeric fields as strings, lists or objects; the rest fine."""

    mode: Literal["wrong_types"] = "wrong_types"


class BadValuesFault(_Fault):
    """NaN, Infinity, negative power/hashrate, absurd temperature in some fields."""

    mode: Literal["bad_values"] = "bad_values"


class HostileHostnameFault(_Fault):
    mode: Literal["hostile_hostname"] = "hostile_hostname"
    hostname: str = Field(default=HOSTILE_HOSTNAMES[1], max_length=100_000)


def _a_list() -> JsonValue:
    return [1, 2, 3]


class NotObjectFault(_Fault):
    """200 with valid JSON that is not an object."""

    mode: Literal["not_object"] = "not_object"
    value: JsonValue = Field(default_factory=_a_list)

    @field_validator("value")
    @classmethod
    def _not_an_object(cls, value: JsonValue) -> JsonValue:
        if isinstance(value, dict):
            raise ValueError("value must not be a JSON object")
        return value


class RebootFault(_Fault):
    """One-shot: the device reboots (503 meanwhile); the fault does not stay set."""

    mode: Literal["reboot"] = "reboot"
    seconds: float | None = Field(default=None, ge=0, le=3600)


Fault = Annotated[
    TimeoutFault
    | StatusFault
    | InvalidJsonFault
    | OversizedFault
    | SlowBodyFault
    | WrongTypesFault
    | BadValuesFault
    | HostileHostnameFault
    | NotObjectFault
    | RebootFault,
    Field(discriminator="mode"),
]
FAULT_ADAPTER: TypeAdapter[Fault] = TypeAdapter(Fault)


def make_fault(mode: str, **params: Any) -> Fault:
    """Validate a mode and its parameters (raises pydantic.ValidationError)."""
    return FAULT_ADAPTER.validate_python({"mode": mode, **params})


def parse_fault_arg(text: str) -> tuple[str, Fault]:
    """`mockaxe3=status,code=503` -> ("mockaxe3", StatusFault(code=503)).

    Parameter values are read as JSON when they parse (numbers, booleans,
    quoted strings), else taken as plain strings.
    """
    name, sep, spec = text.partition("=")
    if not sep or not name.strip() or not spec.strip():
        raise ValueError(f"fault {text!r}: expected NAME=MODE[,key=value...]")
    mode, *pairs = spec.split(",")
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"fault {text!r}: parameter {pair!r} is not key=value")
        try:
            params[key.strip()] = json.loads(raw)
        except ValueError:
            params[key.strip()] = raw
    return name.strip(), make_fault(mode.strip(), **params)


# Field rewrites for the payload-level faults. Only fields the payload already has
# are touched, so a legacy device does not suddenly grow new-firmware fields.
WRONG_TYPE_VALUES: Mapping[str, Any] = MappingProxyType(
    {
        "power": "abc",
        "temp": [1],
        "hashRate": {"x": 1},
        "voltage": "12.5V",
        "frequency": True,
        "sharesAccepted": "12k",
        "hashRate_1m": "fast",
        "fanrpm": [3000],
    }
)
BAD_VALUES: Mapping[str, Any] = MappingProxyType(
    {
        "power": -12.5,
        "hashRate": -700.0,
        "temp": 5000.0,
        "voltage": float("nan"),
        "current": float("inf"),
        "sharesRejected": -5,
        "hashRate_1m": float("nan"),
        "hashRate_10m": float("inf"),
        "vrTemp": float("-inf"),
    }
)


def _replace_present(payload: dict[str, Any], values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if key in payload:
            payload[key] = value


def rewrite_fields(payload: dict[str, Any], fault: Fault, *, info: bool) -> None:
    """Apply a field-level fault to a payload in place (a no-op for other modes)."""
    if isinstance(fault, WrongTypesFault):
        _replace_present(payload, WRONG_TYPE_VALUES)
    elif isinstance(fault, BadValuesFault):
        _replace_present(payload, BAD_VALUES)
    elif isinstance(fault, HostileHostnameFault) and info:
        payload["hostname"] = fault.hostname


FIELD_FAULTS: tuple[type[_Fault], ...] = (WrongTypesFault, BadValuesFault, HostileHostnameFault)
