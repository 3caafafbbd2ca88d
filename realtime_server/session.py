"""One connected device: its bounded outbound queue and the task that writes it.

Rules:
- Only ``serve_writer`` writes to the socket. Everything else (fan-out, replies,
  pongs, pings, close) queues bytes with ``push*``, which never blocks, so a
  room fanning out never waits for a slow reader.
- Everything queued since the last write goes out in ONE ``send_all``.
- The queue is bounded in bytes. Past the bound the session is cut off with
  close code 4000 (SLOW_CONSUMER); the client reconnects and resumes from its
  cursors, so nothing is lost and server memory stays bounded.
- While ``syncing`` (between welcome and the end of replay), live room events
  are held aside so the client sees what it missed first, in order; held
  events the replay already covered are dropped (exactly once).
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import trio

from protocol import codec
from protocol.errors import CLOSE_REASONS, ERROR_MESSAGES, CloseCode, ErrorCode
from protocol.frames import Err
from realtime_server import metrics
from realtime_server.wsframes import binary_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    user_id: str
    session_id: str  # the refresh-token family: one per signed-in device
    device: str
    conn_id: int  # unique per connection on this node


class Session:
    __slots__ = (
        "info",
        "user_id",
        "_stream",
        "_queue",
        "_queued_bytes",
        "_max_bytes",
        "_wake",
        "_held",
        "syncing",
        "close_code",
        "_close_frame",
        "closed",
        "sent_bytes",
        "sent_writes",
        "_send_scope",
        "_held_bytes",
        "_drained",
        "_close_frame_for",
        "_raw",
    )

    def __init__(
        self,
        info: SessionInfo,
        stream: trio.abc.Stream,
        max_queue_bytes: int,
        close_frame_for: Callable[[CloseCode], bytes] | None = None,
        raw_socket: socket.socket | None = None,
    ) -> None:
        self.info = info
        self.user_id = info.user_id
        self._stream = stream
        self._queue: list[bytes] = []
        self._queued_bytes = 0
        self._max_bytes = max_queue_bytes
        self._wake = trio.Event()
        self._held: list[tuple[str, int, bytes]] = []
        self.syncing = True
        self.close_code: CloseCode | None = None
        self._close_frame: bytes | None = None
        self.closed = trio.Event()
        self.sent_bytes = 0
        self.sent_writes = 0
        self._send_scope: trio.CancelScope | None = None
        self._held_bytes = 0
        # Made only while someone waits in wait_queue_below: one Event less
        # per idle connection.
        self._drained: trio.Event | None = None
        # Builds the WebSocket close frame (the connection's wsproto state knows how).
        self._close_frame_for = close_frame_for
        # The same non-blocking socket trio uses, for the idle fast path in push().
        self._raw = raw_socket

    def __repr__(self) -> str:
        return f"Session({self.info.user_id}/{self.info.device}#{self.info.conn_id})"

    # ----- queueing (never blocks) -----------------------------------------

    def push(self, data: bytes) -> None:
        """Send or queue one framed message (or several, concatenated) for this device.

        When the writer is idle and nothing is queued, the bytes are written
        straight away with one non-blocking send: no task switch per delivery,
        which is what an idle-ish server spends its time on. Whatever the
        kernel does not take is queued for the writer, in order.
        """
        if self.close_code is not None:
            return
        if self._raw is not None and not self._queue and self._send_scope is None:
            try:
                n = self._raw.send(data)
            except BlockingIOError:
                n = 0
            except OSError:
                n = 0  # broken: the writer's own send will find out and end the session
            else:
                self.sent_bytes += n
                self.sent_writes += 1
            if n == len(data):
                return
            data = data[n:]
        self._queue.append(data)
        self._queued_bytes += len(data)
        if self._queued_bytes + self._held_bytes > self._max_bytes:
            self.close(CloseCode.SLOW_CONSUMER)
            return
        self._wake.set()

    def push_frame(self, frame: msgspec.Struct) -> None:
        """Encode and queue one frame meant for this session only."""
        metrics.frame_out(frame)
        self.push(binary_frame(codec.encode(frame)))

    def push_error(
        self, code: ErrorCode, message: str | None = None, re: int | None = None
    ) -> None:
        self.push_frame(Err(code=code.value, msg=message or ERROR_MESSAGES[code], re=re))

    def push_event(self, room: str, seq: int, data: bytes) -> None:
        """Queue a room event, holding it back while the replay is running."""
        if self.syncing:
            if self.close_code is None:
                self._held.append((room, seq, data))
                self._held_bytes += len(data)
                if self._queued_bytes + self._held_bytes > self._max_bytes:
                    self.close(CloseCode.SLOW_CONSUMER)
            return
        self.push(data)

    def finish_sync(self, replayed_up_to: dict[str, int]) -> None:
        """Release held live events the replay did not already deliver."""
        held, self._held = self._held, []
        self._held_bytes = 0
        self.syncing = False
        for room, seq, data in held:
            if seq > replayed_up_to.get(room, -1):
                self.push(data)

    def close(self, code: CloseCode, close_frame: bytes | None = None) -> None:
        """Ask the writer to send a close frame and stop; idempotent.

        Whatever is still queued is dropped: a slow consumer would never drain
        it, and a client that reconnects resumes from its cursors anyway.
        """
        if self.close_code is not None:
            return
        self.close_code = code
        metrics.session_closed(code, self._queued_bytes + self._held_bytes)
        if close_frame is None and self._close_frame_for is not None:
            close_frame = self._close_frame_for(code)
        self._close_frame = close_frame
        self._queue.clear()
        self._held.clear()
        self._queued_bytes = 0
        self._held_bytes = 0
        self._wake.set()
        if self._drained is not None:
            self._drained.set()
        if self._send_scope is not None:
            # The writer is stuck in a write the peer is not reading: abandon
            # it (the stream is being closed anyway) so the session ends now.
            self._send_scope.cancel()

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes + self._held_bytes

    async def wait_queue_below(self, limit: int) -> None:
        """Wait until the writer has brought the queue under ``limit`` bytes.

        Bulk producers (the resume replay) pace themselves with this so that a
        large backlog streams through a bounded queue instead of overflowing it.
        """
        while self._queued_bytes > limit and self.close_code is None:
            self._drained = trio.Event()
            await self._drained.wait()
        self._drained = None

    # ----- the writer ------------------------------------------------------

    async def serve_writer(
        self, heartbeat: Callable[[], None] | None = None, interval: float = math.inf
    ) -> None:
        """Write queued bytes until closed. Returns after the close frame went out.

        ``heartbeat`` (if given) is called every ``interval`` seconds; the
        gateway pings there, or closes a silent peer. Beating here rather than
        in a task of its own saves that task on every connection: about a
        tenth of an idle connection's memory (measured with the harness's
        *connections* scenario, see README "Performance").
        """
        stream = self._stream
        next_beat = trio.current_time() + interval if heartbeat is not None else math.inf
        try:
            while True:
                if heartbeat is None:
                    await self._wake.wait()
                else:
                    with trio.move_on_at(next_beat):
                        await self._wake.wait()
                    now = trio.current_time()
                    if now >= next_beat:
                        next_beat = now + interval
                        heartbeat()  # may push a ping or close: both wake us if needed
                        if not self._wake.is_set():
                            continue
                self._wake = trio.Event()
                if self.close_code is not None:
                    break
                if not self._queue:
                    continue
                queue = self._queue
                self._queue = []
                self._queued_bytes = 0
                data = queue[0] if len(queue) == 1 else b"".join(queue)
                with trio.CancelScope() as scope:
                    self._send_scope = scope
                    await stream.send_all(data)
                self._send_scope = None
                if scope.cancelled_caught:
                    return
                self.sent_bytes += len(data)
                self.sent_writes += 1
                if self._drained is not None:
                    self._drained.set()
            if self._close_frame:
                # A peer that stopped reading must not hold the writer forever.
                with trio.move_on_after(2):
                    await stream.send_all(self._close_frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if self.close_code is None:
                self.close_code = CloseCode.GOING_AWAY
        finally:
            self.closed.set()
            if self._raw is not None:
                # The fd belongs to trio's stream; give it back without closing it.
                self._raw.detach()
                self._raw = None


def close_reason(code: CloseCode) -> str:
    return CLOSE_REASONS.get(code, code.name)
