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
from realtime_server.base import metrics
from realtime_server.wsframes import binary_frame

log = logging.getLogger(__name__)

# Seconds a closing session waits for the peer to take the end of a frame in
# progress and the close frame (Settings.close_timeout overrides it).
CLOSE_TIMEOUT = 5.0


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
        "_writing",
        "_wait_scope",
        "_head_partial",
        "_flush",
        "_held_bytes",
        "_drained",
        "_close_frame_for",
        "_raw",
        "_fd",
        "close_timeout",
        "auth_deadline",
    )

    def __init__(
        self,
        info: SessionInfo,
        stream: trio.abc.Stream,
        max_queue_bytes: int,
        close_frame_for: Callable[[CloseCode], bytes] | None = None,
        raw_socket: socket.socket | None = None,
        close_timeout: float = CLOSE_TIMEOUT,
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
        # True while the writer has bytes on their way: push() must not jump them.
        self._writing = False
        # The writer's wait for socket space; close() cancels it (never a send).
        self._wait_scope: trio.CancelScope | None = None
        # queue[0] is the rest of a frame push() already put partly on the wire.
        self._head_partial = False
        # close(flush=True): what is queued still goes out before the close frame.
        self._flush = False
        self._held_bytes = 0
        # Made only while someone waits in wait_queue_below: one Event less
        # per idle connection.
        self._drained: trio.Event | None = None
        # Builds the WebSocket close frame (the connection's frame protocol knows how).
        self._close_frame_for = close_frame_for
        # The same non-blocking socket trio uses, for the idle fast path in push().
        self._raw = raw_socket
        # What the writer sends through: that socket, or one made on the stream's fd.
        self._fd = raw_socket
        if self._fd is None and isinstance(stream, trio.SocketStream):
            self._fd = socket.socket(fileno=stream.socket.fileno())
        # How long a closing session waits for the peer to take the end of the
        # frame in progress and the close frame before dropping the connection.
        self.close_timeout = close_timeout
        # trio time at which the session's access token expires (see ``reauthorize``).
        self.auth_deadline = math.inf

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
        if self._raw is not None and not self._queue and not self._writing:
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
            if n:
                # A frame is half on the wire: its rest must follow whatever happens.
                self._head_partial = True
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

    def close(
        self, code: CloseCode, close_frame: bytes | None = None, *, flush: bool = False
    ) -> None:
        """Ask the writer to send a close frame and stop; idempotent.

        Without ``flush``, whatever is still queued is dropped: a slow consumer
        would never drain it, and a client that reconnects resumes from its
        cursors anyway. A frame already partly written is still finished
        first, so the peer never reads a truncated frame before the close.
        With ``flush`` (a draining shutdown) everything queued goes out first:
        the acks of what was stored reach their senders.
        """
        if self.close_code is not None:
            return
        self.close_code = code
        self._flush = flush
        metrics.session_closed(code, self._queued_bytes + self._held_bytes)
        if close_frame is None and self._close_frame_for is not None:
            close_frame = self._close_frame_for(code)
        self._close_frame = close_frame
        if not flush:
            keep = self._queue[:1] if self._head_partial else []
            self._queue = keep
            self._queued_bytes = sum(map(len, keep))
        self._held.clear()
        self._held_bytes = 0
        self._wake.set()
        if self._drained is not None:
            self._drained.set()
        if self._wait_scope is not None and not flush:
            # The writer waits for a peer that is not reading: stop waiting for
            # the rest of the batch (it finishes only the frame it started).
            self._wait_scope.cancel()

    def reauthorize(self, expires_in: float) -> None:
        """The session's credentials now last ``expires_in`` more seconds.

        When they lapse the writer closes the session with 4004
        (ACCESS_EXPIRED): the client refreshes its token over REST and
        reconnects with its cursors.
        """
        self.auth_deadline = trio.current_time() + expires_in
        self._wake.set()  # the writer re-arms its timer

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
        *connections* scenario, see README "Performance"). The access token's
        expiry (``reauthorize``) is timed here too, for the same reason.
        """
        next_beat = trio.current_time() + interval if heartbeat is not None else math.inf
        try:
            while True:
                deadline = min(next_beat, self.auth_deadline)
                if deadline == math.inf:
                    await self._wake.wait()
                else:
                    with trio.move_on_at(deadline):
                        await self._wake.wait()
                    now = trio.current_time()
                    if now >= self.auth_deadline:
                        self.close(CloseCode.ACCESS_EXPIRED)
                    if now >= next_beat and heartbeat is not None:
                        next_beat = now + interval
                        heartbeat()  # may push a ping or close: both wake us if needed
                    if not self._wake.is_set():
                        continue
                self._wake = trio.Event()
                if self.close_code is not None:
                    break
                if not self._queue:
                    continue
                if not await self._write_queue():
                    break  # close() interrupted the write
            with trio.move_on_after(self.close_timeout):
                # The rest of what is owed (the frame in progress, or everything
                # when flushing), then the close frame. A peer that takes none of
                # it within close_timeout is dropped: it may then see a frame cut
                # short, which no reading peer ever does.
                while self._queue:
                    await self._write_queue(to_the_end=True)
                if self._close_frame:
                    await self._send(memoryview(self._close_frame))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if self.close_code is None:
                self.close_code = CloseCode.GOING_AWAY
        finally:
            self.closed.set()
            if self._fd is not None:
                # The fd belongs to trio's stream; give it back without closing it.
                self._fd.detach()
                self._fd = self._raw = None

    async def _write_queue(self, *, to_the_end: bool = False) -> bool:
        """Write everything queued in one go; False if a close interrupted it.

        An interrupted write leaves in the queue exactly the rest of the frame
        it had started (frame boundaries are where queued items end), so the
        close frame that follows lands on a boundary.
        """
        queue = self._queue
        started_mid_frame = self._head_partial
        self._queue = []
        self._queued_bytes = 0
        self._head_partial = False
        data = queue[0] if len(queue) == 1 else b"".join(queue)
        self._writing = True
        try:
            sent = await self._send(memoryview(data), interruptible=not to_the_end)
        finally:
            self._writing = False
        self.sent_bytes += sent
        self.sent_writes += 1
        if self._drained is not None:
            self._drained.set()
        if sent == len(data):
            return True
        # Interrupted by close(): owe the rest of the frame in progress, if any.
        # Every queued item ends on a frame boundary (the first one may start
        # mid-frame: the rest of a frame push() began).
        end = 0
        for item in queue:
            end += len(item)
            if end > sent:
                break
        item_start = end - len(item)
        mid_frame = sent > item_start or (item_start == 0 and started_mid_frame)
        if mid_frame:
            self._queue = [data[sent:end]]
            self._queued_bytes = end - sent
            self._head_partial = True
        return False

    async def _send(self, view: memoryview, *, interruptible: bool = False) -> int:
        """Send ``view``; returns how much went. Only the wait for socket space is
        ever cancelled, never a send: whatever was sent is known exactly."""
        fd = self._fd
        if fd is None:  # not a socket (in-memory test streams): no partial writes to track
            await self._stream.send_all(view)
            return len(view)
        sent = 0
        while sent < len(view):
            try:
                sent += fd.send(view[sent:])
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                raise trio.BrokenResourceError(f"socket write failed: {exc!r}") from None
            if interruptible and self.close_code is not None and not self._flush:
                return sent
            with trio.CancelScope() as scope:
                if interruptible:
                    self._wait_scope = scope
                try:
                    await trio.lowlevel.wait_writable(fd)
                finally:
                    self._wait_scope = None
            if scope.cancelled_caught:
                return sent
        return sent


def close_reason(code: CloseCode) -> str:
    return CLOSE_REASONS.get(code, code.name)
