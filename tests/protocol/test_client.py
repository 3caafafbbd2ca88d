"""The reference client against a tiny in-test server speaking the protocol.

This checks the client only (routing, pipelining, closing, handshake); the
real server's end-to-end tests live with the server. The fake server picks its
behaviour from the hello token and from each message's text.
"""

from __future__ import annotations

import msgspec
import pytest
import trio
import trio_websocket
from trio_websocket import WebSocketConnection, WebSocketRequest, serve_websocket

from protocol.client import (
    CloseInfo,
    ConnectionClosed,
    HandshakeRejected,
    ServerError,
    open_client,
)
from protocol.codec import decode_client, encode
from protocol.errors import CLOSE_REASONS, CloseCode, ErrorCode, ProtocolError
from protocol.frames import (
    Err,
    Hello,
    HelloData,
    Message,
    MsgNew,
    Ok,
    Ping,
    Pong,
    ResumeDone,
    ResumeDoneData,
    ResumeGap,
    ResumeGapData,
    Send,
    Welcome,
    WelcomeData,
)

TIMEOUT = 10  # seconds; every test here does real socket I/O
REPLAY = 2  # messages the fake server replays per room


class FakeServer:
    """Just enough of /ws: welcome and replay, ok/err/pong, pushes, closes."""

    def __init__(self) -> None:
        self.url = ""
        self.hellos: list[HelloData] = []
        self.request_ids: list[int] = []
        self.client_close: CloseInfo | None = None
        self.client_closed = trio.Event()
        self._seq = 0
        self._held: list[Send] = []

    async def handle(self, request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            await self._serve(ws)
        except trio_websocket.ConnectionClosed as exc:
            assert exc.reason is not None
            self.client_close = CloseInfo(exc.reason.code, exc.reason.reason or "")
            self.client_closed.set()

    async def _serve(self, ws: WebSocketConnection) -> None:
        hello = decode_client(await ws.get_message())
        assert isinstance(hello, Hello)
        self.hellos.append(hello.d)
        match hello.d.token:
            case "reject":
                await ws.aclose(CloseCode.UNAUTHORIZED, CLOSE_REASONS[CloseCode.UNAUTHORIZED])
                return
            case "err-then-close":
                refusal = Err(code="unauthorized", msg="bad token", re=hello.id)
                await ws.send_message(encode(refusal))
                await ws.aclose(CloseCode.UNAUTHORIZED)
                return
            case "push-first":
                await ws.send_message(encode(MsgNew(d=self._message("r", "c", "early"))))
            case "silent":
                await trio.sleep_forever()
        welcome = WelcomeData(
            user="u1",
            session="s1",
            v=hello.d.v,
            heartbeat=30.0,
            max_frame=65536,
            max_text=4000,
            ts=1,
        )
        await ws.send_message(encode(Welcome(re=hello.id, d=welcome)))
        last: dict[str, int] = {}
        for room, after in hello.d.cursors.items():
            if room == "gap":
                gap = ResumeGapData(room=room, after=after, last_seq=after + 1000)
                await ws.send_message(encode(ResumeGap(d=gap)))
                continue
            for seq in range(after + 1, after + 1 + REPLAY):
                msg = Message(
                    id=f"m{seq}", room=room, seq=seq, sender="u2", cid=f"c{seq}", text="old", ts=1
                )
                await ws.send_message(encode(MsgNew(d=msg)))
            last[room] = after + REPLAY
        await ws.send_message(encode(ResumeDone(d=ResumeDoneData(rooms=last))))
        while True:
            data = await ws.get_message()
            try:
                frame = decode_client(data)
            except ProtocolError as exc:
                await ws.send_message(encode(Err(code=exc.code, msg=exc.message, re=exc.re)))
                continue
            self.request_ids.append(frame.id)
            match frame:
                case Ping():
                    await ws.send_message(encode(Pong(re=frame.id, ts=12345)))
                case Send():
                    if await self._on_send(ws, frame):
                        return
                case _:
                    await ws.send_message(encode(Err(code="invalid", msg="?", re=frame.id)))

    async def _on_send(self, ws: WebSocketConnection, frame: Send) -> bool:
        """Answer one msg.send as its text asks; True once the socket is closed."""
        text = frame.d.text
        ok = Ok(re=frame.id, d=self._message(frame.d.room, frame.d.cid, text))
        if text == "fail":
            await ws.send_message(encode(Err(code="not_member", msg="not yours", re=frame.id)))
        elif text.startswith("hold:"):
            # Answer the held batch newest first: replies out of request order.
            self._held.append(frame)
            if len(self._held) == int(text.split(":")[1]):
                for held in reversed(self._held):
                    msg = self._message(held.d.room, held.d.cid, held.d.text)
                    await ws.send_message(encode(Ok(re=held.id, d=msg)))
                self._held.clear()
        elif text == "stray":
            await ws.send_message(encode(Err(code="overloaded", msg="shed")))
            await ws.send_message(encode(Ok(re=999_999)))
            await ws.send_message(encode(ok))
        elif text.startswith("push:"):
            for i in range(int(text.split(":")[1])):
                push = self._message("r", f"p{i}", f"push {i}")
                await ws.send_message(encode(MsgNew(d=push)))
            await ws.send_message(encode(ok))
        elif text == "close":
            await ws.send_message(encode(MsgNew(d=self._message("r", "x", "last words"))))
            await ws.aclose(CloseCode.SLOW_CONSUMER, CLOSE_REASONS[CloseCode.SLOW_CONSUMER])
            return True
        elif text == "garbage":
            await ws.send_message(b"\xc1")
        elif text == "late":
            await trio.sleep(0.3)
            await ws.send_message(encode(ok))
        elif text == "ws-ping":
            await ws.ping()  # returns only once the client answered with a pong
            await ws.send_message(encode(ok))
        elif text != "ignore":
            await ws.send_message(encode(ok))
        return False

    def _message(self, room: str, cid: str, text: str) -> Message:
        self._seq += 1
        return Message(
            id=f"m{self._seq}", room=room, seq=self._seq, sender="u1", cid=cid, text=text, ts=1
        )


@pytest.fixture
async def server(nursery: trio.Nursery) -> FakeServer:
    fake = FakeServer()
    ws_server = await nursery.start(serve_websocket, fake.handle, "127.0.0.1", 0, None)
    fake.url = f"ws://127.0.0.1:{ws_server.port}/ws"
    return fake


# ----- handshake and resume --------------------------------------------------


async def test_welcome_then_resume_done_without_cursors(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client:
            assert client.welcome.user == "u1"
            assert client.welcome.max_frame == 65536
            assert await client.next_push() == ResumeDone(d=ResumeDoneData(rooms={}))
    assert server.hellos == [HelloData(token="good", v=1, device="default", cursors={})]


async def test_replay_in_seq_order_then_resume_done(server: FakeServer) -> None:
    cursors = {"r1": 5, "gap": 10, "r2": 0}
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good", device="phone", cursors=cursors) as client:
            pushes = [await client.next_push() for _ in range(2 * REPLAY + 2)]
    replayed = [(p.d.room, p.d.seq) for p in pushes if isinstance(p, MsgNew)]
    assert replayed == [("r1", 6), ("r1", 7), ("r2", 1), ("r2", 2)]
    assert ResumeGap(d=ResumeGapData(room="gap", after=10, last_seq=1010)) in pushes
    assert pushes[-1] == ResumeDone(d=ResumeDoneData(rooms={"r1": 7, "r2": 2}))
    assert server.hellos[0].device == "phone"
    assert server.hellos[0].cursors == cursors


async def test_close_during_handshake_raises_handshake_rejected(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        with pytest.raises(HandshakeRejected) as caught:
            async with open_client(server.url, "reject"):
                pytest.fail("the body must not run without a welcome")
    assert caught.value.code == CloseCode.UNAUTHORIZED
    assert caught.value.reason == CLOSE_REASONS[CloseCode.UNAUTHORIZED]
    assert isinstance(caught.value, ConnectionClosed)


async def test_err_before_close_explains_a_silent_rejection(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        with pytest.raises(HandshakeRejected) as caught:
            async with open_client(server.url, "err-then-close"):
                pass
    assert caught.value.code == CloseCode.UNAUTHORIZED
    assert caught.value.reason == "unauthorized: bad token"


async def test_frame_before_welcome_is_a_protocol_error(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        with pytest.raises(ProtocolError, match="expected 'welcome' first"):
            async with open_client(server.url, "push-first"):
                pass


async def test_silent_server_times_out_the_handshake(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        with pytest.raises(trio.TooSlowError):
            async with open_client(server.url, "silent", request_timeout=0.2):
                pass


async def test_rejects_non_websocket_urls() -> None:
    with pytest.raises(ValueError, match="ws://"):
        async with open_client("http://127.0.0.1:1/ws", "good"):
            pass


# ----- requests ------------------------------------------------------------------


async def test_ping_returns_server_time(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client:
            assert await client.ping() == 12345


async def test_send_message_returns_the_stored_message(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client:
            first = await client.send_message("r", "hi", cid="abc")
            second = await client.send_message("r", "hi")
            third = await client.send_message("r", "hi")
    assert (first.room, first.cid, first.text) == ("r", "abc", "hi")
    assert second.cid != third.cid, "each send gets a fresh cid unless one is given"


async def test_replies_out_of_order_reach_their_requests(server: FakeServer) -> None:
    results: dict[str, Message] = {}

    async def send(client_cid: str) -> None:
        results[client_cid] = await client.send_message("r", "hold:3", cid=client_cid)

    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client, trio.open_nursery() as nursery:
            for cid in ("a", "b", "c"):
                nursery.start_soon(send, cid)
    # The fake answered the batch newest first; each reply still found its request.
    assert {cid: msg.cid for cid, msg in results.items()} == {"a": "a", "b": "b", "c": "c"}


async def test_pipelined_sends_from_many_tasks(server: FakeServer) -> None:
    tasks, per_task = 20, 10
    seen: list[tuple[str, str]] = []

    async def sender(task: int) -> None:
        for i in range(per_task):
            cid = f"{task}-{i}"
            msg = await client.send_message("r", f"text {cid}", cid=cid)
            seen.append((cid, msg.cid))

    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client, trio.open_nursery() as nursery:
            for task in range(tasks):
                nursery.start_soon(sender, task)
    assert len(seen) == tasks * per_task
    assert all(sent == got for sent, got in seen)
    assert len(set(server.request_ids)) == tasks * per_task, "request ids are unique"


async def test_err_reply_raises_server_error_and_connection_stays_open(
    server: FakeServer,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client:
            with pytest.raises(ServerError) as caught:
                await client.send_message("r", "fail")
            assert await client.ping() == 12345
    assert caught.value.code == ErrorCode.NOT_MEMBER
    assert caught.value.msg == "not yours"
    assert caught.value.re == server.request_ids[0]


async def test_generic_request_returns_the_reply_frame(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client:
            reply = await client.request(Ping(id=0))
    assert isinstance(reply, Pong)
    assert reply.re == server.request_ids[0] != 0, "the client assigns the id"


async def test_request_timeout_then_the_late_reply_is_a_push(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good", request_timeout=0.05) as client:
            assert isinstance(await client.next_push(), ResumeDone)
            with pytest.raises(trio.TooSlowError):
                await client.send_message("r", "late")
            late = await client.next_push(timeout=5)
    assert isinstance(late, Ok)
    assert late.d is not None and late.d.text == "late"


async def test_client_answers_websocket_pings(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client:
            msg = await client.send_message("r", "ws-ping")
    assert msg.text == "ws-ping"


# ----- pushes ------------------------------------------------------------------


async def test_pushes_arrive_in_order_beside_replies(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client:
            assert isinstance(await client.next_push(), ResumeDone)
            await client.send_message("r", "push:5")
            pushes = [await client.next_push() for _ in range(5)]
            with pytest.raises(trio.WouldBlock):
                client.next_push_nowait()
            with pytest.raises(trio.TooSlowError):
                await client.next_push(timeout=0.01)
    assert [p.d.text for p in pushes if isinstance(p, MsgNew)] == [f"push {i}" for i in range(5)]


async def test_err_without_re_and_unmatched_replies_are_pushes(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client:
            assert isinstance(await client.next_push(), ResumeDone)
            await client.send_message("r", "stray")
            assert await client.next_push() == Err(code="overloaded", msg="shed")
            assert await client.next_push() == Ok(re=999_999)


async def test_send_raw_bad_frames_get_err_pushes(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client:
            assert isinstance(await client.next_push(), ResumeDone)
            await client.send_raw(b"\xc1")
            bad = await client.next_push()
            await client.send_raw(b"")
            empty = await client.next_push()
            await client.send_raw("text is not allowed")
            text = await client.next_push()
            assert await client.ping() == 12345, "the connection stays open"
    assert isinstance(bad, Err) and bad.code == ErrorCode.BAD_FRAME and bad.re is None
    assert isinstance(empty, Err) and empty.code == ErrorCode.BAD_FRAME
    assert isinstance(text, Err) and text.code == ErrorCode.BAD_FRAME


async def test_err_for_an_id_the_client_did_not_send_is_a_push(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client:
            assert isinstance(await client.next_push(), ResumeDone)
            await client.send_raw(msgspec.msgpack.encode({"t": "nope", "id": 77}))
            err = await client.next_push()
    assert isinstance(err, Err)
    assert (err.code, err.re) == (ErrorCode.UNKNOWN_TYPE, 77)


async def test_a_full_push_buffer_stalls_replies_and_still_closes(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good", push_buffer=1, request_timeout=0.3) as client:
            # resume.done fills the buffer; the reader then waits on the first
            # msg.new, so the ok queued behind it never arrives: a slow consumer.
            with pytest.raises(trio.TooSlowError):
                await client.send_message("r", "push:20")
        assert client.close_info == CloseInfo(1000, "")
        assert isinstance(await client.next_push(), ResumeDone), "buffered pushes survive"
        with pytest.raises(ConnectionClosed):
            await client.next_push()


# ----- closing -------------------------------------------------------------------


async def test_server_close_mid_request_raises_connection_closed(server: FakeServer) -> None:
    pending: list[BaseException] = []

    async def hang() -> None:
        try:
            await client.send_message("r", "ignore")
        except ConnectionClosed as exc:
            pending.append(exc)

    reason = CLOSE_REASONS[CloseCode.SLOW_CONSUMER]
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(hang)
                with pytest.raises(ConnectionClosed) as caught:
                    await client.send_message("r", "close")
            assert (caught.value.code, caught.value.reason) == (4000, reason)
            assert [(e.code, e.reason) for e in pending if isinstance(e, ConnectionClosed)] == [
                (4000, reason)
            ]
            # Pushes sent before the close are still delivered, then the close.
            assert isinstance(await client.next_push(), ResumeDone)
            last = await client.next_push()
            assert isinstance(last, MsgNew) and last.d.text == "last words"
            with pytest.raises(ConnectionClosed):
                await client.next_push()
            assert await client.wait_closed() == CloseInfo(4000, reason)
            assert client.close_info == CloseInfo(4000, reason)
            with pytest.raises(ConnectionClosed):
                await client.ping()


async def test_undecodable_server_frame_closes_with_1002(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client:
            with pytest.raises(ConnectionClosed) as caught:
                await client.send_message("r", "garbage")
            await server.client_closed.wait()
    assert caught.value.code == 1002
    assert server.client_close is not None and server.client_close.code == 1002


async def test_leaving_the_block_closes_normally(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client:
            await client.ping()
        await server.client_closed.wait()
        assert server.client_close == CloseInfo(1000, "")
        assert client.close_info == CloseInfo(1000, "")
        with pytest.raises(ConnectionClosed):
            await client.ping()


async def test_aclose_with_a_code_is_seen_by_the_server(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_client(server.url, "good") as client:
            await client.aclose(4321, "bye")
            await client.aclose()  # idempotent
            assert await client.wait_closed() == CloseInfo(4321, "bye")
        await server.client_closed.wait()
    assert server.client_close == CloseInfo(4321, "bye")


async def test_body_errors_propagate_bare(server: FakeServer) -> None:
    with trio.fail_after(TIMEOUT):
        with pytest.raises(ServerError):
            async with open_client(server.url, "good") as client:
                await client.send_message("r", "fail")
        with pytest.raises(KeyError):
            async with open_client(server.url, "good"):
                raise KeyError("mine")


async def test_many_clients_in_one_nursery(server: FakeServer) -> None:
    texts: list[str] = []

    async def one(i: int) -> None:
        async with open_client(server.url, "good", device=f"d{i}") as client:
            texts.append((await client.send_message("r", f"hi {i}")).text)

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(one, i)
    assert sorted(texts) == sorted(f"hi {i}" for i in range(50))
