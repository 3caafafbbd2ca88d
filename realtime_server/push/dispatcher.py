"""PushDispatcher: room events in, provider requests out, never in the way.

Rules:
- The room actor only enqueues (``messages_stored``, non-blocking): the ack
  and the fan-out are already done when it is called, and a full queue drops
  the event (counted and logged) rather than slow the room down.
- One task serves the queue; each device's request runs in its own task
  (at most ``concurrency`` at once), so a slow provider or a retry delays
  no other push and no other room.
- Who gets a push: members other than the sender with no online session on
  this node at the time the event is served, who did not mute the room, and
  who have a token. ``show_preview`` off: the push carries no message text.
  The badge is the user's unread count.
- Calls ring with a high-priority VoIP-style push; a missed call and a
  story reply (stored notifications) go out as ordinary pushes. Muting a
  chat silences its messages only.
- Provider answers: dead tokens are removed; 429/5xx/network errors are
  retried ``retries`` times with exponential backoff (or the provider's
  ``Retry-After``); other refusals are logged and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import trio

from protocol.frames import Message
from storage.base import Store
from storage.errors import StoreError
from storage.push_tokens import PushTarget, push_token_store

from .message import Outcome, PushMessage, Result

log = logging.getLogger(__name__)

HIDDEN = "New message"  # the body when the user hides previews
# Stored notifications that also go out as a push to offline devices.
PUSHED_NOTIFICATIONS = frozenset({"call.missed", "story.reply"})
PREVIEW_CHARS = 200


class Sender(Protocol):
    provider: str

    async def send(self, token: str, m: PushMessage, *, app_id: str) -> Result: ...


@dataclass(frozen=True, slots=True)
class _RoomMessages:
    room: str
    members: Collection[str]
    wires: Sequence[Message]


@dataclass(frozen=True, slots=True)
class _Alert:
    """A push about something other than room messages (a ring, a notification)."""

    user_ids: Collection[str]
    message: PushMessage  # badge filled in per user
    private: bool  # the body is content: hidden when the user hides previews


_Job = _RoomMessages | _Alert


@dataclass(slots=True)
class PushStatistics:
    queued: int = 0
    dropped: int = 0  # the queue was full
    sent: int = 0
    dead: int = 0  # tokens removed
    failed: int = 0  # refused, or retries exhausted
    retried: int = 0


def preview(wire: Message) -> str:
    text = wire.text if wire.text else f"[{wire.kind}]"
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def message_push(target: PushTarget, title: str, wire: Message) -> PushMessage:
    return PushMessage(
        kind="message",
        title=title,
        body=preview(wire) if target.show_preview else HIDDEN,
        badge=target.badge,
        collapse_id=wire.room,
        data={"room": wire.room, "seq": str(wire.seq)},
    )


class PushDispatcher:
    def __init__(
        self,
        store: Store,
        hub: Any,  # realtime_server.hub.Hub
        senders: dict[str, Sender],
        *,
        clock: Callable[[], int],
        queue_size: int = 1000,
        retries: int = 3,
        backoff: float = 1.0,
        concurrency: int = 16,
    ) -> None:
        self._store = store
        self._tokens = push_token_store(store)
        self._hub = hub
        self._senders = senders
        self._clock = clock
        self._retries = retries
        self._backoff = backoff
        self._limiter = trio.CapacityLimiter(concurrency)
        self._send, self._receive = trio.open_memory_channel[_Job](queue_size)
        self._stats = PushStatistics()

    def statistics(self) -> PushStatistics:
        return self._stats

    # ----- called by the room actor ---------------------------------------------

    def messages_stored(
        self, room: str, members: Collection[str], wires: Sequence[Message]
    ) -> None:
        """Non-blocking: the batch's messages, already acked and fanned out."""
        if wires:
            self._enqueue(_RoomMessages(room, members, wires))

    def call_ringing(
        self, call_id: str, room: str, caller: str, kind: str, callees: Collection[str]
    ) -> None:
        """Non-blocking: a call started ringing these users (high priority, VoIP)."""
        ring = PushMessage(
            kind="call.ring",
            title=caller,  # replaced by the caller's name when served
            body=f"Incoming {kind} call",
            badge=0,
            collapse_id=call_id,
            urgent=True,
            data={"call": call_id, "room": room, "call_kind": kind, "caller": caller},
        )
        self._enqueue(_Alert(list(callees), ring, private=False))

    def notified(self, user_ids: Collection[str], kind: str, title: str, body: str) -> None:
        """Non-blocking: a stored notification (missed call, story reply)."""
        if kind in PUSHED_NOTIFICATIONS:
            m = PushMessage(kind=kind, title=title, body=body, badge=0, collapse_id=kind)
            self._enqueue(_Alert(list(user_ids), m, private=kind != "call.missed"))

    def _enqueue(self, job: _Job) -> None:
        if not self._senders:
            return
        try:
            self._send.send_nowait(job)
            self._stats.queued += 1
        except trio.WouldBlock:
            self._stats.dropped += 1
            log.warning("push queue full: dropped a %s", type(job).__name__)

    # ----- the task ------------------------------------------------------------------

    async def serve(
        self, *, task_status: trio.TaskStatus[PushDispatcher] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started(self)
            async for job in self._receive:
                try:
                    if isinstance(job, _RoomMessages):
                        await self._room_messages(job, nursery)
                    else:
                        await self._alert(job, nursery)
                except StoreError:
                    log.warning("push: could not read the targets", exc_info=True)
                except Exception:  # a bug here must not take the node down with it
                    log.exception("push: event dropped")

    async def _room_messages(self, job: _RoomMessages, nursery: trio.Nursery) -> None:
        last = job.wires[-1]  # one push per device per batch: the newest (same collapse id)
        writers = {w.sender for w in job.wires}
        offline = [u for u in job.members if u not in writers and not self._hub.is_online(u)]
        if not offline:
            return
        targets = await self._tokens.targets(offline, room_id=job.room, now=self._clock())
        if not targets:
            return
        title = await self._tokens.title(job.room, last.sender)
        for target in targets:
            nursery.start_soon(self._deliver, target, message_push(target, title, last))

    async def _alert(self, job: _Alert, nursery: trio.Nursery) -> None:
        offline = [u for u in job.user_ids if not self._hub.is_online(u)]
        if not offline:
            return
        # Muting a chat silences its messages, never a call or a notification.
        targets = await self._tokens.targets(offline, room_id=None, now=self._clock())
        m = job.message
        if m.kind == "call.ring":
            m = replace(m, title=await self._tokens.title(m.data["room"], m.data["caller"]))
        for target in targets:
            body = m.body if target.show_preview or not job.private else ""
            nursery.start_soon(self._deliver, target, replace(m, body=body, badge=target.badge))

    async def _deliver(self, target: PushTarget, m: PushMessage) -> None:
        sender = self._senders.get(target.provider)
        if sender is None:  # a token of a provider this node is not configured for
            return
        async with self._limiter:
            for attempt in range(self._retries + 1):
                try:
                    result = await sender.send(target.token, m, app_id=target.app_id)
                except Exception:  # e.g. an unusable signing key: logged, never fatal
                    log.exception("push via %s raised", target.provider)
                    result = Result(Outcome.FAILED, "error")
                    break
                if result.outcome is Outcome.SENT:
                    self._stats.sent += 1
                    return
                if result.outcome is Outcome.DEAD:
                    self._stats.dead += 1
                    try:
                        await self._tokens.remove_dead([target.token])
                    except StoreError:  # the next push to it removes it
                        log.warning("push: could not remove a dead token", exc_info=True)
                    return
                if result.outcome is Outcome.FAILED or attempt == self._retries:
                    break
                self._stats.retried += 1
                await trio.sleep(result.retry_after or self._backoff * 2**attempt)
        self._stats.failed += 1
        log.warning("push to %s via %s failed: %s", target.user_id, target.provider, result.detail)
