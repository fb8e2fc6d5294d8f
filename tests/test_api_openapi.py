"""The OpenAPI document matches the routes exactly and is what the gateway serves.

The schema-driven fuzzing of every operation against it is in test_api_fuzz.py."""

from __future__ import annotations

import json

import pytest

from services.api.app import create_app, document
from services.api.settings import ApiSettings
from shared.settings import BusSettings
from tests.api_helpers import Client, Gateway, api_settings

DOC_SETTINGS = api_settings("nats://127.0.0.1:4222", grafana_url="http://127.0.0.1:3000/grafana")


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


# --- served -------------------------------------------------------------------------------


async def test_the_served_document_is_the_generated_one(bus_settings: BusSettings) -> None:
    gateway = await Gateway(api_settings(bus_settings.nats_url)).start()
    client = Client(gateway.url)
    try:
        served = await client.get("/openapi.json")
        assert served.status == 200 and served.content_type == "application/json"
        assert served.json == json.loads(json.dumps(document(gateway.settings)))
    finally:
        await client.close()
        await gateway.stop()
