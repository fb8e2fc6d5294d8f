"""The normalizer on its own: both firmware generations, partial validity, secrets."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.poller.normalize import FIELDS, SECRET_KEYS, normalize
from services.poller.polling import ok_reading_json
from shared.models import DeviceReading, Firmware

LEGACY = {
    "hostname": "bitaxe-legacy",
    "macAddr": "aa:bb:cc:dd:ee:01",
    "version": "v2.1.0",
    "power": 14.5,
    "voltage": 5100,
    "current": 2500,
    "temp": 55.5,
    "hashRate": 720.5,
    "fanSpeedRpm": 4100,
    "fanspeed": 80,
    "coreVoltage": 1200,
    "coreVoltageActual": 1187,
    "frequency": 485,
    "sharesAccepted": 1234,
    "sharesRejected": 3,
    "uptimeSeconds": 3600,
    "freeHeap": 123456,
    "bestDiff": "4.93G",
    "bestSessionDiff": "25.1k",
    "stratumURL": "solo.ckpool.org",
    "stratumPort": 3333,
    "stratumUser": "bc1q.worker",
    "stratumPassword": "x-secret",
    "wifiPassword": "wifi-secret",
    "ASICModel": "BM1366",
}
NEW = {
    "hostname": "bitaxe-new",
    "macAddr": "AA:BB:CC:DD:EE:02",
    "version": "v2.15.0",
    "power": 42.0,
    "voltage": 12000,
    "current": 6500,
    "temp": 61,
    "vrTemp": 70,
    "hashRate": 3000.0,
    "hashRate_1m": 2990.0,
    "hashRate_10m": 3010.0,
    "hashRate_1h": 3005.0,
    "hashRate_1d": 3001.0,
    "expectedHashrate": 3050,
    "errorPercentage": 0.5,
    "fanspeed": 65,
    "fanrpm": 5200,
    "fan2rpm": 0,
    "bestDiff": 4930000000,
    "wifiPass": "w",
    "sharesAccepted": 15000,
    "sharesRejected": 12,
    "wifiRSSI": -60,
}


def reading_of(payload: dict) -> DeviceReading:
    n = normalize(payload)
    return DeviceReading(
        device_id="d1",
        ok=True,
        poll_started_at=0,
        poll_finished_at=0,
        firmware=n.firmware,
        invalid_fields=n.invalid_fields,
        **n.values,
    )


def test_legacy_payload_is_normalized_to_si_units() -> None:
    r = reading_of(LEGACY)
    assert r.firmware is Firmware.LEGACY
    assert r.voltage_volts == pytest.approx(5.1)
    assert r.current_amps == pytest.approx(2.5)
    assert r.core_voltage_actual_volts == pytest.approx(1.187)
    assert r.fan_rpm == 4100 and r.fan_percent == 80
    assert r.best_diff == pytest.approx(4.93e9) and r.best_session_diff == pytest.approx(25.1e3)
    assert r.efficiency_jth == pytest.approx(14.5 / 0.7205)
    assert r.mac == "AA:BB:CC:DD:EE:01" and r.invalid_fields == ()


def test_new_payload_is_normalized() -> None:
    r = reading_of(NEW)
    assert r.firmware is Firmware.NEW
    assert r.hashrate_1m_ghs == 2990.0 and r.hashrate_1d_ghs == 3001.0
    assert r.vr_temp_celsius == 70 and r.fan2_rpm == 0
    assert r.best_diff == 4930000000 and r.wifi_rssi == -60


def test_zero_is_a_value() -> None:
    r = reading_of({**NEW, "hashRate": 0, "power": 0, "fanspeed": 0, "sharesAccepted": 0})
    assert r.hashrate_ghs == 0 and r.power_watts == 0 and r.fan_percent == 0
    assert r.shares_accepted == 0
    assert r.efficiency_jth is None  # J/TH is undefined at 0 GH/s, not infinite


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("power", "abc"),
        ("power", -3),
        ("temp", math.nan),
        ("temp", 5000),
        ("hashRate", math.inf),
        ("hashRate", {"x": 1}),
        ("sharesAccepted", 1.5),
        ("voltage", True),
        ("bestDiff", "lots"),
        # The stdlib decoder (used when a body has NaN) keeps integers too large for a float.
        ("power", 10**400),
        ("sharesAccepted", 10**400),
        ("macAddr", ["aa:bb:cc:dd:ee:ff"]),  # unhashable, where the MAC parse is cached
        ("macAddr", "not-a-mac"),
    ],
)
def test_one_bad_field_costs_only_itself(field: str, value: object) -> None:
    n = normalize({**NEW, field: value})
    assert n.invalid_fields == (field,)
    assert n.usable
    target = next(f.target for f in FIELDS if field in f.sources)
    derived = {"efficiency_jth", "hashrate_ghs"}  # computed from, or falling back to, other fields
    expected = {k: v for k, v in normalize(NEW).values.items() if k not in derived | {target}}
    assert {k: v for k, v in n.values.items() if k not in derived} == expected


def test_null_is_not_reported_not_invalid() -> None:
    n = normalize({**NEW, "power": None})
    assert "power_watts" not in n.values and n.invalid_fields == ()


def test_numeric_strings_are_accepted() -> None:
    assert normalize({"power": "12.5"}).values["power_watts"] == 12.5


def test_secrets_never_come_out() -> None:
    payload = {**LEGACY, **NEW, **{key: f"leak-{key}" for key in SECRET_KEYS}}
    dumped = reading_of(payload).model_dump_json()
    assert "leak-" not in dumped and "secret" not in dumped


def test_hostile_hostnames_are_carried_as_bounded_printable_data() -> None:
    for hostname in ["../../x", "a\"b{c}'d", "矿机-⛏", "1miner", "h" * 300, "tab\there\x00"]:
        r = reading_of({**NEW, "hostname": hostname})
        assert r.hostname is not None and len(r.hostname) <= 256 and r.hostname.isprintable()


def test_payload_without_measurements_is_not_usable() -> None:
    assert not normalize({"hostname": "x"}).usable
    assert not normalize({"power": "bad"}).usable


def test_every_normalized_field_is_a_reading_field() -> None:
    # Consumers ignore unknown keys, so a misnamed target would vanish without a sound.
    targets = {f.target for f in FIELDS} | {"efficiency_jth"}
    assert targets <= set(DeviceReading.model_fields)
    # ok_reading_json spreads the values after the envelope; none may overwrite it.
    envelope = {"device_id", "ok", "error", "error_message", "poll_started_at", "poll_finished_at"}
    assert not targets & (envelope | {"firmware", "invalid_fields"})


def assert_encoding_matches_model(payload: dict[str, Any]) -> None:
    """The hot path's orjson encoding says exactly what the validated model says."""
    n = normalize(payload)
    encoded = ok_reading_json("d1", 0.0, 0.0, n)
    assert DeviceReading.model_validate_json(encoded) == reading_of(payload)


@pytest.mark.parametrize(
    "payload",
    [
        LEGACY,
        NEW,
        {**NEW, "hostname": "h" * 300, "version": "v\x00" * 50, "power": math.nan, "temp": "hot"},
        {**LEGACY, "bestDiff": "1e400", "sharesAccepted": 10**400, "macAddr": "zz"},
        {"power": 0},
    ],
    ids=["legacy", "new", "hostile", "faulty", "minimal"],
)
def test_reading_encoding_matches_the_model(payload: dict[str, Any]) -> None:
    assert_encoding_matches_model(payload)


_KEYS = sorted({key for f in FIELDS for key in f.sources} | SECRET_KEYS | {"unknown"})
_JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300),
    st.sampled_from(["4.93G", "25.1k", " 12 ", "1e3", "NaN", "aa:bb:cc:dd:ee:ff", "AA-BB-CC-DD-EE-FF"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(_KEYS), _JSON_VALUES))
def test_any_payload_normalizes_to_a_valid_reading_or_none(payload: dict[str, Any]) -> None:
    # Whatever a device sends: no exception, and a usable result is a valid reading.
    if normalize(payload).usable:
        assert_encoding_matches_model(payload)
