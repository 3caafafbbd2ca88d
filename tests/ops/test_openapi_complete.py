"""/openapi.json promises what the server does: every status a route answers is documented.

The sweep calls every documented operation on a real node in the main ways a
client gets it wrong or right: no token, a body that is not JSON, an empty
JSON object, ids that do not exist; and the parameterless reads as a signed-in
user. Whatever status comes back must be among the operation's documented
responses.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from realtime_server.node import Node
from tests.e2e.helpers import auth, register

# Calls that would end the session the sweep runs on: done last.
_LAST = ("delete", "/me")


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    ops = [
        (method, path, op)
        for path, methods in doc["paths"].items()
        for method, op in methods.items()
    ]
    return sorted(ops, key=lambda o: ((o[0], o[1]) == _LAST, o[1], o[0]))


def _sample(doc: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> Any:
    """A small value of ``schema``'s shape: required fields only, plain values."""
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].split("/")[-1]]
    if depth > 4:
        return None
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [b for b in schema[key] if b.get("type") != "null"]
            return _sample(doc, branches[0], depth + 1)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _sample(doc, props[k], depth + 1) for k in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "string":
        return "x" * max(1, schema.get("minLength", 1))
    if kind in {"integer", "number"}:
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return False
    return None


def _fill(path: str) -> str:
    return re.sub(r"\{\w+\}", "zz_missing", path)


async def test_every_status_the_routes_answer_is_documented(
    node: Node, http: httpx.AsyncClient
) -> None:
    doc = (await http.get("/openapi.json")).json()
    me = await register(http)
    undocumented: list[str] = []

    async def check(method: str, path: str, op: dict[str, Any], case: str, **kw: Any) -> None:
        r = await http.request(method.upper(), _fill(path), **kw)
        if str(r.status_code) not in op["responses"]:
            undocumented.append(
                f"{method.upper()} {path} [{case}] -> {r.status_code} {r.text[:120]}"
            )

    ops = _operations(doc)
    assert len(ops) > 90
    for method, path, op in ops:
        secured = bool(op.get("security"))
        if secured:
            await check(method, path, op, "no token")
        headers = auth(me) if secured else {}
        body = op.get("requestBody")
        if body is None:
            await check(method, path, op, "as is", headers=headers)
            continue
        media = next(iter(body["content"]))
        await check(
            method,
            path,
            op,
            "not JSON",
            headers={**headers, "content-type": media},
            content=b"{nope",
        )
        await check(method, path, op, "empty object", headers=headers, json={})
        if media == "application/json":
            sample = _sample(doc, body["content"][media]["schema"])
            await check(method, path, op, f"sample {sample}", headers=headers, json=sample)
    assert not undocumented, "\n".join(undocumented)


async def test_uploads_sse_and_not_found_are_described(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]
    media = paths["/media"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert media["schema"]["properties"]["file"] == {
        "type": "string",
        "format": "binary",
        "description": "The file; at most MAX_UPLOAD_BYTES.",
    }
    avatar = paths["/me/avatar"]["put"]["requestBody"]["content"]
    assert avatar["image/*"]["schema"] == {"type": "string", "format": "binary"}
    sse = paths["/ai/conversations/{room_id}/stream"]["post"]["responses"]["200"]
    assert list(sse["content"]) == ["text/event-stream"]
    for path, methods in paths.items():
        if path.startswith("/ai/conversations/{room_id}"):
            for method, op in methods.items():
                assert "404" in op["responses"], f"{method} {path}"
