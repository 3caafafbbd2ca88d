"""Domain helpers for call tests over real sockets."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import httpx
import pytest

from protocol import frames_calls as fc
from protocol.client import Client, ServerError
from tests.e2e.helpers import Account, auth

F = TypeVar("F")

CALL_PUSHES = fc.CALL_SERVER_FRAMES

# A well-formed ICE candidate, for relays whose content does not matter.
HOST_CANDIDATE = "candidate:1 1 udp 1 127.0.0.1 9 typ host"


async def refused(code: str, request: Awaitable[Any]) -> None:
    """``request`` fails with the error ``code``."""
    with pytest.raises(ServerError) as caught:
        await request
    assert caught.value.code == code, caught.value


async def direct_room(http: httpx.AsyncClient, a: Account, b: Account) -> str:
    r = await http.post("/rooms", json={"kind": "direct", "user_id": b.id}, headers=auth(a))
    assert r.status_code in (200, 201), r.text
    return str(r.json()["room"]["id"])


async def next_call_push(client: Client, timeout: float = 5.0) -> Any:  # noqa: ASYNC109
    """The next call.* push, skipping other features' pushes (resume.done, presence, ...)."""
    while True:
        frame = await client.next_push(timeout=timeout)
        if isinstance(frame, CALL_PUSHES):
            return frame


async def expect(client: Client, kind: type[F], timeout: float = 5.0) -> F:  # noqa: ASYNC109
    frame = await next_call_push(client, timeout)
    assert isinstance(frame, kind), f"expected {kind.__name__}, got {frame!r}"
    return frame


async def expect_state(
    client: Client,
    event: str,
    timeout: float = 5.0,  # noqa: ASYNC109
) -> fc.CallStateData:
    frame = await expect(client, fc.CallStateFrame, timeout)
    assert frame.d.event == event, f"expected event {event!r}, got {frame.d!r}"
    return frame.d


async def start(client: Client, room: str, kind: str = "audio") -> fc.CallView:
    reply = await client.request(fc.CallStart(id=0, d=fc.CallStartData(room=room, kind=kind)))
    assert isinstance(reply, fc.CallOk), reply
    return reply.d


async def accept(client: Client, call: str) -> fc.CallView:
    reply = await client.request(fc.CallAccept(id=0, d=fc.CallRef(call=call)))
    assert isinstance(reply, fc.CallOk), reply
    return reply.d


async def join(client: Client, call: str) -> fc.CallView:
    reply = await client.request(fc.CallJoin(id=0, d=fc.CallRef(call=call)))
    assert isinstance(reply, fc.CallOk), reply
    return reply.d


async def decline(client: Client, call: str) -> None:
    await client.request(fc.CallDecline(id=0, d=fc.CallRef(call=call)))


async def hangup(client: Client, call: str) -> None:
    await client.request(fc.CallHangup(id=0, d=fc.CallRef(call=call)))


async def send_sdp(client: Client, call: str, to: str, type_: str, sdp: str) -> None:
    await client.request(fc.CallSdp(id=0, d=fc.CallSdpData(call=call, to=to, type=type_, sdp=sdp)))


async def send_ice(client: Client, call: str, to: str, candidate: str, **extra: Any) -> None:
    await client.request(
        fc.CallIce(id=0, d=fc.CallIceData(call=call, to=to, candidate=candidate, **extra))
    )


def statuses(call: fc.CallView) -> dict[str, str]:
    return {p.user: p.status for p in call.participants}


async def history(http: httpx.AsyncClient, account: Account, **params: Any) -> list[dict]:
    r = await http.get("/calls", params=params, headers=auth(account))
    assert r.status_code == 200, r.text
    return list(r.json()["calls"])
