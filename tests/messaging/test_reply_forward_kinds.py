"""Replies, forwards and message kinds (text, media, location, contact)."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from protocol import frames
from protocol.client import ServerError, open_client
from protocol.frames_chat import Contact, Location
from realtime_server.node import Node
from tests.e2e.helpers import auth, create_group, register
from tests.messaging.helpers import chat_pushes_until_done, forward, next_of, send

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


async def test_a_reply_carries_a_preview_of_the_message_it_answers(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        async with open_client(node.ws_url, bob.access_token) as b:
            await chat_pushes_until_done(b)
            question = await send(a, room, "x" * 150)
            await next_of(b, frames.MsgNew)
            answer = await send(b, room, "yes", reply=question.seq)
            assert answer.reply == frames.ReplyPreview(
                seq=question.seq, sender=alice.id, text="x" * 100
            )
            with pytest.raises(ServerError) as refused:
                await send(b, room, "to nothing", reply=77)
            assert refused.value.code == "not_found"
    assert await node.store.last_seq(room) == 2


async def test_forward_posts_one_marked_copy_per_room_and_a_resend_posts_nothing_new(
    node: Node, http: httpx.AsyncClient
):
    alice, bob, carol = await register(http), await register(http), await register(http)
    source = await create_group(http, bob, alice)
    one = await create_group(http, alice, carol, name="one")
    two = await create_group(http, alice, bob, name="two")
    async with open_client(node.ws_url, alice.access_token) as a:
        async with open_client(node.ws_url, carol.access_token) as c:
            await chat_pushes_until_done(c)
            here = Location(lat=36.8, lon=10.18, label="Tunis")
            original = await send(a, source, "meet here", kind="location", loc=here)
            ok = await forward(a, source, original.seq, [one, two], cid="fw-1")
            assert ok.ms is not None and [m.room for m in ok.ms] == [one, two]
            for copy in ok.ms:
                assert (copy.fwd, copy.kind, copy.loc, copy.text) == (
                    True,
                    "location",
                    here,
                    "meet here",
                )
                assert copy.sender == alice.id and copy.seq == 1
            assert (await next_of(c, frames.MsgNew)).d == ok.ms[0]
            again = await forward(a, source, original.seq, [one, two], cid="fw-1")
            assert again.ms == ok.ms
    assert await node.store.last_seq(one) == 1


async def test_forwarding_to_a_room_i_cannot_write_to_posts_nowhere(
    node: Node, http: httpx.AsyncClient
):
    alice, bob, eve = await register(http), await register(http), await register(http)
    mine = await create_group(http, alice, bob, name="mine")
    also_mine = await create_group(http, alice, bob, name="also")
    not_mine = await create_group(http, eve, bob, name="eve's")
    async with open_client(node.ws_url, alice.access_token) as a:
        m = await send(a, mine, "pass it on")
        with pytest.raises(ServerError) as refused:
            await forward(a, mine, m.seq, [also_mine, not_mine], cid="fw-2")
        assert refused.value.code == "not_member"
        with pytest.raises(ServerError) as refused:
            await forward(a, not_mine, 1, [also_mine], cid="fw-3")
        assert refused.value.code == "not_member"
        with pytest.raises(ServerError) as refused:
            await forward(a, mine, 99, [also_mine], cid="fw-4")
        assert refused.value.code == "not_found"
    assert await node.store.last_seq(also_mine) == 0
    assert await node.store.last_seq(not_mine) == 0


@pytest.mark.parametrize(
    ("loc", "why"),
    [
        ({"lat": 91.0, "lon": 0.0}, "lat"),
        ({"lat": 0.0, "lon": -180.5}, "lon"),
        ({"lat": float("nan"), "lon": 0.0}, "lat"),
        ({"lat": 0.0, "lon": float("inf")}, "lon"),
        ({"lat": "north", "lon": 0.0}, "lat"),
        ({"lat": 1.0, "lon": 2.0, "label": "x" * 201}, "label"),
    ],
)
async def test_invalid_coordinates_are_refused(
    node: Node, http: httpx.AsyncClient, loc: dict[str, object], why: str
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        frame = {
            "t": "msg.send",
            "id": 5,
            "d": {"room": room, "cid": "c", "kind": "location", "loc": loc},
        }
        await a.send_raw(msgspec.msgpack.encode(frame))
        err = await next_of(a, frames.Err)
        assert (err.code, err.re) == ("invalid", 5) and why in err.msg
    assert await node.store.last_seq(room) == 0


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"kind": "location"}, "invalid"),  # no loc
        ({"kind": "image"}, "invalid"),  # no media
        ({"kind": "text", "text": "hi", "loc": Location(lat=1, lon=2)}, "invalid"),
        ({"kind": "sticker", "text": "hi"}, "invalid"),
        ({"kind": "document", "media": "no-such-upload"}, "not_found"),
    ],
)
async def test_content_that_does_not_fit_its_kind_is_refused(
    node: Node, http: httpx.AsyncClient, fields: dict[str, object], code: str
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        with pytest.raises(ServerError) as refused:
            await send(a, room, **fields)
        assert refused.value.code == code
    assert await node.store.last_seq(room) == 0


async def test_a_contact_card_needs_a_way_to_reach_them(node: Node, http: httpx.AsyncClient):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    card = Contact(name="Ada", phones=["+216 71 000 000"], emails=["ada@example.com"])
    async with open_client(node.ws_url, alice.access_token) as a:
        m = await send(a, room, kind="contact", contact=card)
        assert (m.kind, m.contact) == ("contact", card)
        bad = {
            "t": "msg.send",
            "id": 9,
            "d": {"room": room, "cid": "k", "kind": "contact", "contact": {"name": "Nobody"}},
        }
        await a.send_raw(msgspec.msgpack.encode(bad))
        err = await next_of(a, frames.Err)
        assert err.code == "invalid"
    assert await node.store.last_seq(room) == 1


async def test_a_document_message_references_my_upload_and_members_can_fetch_it(
    node: Node, http: httpx.AsyncClient
):
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    up = await http.post(
        "/media", files={"file": ("notes.pdf", PDF, "application/pdf")}, headers=auth(alice)
    )
    assert up.status_code == 201, up.text
    media_id = up.json()["media"]["id"]
    assert (await http.get(f"/media/{media_id}/info", headers=auth(bob))).status_code == 404
    async with open_client(node.ws_url, bob.access_token) as b:
        with pytest.raises(ServerError) as refused:  # not Bob's upload to share
            await send(b, room, kind="document", media=media_id)
        assert refused.value.code == "not_found"
    async with open_client(node.ws_url, alice.access_token) as a:
        m = await send(a, room, "the notes", kind="document", media=media_id)
    assert (m.kind, m.media, m.text) == ("document", media_id, "the notes")
    assert (await http.get(f"/media/{media_id}/info", headers=auth(bob))).status_code == 200
    history = (await http.get(f"/rooms/{room}/history", headers=auth(bob))).json()
    assert history["messages"][0]["media"] == media_id
