"""What a hello may ask for is bounded and validated (issue 12, item 25).

A hello is the one frame an unauthenticated-until-checked peer can make the
server work for: its device name is printable and short, its cursors are
exact integers, it names at most MAX_HELLO_ROOMS rooms, and rooms the user
does not belong to cost one batched membership lookup, never a room actor each.
"""

from __future__ import annotations

import httpx
import msgspec
import pytest
import trio

from protocol import frames
from protocol.errors import CloseCode
from protocol.frames import MAX_HELLO_ROOMS
from tests.e2e.conftest import NodeFactory
from tests.e2e.helpers import create_group, register
from tests.e2e.rawws import open_raw


def raw_hello(token: str, **d: object) -> bytes:
    return msgspec.msgpack.encode({"t": "hello", "id": 1, "d": {"token": token, "v": 1, **d}})


@pytest.mark.parametrize(
    "fields",
    [
        {"device": "\x00"},
        {"device": "phone\n"},
        {"device": "x" * 65},
        {"cursors": {"r": 2**64 - 1}},
        {"cursors": {"r": -1}},
        {"evs": {"r": 2**53 + 1}},
        {"cursors": {f"r{i}": 0 for i in range(MAX_HELLO_ROOMS + 1)}},
        {"evs": {f"r{i}": 0 for i in range(MAX_HELLO_ROOMS + 1)}},
    ],
    ids=[
        "nul-device",
        "control-char-device",
        "long-device",
        "cursor-2^64-1",
        "negative-cursor",
        "ev-over-2^53",
        "too-many-cursors",
        "too-many-evs",
    ],
)
async def test_a_hello_asking_for_too_much_is_closed_with_protocol_violation(
    node_factory: NodeFactory, fields: dict[str, object]
):
    async with node_factory() as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
        async with open_raw(node.port) as raw:
            await raw.send_bytes(raw_hello(alice.access_token, **fields))
            assert await raw.wait_closed() == CloseCode.PROTOCOL_VIOLATION
            assert "hello" in raw.close_reason
        assert not node.hub.is_online(alice.id)


async def test_a_printable_device_name_and_cursor_limits_are_accepted(
    node_factory: NodeFactory,
):
    async with node_factory() as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
            room = await create_group(http, alice)
        async with open_raw(node.port) as raw:
            await raw.send_bytes(
                raw_hello(alice.access_token, device="Pixel 8 — Alice’s 📱", cursors={room: 2**53})
            )
            welcome = await raw.receive_frame()
            assert isinstance(welcome, frames.Welcome)
            done = await raw.receive_frame()
            assert isinstance(done, frames.ResumeDone)
            # Accepted, then clamped to the room's end like a read receipt.
            assert done.d.rooms == {room: 0}


async def test_unknown_rooms_in_a_hello_cost_one_lookup_not_an_actor_each(
    node_factory: NodeFactory, database_url: str
):
    async with node_factory() as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http)
            mine = await create_group(http, alice)
        cursors = {f"nosuch{i:04d}": 0 for i in range(MAX_HELLO_ROOMS - 1)}
        cursors[mine] = 0
        started = node.system.statistics().started
        async with open_raw(node.port) as raw:
            with trio.fail_after(10):
                await raw.send_bytes(raw_hello(alice.access_token, cursors=cursors))
                assert isinstance(await raw.receive_frame(), frames.Welcome)
                refused: set[str] = set()
                while True:
                    frame = await raw.receive_frame()
                    if isinstance(frame, frames.ResumeDone):
                        break
                    assert isinstance(frame, frames.Err), frame
                    assert frame.code == "not_member" and frame.re is None
                    refused.add(frame.msg.split()[3].rstrip(":"))
        assert refused == set(cursors) - {mine}
        assert frame.d.rooms == {mine: 0}
        # Only the user's own room was woken, not one actor per unknown name.
        assert node.system.statistics().started - started <= 1
