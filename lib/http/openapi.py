"""``openapi.json`` built from the functions' own pydantic models: the docs cannot drift from the code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lib.http.spec import FunctionSpec

_REF = "#/components/schemas/{model}"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
INVALID_JWT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["msg"],
    "properties": {"msg": {"type": "string", "enum": ["Invalid JWT"]}},
}


def _schema(adapter_schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Hoist pydantic's ``$defs`` into ``components.schemas`` and return the top-level schema."""
    schema = dict(adapter_schema)
    components.update(schema.pop("$defs", {}))
    return schema


def _error(description: str, schema_ref: str = "#/components/schemas/Error") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


def build_openapi(registry: Mapping[str, FunctionSpec], verify_jwt: Mapping[str, bool]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every registered function."""
    components: dict[str, Any] = {"Error": ERROR_SCHEMA, "InvalidJWT": INVALID_JWT_SCHEMA}
    paths: dict[str, Any] = {}
    for name, spec in sorted(registry.items()):
        request_schema = _schema(spec.request_adapter.json_schema(ref_template=_REF), components)
        response_schema = _schema(
            spec.response_adapter.json_schema(ref_template=_REF, mode="serialization"), components
        )
        needs_jwt = verify_jwt.get(name, True)
        paths[f"/functions/v1/{name}"] = {
            "post": {
                "operationId": name.replace("-", "_"),
                "summary": spec.summary,
                "security": [{"bearerAuth": []}] if needs_jwt else [{}, {"bearerAuth": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": request_schema}},
                },
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": response_schema}},
                    },
                    "400": _error("Malformed JSON"),
                    "401": _error("Missing or invalid token", "#/components/schemas/InvalidJWT"),
                    "403": _error("The token's role may not call this action"),
                    "404": _error("Not found"),
                    "409": _error("Conflict"),
                    "413": _error("Body too large"),
                    "422": _error("The request does not match the schema"),
                    "502": _error("The exchange refused"),
                    "503": _error("A dependency is unavailable; retry later"),
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "AITRADEX1 functions", "version": "1"},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
