"""The OpenAPI 3.1 document, built from the endpoint declarations.

Schemas come from the Pydantic models (JSON Schema 2020-12, which OpenAPI 3.1 uses as is);
every operation documents its success answer, its usual refusals and a ``default`` error
answer in the one error format.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from orchestra.server.api.endpoint import PREFIX, Endpoint, ErrorBody, NoInput

_PARAM = re.compile(r"{([a-z_]+)}")
_DESCRIPTIONS = {
    400: "Invalid request: a parameter or the body does not fit",
    401: "Not authenticated: no credential, or one refused (the message says why)",
    403: "Not allowed: the caller's roles or scopes do not permit the action",
    404: "Not found",
    409: "Conflict with the current state",
    422: "The content is not valid (an agent definition that does not parse)",
    503: "A service the endpoint needs is unavailable",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _parameters(endpoint: Endpoint, defs: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(endpoint.path)
    ]
    if endpoint.query is NoInput:
        return params
    schema = defs[endpoint.query.__name__]
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in prop:
            param["description"] = prop.pop("description")
        param["schema"] = prop
        params.append(param)
    return params


def _operation(endpoint: Endpoint, defs: dict[str, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "OK"}
    if endpoint.response is not None:
        success["content"] = {"application/json": {"schema": _ref(endpoint.response)}}
    error = {"application/json": {"schema": _ref(ErrorBody)}}
    responses: dict[str, Any] = {str(endpoint.status): success}
    for status in endpoint.statuses:
        responses[str(status)] = {"description": _DESCRIPTIONS[status], "content": error}
    responses["default"] = {"description": "Any other error", "content": error}
    op: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "tags": [endpoint.tag] if endpoint.tag else [],
        "parameters": _parameters(endpoint, defs),
        "responses": responses,
    }
    if endpoint.action is not None:
        op["x-orchestra-action"] = endpoint.action
    if endpoint.public:
        op["security"] = []
    if endpoint.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(endpoint.body)}},
        }
    return op


def openapi_document(endpoints: Sequence[Endpoint], *, version: str) -> dict[str, Any]:
    """The document for ``endpoints``."""
    models: set[type[BaseModel]] = {ErrorBody}
    for e in endpoints:
        models |= {m for m in (e.response, e.body, e.query) if m is not None and m is not NoInput}
    ordered = sorted(models, key=lambda m: m.__name__)
    _, top = models_json_schema(
        [(m, "validation" if _is_input(m, endpoints) else "serialization") for m in ordered],
        ref_template="#/components/schemas/{model}",
    )
    defs: dict[str, Any] = top.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        paths.setdefault(e.full_path, {})[e.method.lower()] = _operation(e, defs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Orchestra API",
            "version": version,
            "description": "Runs, organisation, keys, budgets, spend, audit, policies. "
            "See docs/api.md.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a gateway key or an OpenID Connect access token",
                },
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "session": {"type": "apiKey", "in": "cookie", "name": "orchestra_session"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}, {"session": []}],
        "x-api-prefix": PREFIX,
    }


def _is_input(model: type[BaseModel], endpoints: Sequence[Endpoint]) -> bool:
    return any(model is e.body or model is e.query for e in endpoints)
