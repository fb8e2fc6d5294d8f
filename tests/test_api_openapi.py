"""The OpenAPI document matches the routes exactly, and schema-driven fuzzing of every
operation (schemathesis: valid and invalid inputs) finds no 5xx and no answer the
document does not describe."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from schemathesis import GenerationMode

from services.api.app import create_app, document
from services.api.settings import ApiSettings
from shared.subjects import OVERVIEW_KEY
from tests.api_helpers import AUTH, api_settings, reading
from tests.api_live import LiveStack

DOC_SETTINGS = api_settings("nats://127.0.0.1:4222", grafana_url="http://127.0.0.1:3000/grafana")
MAX_EXAMPLES = 50


def _routes(settings: ApiSettings) -> set[tuple[str, str]]:
    app = create_app(settings)
    return {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}


def _documented(settings: ApiSettings) -> set[tuple[str, str]]:
    return {
        (method.upper(), path) for path, ops in document(settings).get("paths", {}).items() for method in ops
    }


@pytest.mark.parametrize("grafana_url", ["http://127.0.0.1:3000/grafana", None])
def test_the_document_lists_exactly_the_routes(grafana_url: str | None) -> None:
    settings = api_settings("nats://127.0.0.1:4222", grafana_url=grafana_url)
    served, documented = _routes(settings), _documented(settings)
    assert served == documented
    assert any(path.startswith("/grafana/") for _, path in served) is (grafana_url is not None)


def test_every_operation_is_documented_with_its_errors() -> None:
    doc = document(DOC_SETTINGS)
    assert doc["openapi"] == "3.1.0"
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert operation["summary"] and operation["operationId"], (method, path)
            if "{device_id}" in path:
                assert "422" in operation["responses"] and "404" in operation["responses"], (method, path)
            if operation.get("security"):
                assert {"401", "403"} <= set(operation["responses"]), (method, path)


# --- against a running gateway ----------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    # probe=False: fuzzed registrations carry made-up URLs; the gateway must not go looking for them.
    stack = LiveStack(tmp_path_factory.mktemp("openapi-live"), probe=False).start()
    bus = stack.bus
    assert bus is not None

    async def seed() -> None:
        for i in range(5):
            await bus.add(f"dev-{i}", hostname=f"miner-{i}", labels={"rack": "r1"})
            await bus.reading(reading(f"dev-{i}", hashrate_ghs=100.0 * i, power_watts=10.0, at=time.time()))
        await bus.reading(reading("dev-4", ok=False))
        await bus.dashboard(OVERVIEW_KEY, title="Pluto fleet overview")
        await bus.dashboard("dev-1", title="miner-1")
        await bus.dashboard("dev-2", kind="unpublished", title="miner-2")

    stack.run(seed())
    yield stack
    stack.close()


def test_the_served_document_is_the_generated_one(live: LiveStack) -> None:
    assert live.gateway is not None
    served = requests.get(live.url + "/openapi.json", timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"].startswith("application/json")
    assert served.json() == json.loads(json.dumps(document(live.gateway.settings)))


schema = schemathesis.openapi.from_dict(document(DOC_SETTINGS))
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=MAX_EXAMPLES, database="none"
)


@schema.parametrize()
def test_fuzz_every_operation(case: schemathesis.Case, live: LiveStack) -> None:
    case.call_and_validate(base_url=live.url, headers=AUTH)
