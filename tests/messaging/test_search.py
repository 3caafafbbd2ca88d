"""Full-text search: ranked, paginated, only my rooms, never deleted or hidden messages."""

from __future__ import annotations

import httpx

from protocol.client import open_client
from realtime_server.node import Node
from tests.e2e.helpers import auth, create_group, register
from tests.messaging.helpers import delete, send


async def search(http: httpx.AsyncClient, who, **params: object) -> dict:
    r = await http.get("/search/messages", params=params, headers=auth(who))
    assert r.status_code == 200, r.text
    return r.json()


async def test_search_finds_words_across_my_rooms_best_match_first(
    node: Node, http: httpx.AsyncClient
):
    alice, bob, eve = await register(http), await register(http), await register(http)
    ours = await create_group(http, alice, bob, name="ours")
    other = await create_group(http, alice, bob, name="other")
    eves = await create_group(http, eve, bob, name="eve's")
    async with open_client(node.ws_url, alice.access_token) as a:
        async with open_client(node.ws_url, eve.access_token) as e:
            await send(a, ours, "the falafel place on the corner")
            await send(a, other, "Falafel falafel FALAFEL, falafel for lunch")
            await send(a, ours, "nothing to see here")
            await send(e, eves, "secret falafel recipe")
    found = await search(http, alice, q="falafel")
    texts = [m["text"] for m in found["messages"]]
    assert texts == [
        "Falafel falafel FALAFEL, falafel for lunch",
        "the falafel place on the corner",
    ]
    assert found["has_more"] is False
    in_room = await search(http, alice, q="falafel corner", room=ours)
    assert [m["text"] for m in in_room["messages"]] == ["the falafel place on the corner"]
    # Eve's room is hers: Alice never sees it, and may not even ask for it.
    r = await http.get(
        "/search/messages", params={"q": "secret", "room": eves}, headers=auth(alice)
    )
    assert r.status_code == 404
    assert (await search(http, alice, q="secret"))["messages"] == []


async def test_search_pages_through_results(node: Node, http: httpx.AsyncClient):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        for i in range(5):
            await send(a, room, f"report number {i}")
    first = await search(http, alice, q="report", limit=2)
    second = await search(http, alice, q="report", limit=2, offset=2)
    last = await search(http, alice, q="report", limit=2, offset=4)
    assert first["has_more"] and second["has_more"] and not last["has_more"]
    seqs = [m["seq"] for page in (first, second, last) for m in page["messages"]]
    assert sorted(seqs) == [1, 2, 3, 4, 5]


async def test_messages_deleted_for_everyone_or_for_me_are_never_found(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        async with open_client(node.ws_url, bob.access_token) as b:
            gone = await send(a, room, "password hunter2")
            hidden = await send(a, room, "my password hint")
            await delete(a, room, gone.seq, everyone=True)
            await delete(b, room, hidden.seq, everyone=False)
    assert (await search(http, bob, q="password"))["messages"] == []
    assert [m["text"] for m in (await search(http, alice, q="password"))["messages"]] == [
        "my password hint"
    ]
    assert (await search(http, alice, q="hunter2"))["messages"] == []


async def test_search_syntax_in_the_query_is_plain_text(node: Node, http: httpx.AsyncClient):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        await send(a, room, "near the station")
    for q in ['"near', "near*", "NEAR(station", "station -x", "near & station | ! ("]:
        found = await search(http, alice, q=q)
        assert isinstance(found["messages"], list), q
    assert len((await search(http, alice, q='"near"'))["messages"]) == 1
    r = await http.get("/search/messages", params={"q": "!!! ..."}, headers=auth(alice))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid"
