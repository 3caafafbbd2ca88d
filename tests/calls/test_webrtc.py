"""Two real WebRTC peers (aiortc) find each other through the server's call signaling.

aiortc is asyncio code: each peer runs on its own asyncio loop in its own
thread, and the trio test drives it through futures (``AsyncioPeer.run``).
Everything the peers learn about each other goes through the server: the
offer and answer travel as ``call.sdp`` / ``call.remote.sdp`` with their
candidate lines taken out, and every candidate travels on its own as
``call.ice`` / ``call.remote.ice``, so the peers connect only if trickled ICE
works end to end. No ICE servers (there is no network but loopback), and
aioice is told to offer host candidates on 127.0.0.1 only: its default skips
loopback and uses whatever interfaces the machine has.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aioice.ice
import httpx
import pytest
import trio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from protocol import frames_calls as fc
from protocol.client import Client, open_client
from realtime_server.node import Node
from tests.calls.helpers import (
    accept,
    direct_room,
    expect,
    expect_state,
    hangup,
    next_call_push,
    send_ice,
    send_sdp,
    start,
)
from tests.e2e.helpers import register

T = TypeVar("T")
STEP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Candidate:
    line: str  # "candidate:..." as RTCIceCandidate.candidate
    mid: str | None
    mline: int


def split_candidates(sdp: str) -> tuple[str, list[Candidate]]:
    """The SDP without its candidate lines, and those candidates with their m-section."""
    mids: list[str | None] = []  # per m-section; a=mid may come after its candidates
    kept: list[str] = []
    found: list[tuple[str, int]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            mids.append(None)
        elif line.startswith("a=mid:"):
            mids[-1] = line[len("a=mid:") :]
        if line.startswith("a=candidate:"):
            found.append((line[2:], len(mids) - 1))
        elif line != "a=end-of-candidates":
            kept.append(line)
    candidates = [Candidate(text, mids[mline], mline) for text, mline in found]
    return "\r\n".join(kept) + "\r\n", candidates


class Peer:
    """One RTCPeerConnection and its data channel; every method runs on the peer's loop."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.connected = asyncio.Event()
        self.channel_open = asyncio.Event()
        self.inbox: asyncio.Queue[str] = asyncio.Queue()
        self.channel: Any = None

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            if self.pc.connectionState == "connected":
                self.connected.set()

        @self.pc.on("datachannel")
        def _incoming(channel: Any) -> None:
            self._use(channel)
            self.channel_open.set()  # announced once it is open

    def _use(self, channel: Any) -> None:
        self.channel = channel
        channel.on("open", self.channel_open.set)
        channel.on("message", self.inbox.put_nowait)

    async def offer(self) -> tuple[str, list[Candidate]]:
        self._use(self.pc.createDataChannel("chat"))
        await self.pc.setLocalDescription(await self.pc.createOffer())  # gathers candidates
        return split_candidates(self.pc.localDescription.sdp)

    async def answer(self, sdp: str) -> tuple[str, list[Candidate]]:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return split_candidates(self.pc.localDescription.sdp)

    async def take_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def add_candidate(self, line: str, mid: str | None, mline: int | None) -> None:
        if not line:
            await self.pc.addIceCandidate(None)  # end of candidates
            return
        candidate = candidate_from_sdp(line.split(":", 1)[1])
        candidate.sdpMid, candidate.sdpMLineIndex = mid, mline
        await self.pc.addIceCandidate(candidate)

    async def wait_connected(self) -> str:
        await self.connected.wait()
        await self.channel_open.wait()
        return str(self.pc.connectionState)

    async def send(self, text: str) -> None:
        self.channel.send(text)

    async def receive(self) -> str:
        return await self.inbox.get()

    async def close(self) -> None:
        await self.pc.close()


class AsyncioPeer:
    """A ``Peer`` on a fresh asyncio loop in its own thread, driven from trio."""

    def __init__(self) -> None:
        # Not new_event_loop(): with PostgreSQL, trio-asyncio's policy is
        # installed and refuses to make a loop from inside a trio run.
        self.loop = asyncio.SelectorEventLoop()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.peer: Peer

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def run(self, make: Any, *args: Any) -> Any:
        """Await ``make(*args)`` on the peer's loop; ``make`` is a Peer method."""
        future = asyncio.run_coroutine_threadsafe(_call(make, *args), self.loop)
        return await trio.to_thread.run_sync(future.result, STEP_TIMEOUT, abandon_on_cancel=True)

    @classmethod
    @asynccontextmanager
    async def running(cls) -> AsyncIterator[AsyncioPeer]:
        self = cls()
        self.thread.start()
        self.peer = await self.run(Peer)
        try:
            yield self
        finally:
            with trio.CancelScope(shield=True):
                await self.run(self.peer.close)
                self.loop.call_soon_threadsafe(self.loop.stop)
                await trio.to_thread.run_sync(self.thread.join, STEP_TIMEOUT)
                self.loop.close()


