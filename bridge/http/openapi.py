"""The OpenAPI 3.1 document, generated from the declared routes and their Structs.

Nothing here is written by hand per route: paths come from ``Router``'s
operations, schemas from ``msgspec.json.schema_components`` over the same
Structs the server decodes and encodes with, and error responses from the
codes each route can answer (the common ones are implied by what the route
does: a body can be invalid or too large, a token can be missing or expired,
an id in the path can name nothing, storage can be down). Bodies that are not
JSON Structs (uploads, server-sent events, metrics text) are ``routing.Body``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import msgspec

from bridge.errors import STATUS, Code, RestCode, default_message
from bridge.http.errors import ErrorBody
from bridge.http.routing import Body, Operation
from protocol.errors import ErrorCode

TITLE = "Realtime messaging REST API"
_REF = "#/components/schemas/{name}"
_JSON = "application/json"


def build_openapi(operations: Sequence[Operation]) -> dict[str, Any]:
    types = _schema_types(operations)
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    schema_of = dict(zip(types, schemas, strict=True))

    paths: dict[str, dict[str, Any]] = defaultdict(dict)
    for op in operations:
        paths[op.openapi_path][op.method.lower()] = _operation(op, schema_of)

    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": _version(),
            "description": (
                'Every error answers `{"error": {"code", "message", "field"?}}` '
                "with a stable `code`. Times are milliseconds since the Unix epoch."
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def error_codes(op: Operation) -> list[Code]:
    """Every code ``op`` can answer: implied by what it does, plus what it declares."""
    codes: list[Code] = []
    if op.auth:
        codes += [ErrorCode.UNAUTHORIZED, ErrorCode.TOKEN_EXPIRED]
    if op.body is not None:
        codes += [ErrorCode.INVALID, RestCode.BAD_JSON, RestCode.PAYLOAD_TOO_LARGE]
    if op.upload is not None:
        codes += [ErrorCode.INVALID, RestCode.PAYLOAD_TOO_LARGE]
    if op.query is not None:
        codes.append(ErrorCode.INVALID)
    if op.path_params:
        # A path names something by id, and ids can be wrong (or not yours:
        # those answer 404 too, so ids cannot be probed).
        codes.append(ErrorCode.NOT_FOUND)
    codes += op.errors
    codes.append(ErrorCode.INTERNAL)
    if op.uses_store:
        codes.append(ErrorCode.UNAVAILABLE)
    return list(dict.fromkeys(codes))


def _schema_types(operations: Sequence[Operation]) -> list[Any]:
    types: list[Any] = [ErrorBody]
    for op in operations:
        types += [op.body] if op.body is not None else []
        types += [t for t in op.responses.values() if t is not None and not isinstance(t, Body)]
    return list(dict.fromkeys(types))


def _operation(op: Operation, schema_of: dict[Any, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "tags": [op.tag],
        "security": [{"bearerAuth": []}] if op.auth else [],
    }
    if op.description:
        doc["description"] = op.description
    parameters = _path_parameters(op) + _query_parameters(op)
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = {"required": True, "content": {_JSON: {"schema": schema_of[op.body]}}}
    elif op.upload is not None:
        media: dict[str, Any] = {"schema": op.upload.schema}
        if op.upload.encoding:
            media["encoding"] = op.upload.encoding
        doc["requestBody"] = {"required": True, "content": {op.upload.media_type: media}}
        if op.upload.description:
            doc["requestBody"]["description"] = op.upload.description

    responses: dict[str, Any] = {}
    for status, body in sorted(op.responses.items()):
        if body is None:
            responses[str(status)] = {"description": "No content."}
        elif isinstance(body, Body):
            responses[str(status)] = {
                "description": body.description or "Success.",
                "content": {body.media_type: {"schema": body.schema}},
            }
        else:
            responses[str(status)] = {
                "description": "Success.",
                "content": {_JSON: {"schema": schema_of[body]}},
            }
    by_status: dict[int, list[Code]] = defaultdict(list)
    for code in error_codes(op):
        by_status[STATUS[code]].append(code)
    for status, codes in sorted(by_status.items()):
        responses[str(status)] = {
            "description": " ".join(f"`{c.value}`: {default_message(c)}" for c in codes),
            "content": {_JSON: {"schema": schema_of[ErrorBody]}},
        }
    doc["responses"] = responses
    return doc


def _path_parameters(op: Operation) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in op.path_params
    ]


def _query_parameters(op: Operation) -> list[dict[str, Any]]:
    if op.query is None:
        return []
    parameters = []
    for field in msgspec.structs.fields(op.query):
        schema = msgspec.json.schema(field.type)
        description = schema.pop("description", None)
        # "Absent" is how a query string says null; publish the non-null branch.
        branches = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
        schema = branches[0] if len(branches) == 1 else schema
        if field.default is not msgspec.NODEFAULT and field.default is not None:
            schema["default"] = field.default
        parameter: dict[str, Any] = {
            "name": field.encode_name,
            "in": "query",
            "required": field.required,
            "schema": schema,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _version() -> str:
    try:
        return metadata.version("realtime-server")
    except metadata.PackageNotFoundError:  # running from a source tree, not installed
        return "0.0.0"
