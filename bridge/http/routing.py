"""Declared routes: one decorator registers a view with Quart and records it for OpenAPI.

A route states its body type, query type, whether it needs a bearer token,
its success responses and the error codes it may answer. The wrapper built
here does the matching work (authenticate, decode the query, decode the body)
and hands the results to the view as keyword arguments, so what
``/openapi.json`` promises is exactly what the server enforces.

Order inside the wrapper: the token is checked before the body is read, so
an anonymous caller learns nothing about validation and costs no body decode.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypedDict, TypeVar, Unpack

import msgspec
from quart import Response, request
from quart_trio import QuartTrio

from bridge.accounts.tokens import TokenService
from bridge.errors import BadRequest, Code, RestCode, TokenInvalid

View = Callable[..., Awaitable[Response]]

_JSON = "application/json"


@dataclass(frozen=True, eq=False)
class Body:
    """A body that is not a JSON Struct: its media type and JSON Schema, for OpenAPI.

    As a response value (``responses={200: Body("text/event-stream", ...)}``)
    it documents what the view answers; as ``upload=`` it documents a request
    body the view reads itself (multipart uploads), which the wrapper leaves alone.
    """

    media_type: str
    schema: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    encoding: dict[str, Any] | None = None


@dataclass(frozen=True)
class Operation:
    """What ``bridge.http.openapi`` needs to know about one route."""

    method: str
    path: str  # Quart syntax: /rooms/<room_id>
    name: str
    summary: str
    tag: str
    responses: dict[int, Any]  # status -> Struct type, or None for no body
    body: Any = None  # a Struct type or a tagged union of them
    query: type[msgspec.Struct] | None = None
    auth: bool = True
    errors: tuple[Code, ...] = ()
    uses_store: bool = True
    description: str = ""
    upload: Body | None = None

    @property
    def openapi_path(self) -> str:
        return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", self.path)

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"<(?:\w+:)?(\w+)>", self.path)


class RouteOptions(TypedDict, total=False):
    """What a route may state besides its method, path, summary, tag and responses."""

    body: Any  # a Struct type or a tagged union of them
    query: type[msgspec.Struct] | None
    auth: bool  # default True: a bearer token is required
    errors: tuple[Code, ...]
    uses_store: bool
    description: str  # default: the view's docstring
    upload: Body | None


@dataclass
class Router:
    app: QuartTrio
    tokens: TokenService
    operations: list[Operation] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        responses: dict[int, Any],
        **options: Unpack[RouteOptions],
    ) -> Callable[[View], View]:
        def register(view: View) -> View:
            description = options.get("description", "")
            operation = Operation(
                method=method,
                path=path,
                name=view.__name__,
                summary=summary,
                tag=tag,
                responses=responses,
                body=options.get("body"),
                query=options.get("query"),
                auth=options.get("auth", True),
                errors=options.get("errors", ()),
                uses_store=options.get("uses_store", True),
                description=description or (view.__doc__ or "").strip(),
                upload=options.get("upload"),
            )
            self.app.add_url_rule(
                path,
                endpoint=view.__name__,
                view_func=self._wrap(view, operation),
                methods=[method],
            )
            self.operations.append(operation)
            return view

        return register

    def _wrap(self, view: View, operation: Operation) -> View:
        decoder = msgspec.json.Decoder(operation.body) if operation.body is not None else None

        async def handle(**path_params: str) -> Response:
            kwargs: dict[str, Any] = dict(path_params)
            if operation.auth:
                kwargs["claims"] = self.tokens.verify_access(bearer_token())
            if operation.query is not None:
                kwargs["query"] = msgspec.convert(
                    request.args.to_dict(), operation.query, strict=False
                )
            if decoder is not None:
                kwargs["body"] = decoder.decode(await read_body())
            return await view(**kwargs)

        handle.__name__ = view.__name__
        handle.__doc__ = view.__doc__
        return handle


S = TypeVar("S")


@dataclass(frozen=True)
class _Declared(Generic[S]):
    method: str
    path: str
    summary: str
    tag: str
    responses: dict[int, Any]
    options: RouteOptions
    view: Callable[..., Awaitable[Response]]  # view(services, **what the route hands it)


class RouteTable(Generic[S]):
    """Routes declared at module level, registered when the app is built.

    A view is a module-level function whose first argument is the app's
    services (``S``), then what the route hands it (``claims``, path
    parameters, ``query``, ``body``)::

        routes = RouteTable[BridgeServices]()

        @routes.route("GET", "/ai/models", summary="...", tag="ai", responses={200: ModelList})
        async def ai_models(services: BridgeServices, claims: AccessClaims) -> Response: ...

    ``add_to(router, services)`` registers every view with the services bound.
    """

    def __init__(self) -> None:
        self._declared: list[_Declared[S]] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        responses: dict[int, Any],
        **options: Unpack[RouteOptions],
    ) -> Callable[[Callable[..., Awaitable[Response]]], Callable[..., Awaitable[Response]]]:
        def record(
            view: Callable[..., Awaitable[Response]],
        ) -> Callable[..., Awaitable[Response]]:
            self._declared.append(_Declared(method, path, summary, tag, responses, options, view))
            return view

        return record

    def add_to(self, router: Router, services: S) -> None:
        for d in self._declared:
            router.route(
                d.method, d.path, summary=d.summary, tag=d.tag, responses=d.responses, **d.options
            )(_bound(d.view, services))


def _bound(view: Callable[..., Awaitable[Response]], services: object) -> View:
    async def bound(**kwargs: Any) -> Response:
        return await view(services, **kwargs)

    bound.__name__ = view.__name__
    bound.__doc__ = view.__doc__
    return bound


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenInvalid("Send 'Authorization: Bearer <access token>'.")
    return token.strip()


async def read_body() -> bytes:
    """The raw body; over MAX_CONTENT_LENGTH raises werkzeug's 413 (see bridge.http.errors)."""
    data = await request.get_data(cache=False, as_text=False, parse_form_data=False)
    if not data.strip():
        raise BadRequest("The request body is empty; send a JSON object.", code=RestCode.BAD_JSON)
    return data


def json_response(body: msgspec.Struct, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status=status, content_type=_JSON)


def empty_response(status: int = 204) -> Response:
    return Response(b"", status=status)


__all__ = [
    "Body",
    "Operation",
    "RouteOptions",
    "RouteTable",
    "Router",
    "bearer_token",
    "empty_response",
    "json_response",
    "read_body",
]
