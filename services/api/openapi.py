"""The route table, and the OpenAPI 3.1 document generated from it.

Every route the gateway serves is declared once, as a `Route`: app.py adds the
table to aiohttp's router and this module turns the same table into the
document served at `/openapi.json`, with the pydantic models' JSON Schemas. The
two cannot drift apart; the tests check it anyway.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.api.problems import PROBLEM_JSON, ProblemDetails

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Reply:
    description: str
    model: type[BaseModel] | None = None
    media_type: str = "application/json"
    array: bool = False  # the body is a JSON array of `model`
    also: tuple[str, ...] = ()  # further media types the body may have (schema: a string)
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class PathParam:
    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    responses: dict[int, Reply]
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    path_params: tuple[PathParam, ...] = ()
    operator: bool = False  # needs `Authorization: Bearer <operator token>`
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    name: str | None = None  # operationId and route name; default: the handler's name
    pattern: str | None = None  # aiohttp's path when it differs (`{path:.*}`)

    @property
    def operation_id(self) -> str:
        return self.name or self.handler.__name__


def problem(description: str) -> Reply:
    return Reply(description, ProblemDetails, PROBLEM_JSON)


Mode = Literal["validation", "serialization"]  # what the gateway accepts, what it answers


def _schemas(routes: Iterable[Route]) -> tuple[dict[tuple[type[BaseModel], Mode], Any], dict[str, Any]]:
    """Every model's schema, once, under components; and the reference to each (model, mode)."""
    pairs: dict[tuple[type[BaseModel], Mode], None] = {(ProblemDetails, "serialization"): None}
    for route in routes:
        for model in (route.query, route.body):
            if model is not None:
                pairs[(model, "validation")] = None
        for reply in route.responses.values():
            if reply.model is not None:
                pairs[(reply.model, "serialization")] = None
    refs, definitions = models_json_schema(list(pairs), ref_template=REF)
    return {key: value for key, value in refs.items()}, dict(definitions.get("$defs", {}))  # type: ignore[misc]


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return components[ref.rsplit("/", 1)[1]] if ref else schema


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent rather than null: drop the null branch of an Optional."""
    options = schema.get("anyOf")
    if not options:
        return schema
    kept = [option for option in options if option != {"type": "null"}]
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    if schema.get("default") is not None:
        rest["default"] = schema["default"]
    return {**kept[0], **rest} if len(kept) == 1 else {"anyOf": kept, **rest}


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = _without_null(dict(prop))
        description = prop.pop("description", None)
        prop.pop("title", None)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _response(reply: Reply, refs: dict[tuple[type[BaseModel], Mode], Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": reply.description}
    if reply.model is not None:
        schema: dict[str, Any] = refs[(reply.model, "serialization")]
        if reply.array:
            schema = {"type": "array", "items": schema}
        answer["content"] = {reply.media_type: {"schema": schema}}
    elif reply.media_type == "*/*":
        answer["content"] = {reply.media_type: {"schema": {}}}  # anything: a proxied answer
    elif reply.media_type != "application/json":
        answer["content"] = {reply.media_type: {"schema": {"type": "string"}}}
    for media_type in reply.also:
        answer.setdefault("content", {})[media_type] = {"schema": {"type": "string"}}
    if reply.headers:
        answer["headers"] = {name: {"schema": {"type": "string"}} for name in reply.headers}
    return answer


def build_document(routes: list[Route], *, title: str, version: str, description: str) -> dict[str, Any]:
    refs, components = _schemas(routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "operationId": route.operation_id,
            "summary": route.summary,
            "tags": [route.tag],
            "responses": {
                (str(status) if status else "default"): _response(reply, refs)
                for status, reply in sorted(route.responses.items())
            },
        }
        if route.description:
            operation["description"] = route.description
        parameters = [
            {"name": p.name, "in": "path", "required": True, "description": p.description, "schema": p.schema}
            for p in route.path_params
        ]
        if route.query is not None:
            parameters += _query_parameters(_resolve(refs[(route.query, "validation")], components))
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(route.body, "validation")]}},
            }
        if route.operator:
            operation["security"] = [{"operatorToken": []}]
        operation.update(route.extra)
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    query_models = {route.query.__name__ for route in routes if route.query is not None}
    schemas = {name: schema for name, schema in components.items() if name not in query_models}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "operatorToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the operator token (PLUTO_API_OPERATOR_TOKEN)",
                }
            },
        },
    }


def render(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=1, sort_keys=False).encode()


def add_routes(app: web.Application, routes: Iterable[Route]) -> None:
    for route in routes:
        app.router.add_route(
            route.method, route.pattern or route.path, route.handler, name=route.operation_id
        )
