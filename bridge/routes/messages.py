"""Messages over REST: full-text search and rich history (reactions, tombstones).

Both answer with ``protocol.frames.Message`` objects, the shape the socket
uses, so a client has one parser for messages wherever they come from.

- Search never returns a message from a room the caller is not in, nor one
  deleted for everyone or hidden by the caller ("delete for me").
- Rich history is ``GET /rooms/{id}/messages`` plus what only storage knows at
  read time: aggregated reactions with ``me``, and without the caller's
  hidden messages. A room the caller is not in answers 404, like every room
  route.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from quart import Response

from actors.room_rules import to_wire
from bridge.accounts.tokens import AccessClaims
from bridge.errors import BadRequest, NotFound
from bridge.http.routing import Router, json_response
from bridge.routes.schemas import MAX_SEQ, HistoryQuery
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from protocol.frames import Message
from protocol.frames_chat import Reaction
from storage.base import Store, StoredMessage
from storage.messages_rich import rich_store

MAX_TERMS = 10
_WORD = re.compile(r"\w+")


class SearchQuery(msgspec.Struct, frozen=True):
    q: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    room: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 20
    offset: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0


class SearchResults(msgspec.Struct):
    messages: list[Message]  # best match first
    has_more: bool


class RichPage(msgspec.Struct):
    messages: list[Message]  # ascending seq
    has_more: bool


def search_terms(q: str) -> list[str]:
    """Words of the query, lowercased; syntax characters of either engine are dropped."""
    return [w.lower() for w in _WORD.findall(q)][:MAX_TERMS]


def add_routes(router: Router, services: BridgeServices) -> None:
    store = services.store
    rich = rich_store(store)
    max_results = services.settings.search_max_results

    @router.route(
        "GET",
        "/search/messages",
        summary="Full-text search in your rooms, best match first",
        description=(
            "Every word of `q` must match. With `room`, only that room (404 if you are "
            "not in it). Messages deleted for everyone or for you never appear."
        ),
        tag="messages",
        query=SearchQuery,
        responses={200: SearchResults},
        errors=(ErrorCode.INVALID, ErrorCode.NOT_FOUND),
    )
    async def search_messages(claims: AccessClaims, query: SearchQuery) -> Response:
        terms = search_terms(query.q)
        if not terms:
            raise BadRequest("The query has no words to search for.", field="q")
        if query.room is not None:
            await _check_member(store, query.room, claims.user_id)
        limit = min(query.limit, max_results)
        found = await rich.search(claims.user_id, terms, query.room, limit + 1, query.offset)
        return json_response(
            SearchResults([to_wire(m) for m in found[:limit]], has_more=len(found) > limit)
        )

    @router.route(
        "GET",
        "/rooms/<room_id>/history",
        summary="A page of history with reactions, without messages you deleted for you",
        description=(
            "Paging as `GET /rooms/{room_id}/messages` (`before`, `after`, `limit`). Each "
            "message carries `reactions`: every emoji with its count and `me`."
        ),
        tag="messages",
        query=HistoryQuery,
        responses={200: RichPage},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def rich_history(claims: AccessClaims, room_id: str, query: HistoryQuery) -> Response:
        if query.before is not None and query.after is not None:
            raise BadRequest("Give either 'before' or 'after', not both.", field="after")
        me = claims.user_id
        await _check_member(store, room_id, me)
        page: list[StoredMessage]
        if query.after is not None:
            found = await store.messages_after(room_id, query.after, query.limit + 1)
            page = found[: query.limit]
        else:
            before = query.before if query.before is not None else MAX_SEQ
            found = await store.messages_before(room_id, before, query.limit + 1)
            page = found[-query.limit :]
        seqs = [m.seq for m in page]
        hidden = await rich.hidden(room_id, me, seqs)
        reactions = await rich.reactions(room_id, seqs, me)
        out: list[Message] = []
        for m in page:
            if m.seq in hidden:
                continue
            wire = to_wire(m)
            counts = reactions.get(m.seq)
            if counts:
                wire.reactions = [Reaction(e=r.emoji, n=r.count, me=r.mine) for r in counts]
            out.append(wire)
        return json_response(RichPage(out, has_more=len(found) > query.limit))


async def _check_member(store: Store, room_id: str, user_id: str) -> None:
    room = await store.get_room(room_id)
    if room is None or all(m.user_id != user_id for m in room.members):
        raise NotFound("No such room, or you are not a member.")