async def _call(make: Any, *args: Any) -> Any:
    result = make(*args)
    if isinstance(result, Coroutine):
        return await result
    return result


async def relay_candidates(client: Client, call: str, to: str, candidates: list[Candidate]) -> None:
    for c in candidates:
        await send_ice(client, call, to, c.line, sdp_mid=c.mid, sdp_mline_index=c.mline)
    await send_ice(client, call, to, "", sdp_mid=candidates[0].mid)  # end of candidates


async def connect_peers(
    offerer: tuple[Client, AsyncioPeer],
    answerer: tuple[Client, AsyncioPeer, str],
    call: str,
    words: tuple[str, str],
) -> None:
    """Two real WebRTC peers connect through the server's signaling relay (the
    offerer offers, the answerer's device answers) and say ``words`` to each
    other over a data channel; each saw offer/answer, candidates and the end
    of candidates, in that order."""
    (a, ada_peer), (b, bob_peer, bob_id) = offerer, answerer
    ada_got: list[str] = []
    bob_got: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_signaling, a, ada_peer, call, ada_got)
        nursery.start_soon(serve_signaling, b, bob_peer, call, bob_got)
        sdp, candidates = await ada_peer.run(ada_peer.peer.offer)
        assert candidates, "aiortc gathered no candidates"
        await send_sdp(a, call, bob_id, "offer", sdp)
        await relay_candidates(a, call, bob_id, candidates)

        assert await ada_peer.run(ada_peer.peer.wait_connected) == "connected"
        assert await bob_peer.run(bob_peer.peer.wait_connected) == "connected"
        await ada_peer.run(ada_peer.peer.send, words[0])
        assert await bob_peer.run(bob_peer.peer.receive) == words[0]
        await bob_peer.run(bob_peer.peer.send, words[1])
        assert await ada_peer.run(ada_peer.peer.receive) == words[1]
        nursery.cancel_scope.cancel()

    assert bob_got[0] == "offer" and "ice" in bob_got and bob_got[-1] == "ice-end"
    assert ada_got[0] == "answer" and "ice" in ada_got and ada_got[-1] == "ice-end"


async def serve_signaling(client: Client, me: AsyncioPeer, call: str, received: list[str]) -> None:
    """Hand every relayed SDP and candidate to the peer; answer offers."""
    while True:
        frame = await next_call_push(client, timeout=STEP_TIMEOUT)
        match frame:
            case fc.CallRemoteSdp(d=d) if d.type == "offer":
                received.append("offer")
                assert "a=candidate" not in d.sdp  # candidates come only as call.ice
                sdp, candidates = await me.run(me.peer.answer, d.sdp)
                await send_sdp(client, call, d.from_, "answer", sdp)
                await relay_candidates(client, call, d.from_, candidates)
            case fc.CallRemoteSdp(d=d):
                received.append("answer")
                assert "a=candidate" not in d.sdp
                await me.run(me.peer.take_answer, d.sdp)
            case fc.CallRemoteIce(d=d):
                received.append("ice" if d.candidate else "ice-end")
                await me.run(me.peer.add_candidate, d.candidate, d.sdp_mid, d.sdp_mline_index)
            case _:
                pass


@pytest.fixture
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


async def test_two_aiortc_peers_connect_through_call_signaling_and_talk(
    node: Node, http: httpx.AsyncClient, loopback_ice: None
):
    ada, bob = await register(http), await register(http)
    room = await direct_room(http, ada, bob)
    async with (
        AsyncioPeer.running() as ada_peer,
        AsyncioPeer.running() as bob_peer,
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        call = await start(a, room, "video")
        assert call.ice_servers == []
        await expect(b, fc.CallRing)
        await accept(b, call.id)
        await expect_state(a, "started")
        assert (await expect_state(a, "joined")).user == bob.id
        await expect_state(b, "joined")

        # The mesh rule: ada was in the call when bob joined, so ada offers.
        await connect_peers(
            (a, ada_peer),
            (b, bob_peer, bob.id),
            call.id,
            ("hello over a data channel", "hello back"),
        )
        await hangup(a, call.id)
        assert (await expect_state(b, "ended")).call.outcome == "answered"
