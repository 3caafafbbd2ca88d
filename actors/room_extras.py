"""Pinned messages, the disappearing-messages timer and expiry: a mixin of RoomActor.

Rules (issue 18):
- Who may pin, unpin or change the timer: a group's admins and owner, either
  member of a direct room (``room_rules.manage_problem``).
- At most ``MAX_PINS`` pins; a fourth answers ``pin_limit``. Pinning what is
  pinned, unpinning what is not, or setting the timer it already has answers
  ``ok`` without ``ev``: nothing changed, no event.
- Each change is an event with its ``ev`` (``actors.room_changes``): stored
  with its ``room_events`` row in one transaction, then pushed and replayed on
  resume like an edit. A deleted message drops out of the pins in the delete's
  own transaction (no separate unpin event: ``msg.deleted`` says it).
- A new timer is announced in the room as a ``system`` message (text: the
  event as JSON, like group changes) and applies to messages stored after it;
  system messages never expire.
- Expiry reuses delete-for-everyone (``RoomChanges._erase``): text, media,
  reactions, reply previews and pins are erased, and members get
  ``msg.deleted`` (``by``: "system") with its ``ev``. The sweeper
  (``actors.room_expiry``) says when; the actor re-checks each message's
  ``expires_at`` against the sweeper's ``now`` before erasing.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from actors.room_changes import AnyChange, ExpireData, RoomChanges, skip_of
from actors.room_rules import manage_problem, pin_problem
from protocol import codec
from protocol.frames_chat import (
    DISAPPEAR_TTLS,
    MAX_PINS,
    DisappearData,
    DisappearingData,
    MsgPinned,
    PinData,
    PinnedData,
    RoomDisappearing,
)
from storage.base import new_id
from storage.messages_rich import RoomEvent
from storage.room_pins import Pin, pins_store

if TYPE_CHECKING:  # it imports this module
    from actors.room import AnyPost

SYSTEM_SENDER = "system"


class RoomExtras(RoomChanges):
    """Pins, the timer and expiry. State lives on the actor."""

    kind: str  # the room's kind: direct | group

    async def _post(self, post: AnyPost) -> None: ...

    async def _other_change(self, change: AnyChange) -> None:
        match change.op:
            case PinData():
                await self._pin(change, change.op)
            case DisappearData():
                await self._disappear(change, change.op)
            case ExpireData():
                await self._expire(change, change.op)
            case _:
                await super()._other_change(change)

    async def _pin(self, change: AnyChange, op: PinData) -> None:
        problem = manage_problem(self.kind, self.roles.get(change.user_id))
        if problem is not None:
            change.reply_err(*problem)
            return
        pinned = [p.seq for p in self.pins]
        if op.off != (op.seq in pinned):
            change.reply_ok()  # already so: idempotent, no event
            return
        store = pins_store(self.deps.store)
        ev, at = self.last_ev + 1, self.deps.clock()
        if op.off:
            after = [s for s in pinned if s != op.seq]
            raw = self._pinned(ev, op, change.user_id, at, after)
            await store.unpin(self.key, op.seq, RoomEvent(ev, "unpin", op.seq, raw, at))
            self.pins = [p for p in self.pins if p.seq != op.seq]
        else:
            problem = pin_problem(await self._find(op.seq), pinned, MAX_PINS)
            if problem is not None:
                change.reply_err(*problem)
                return
            raw = self._pinned(ev, op, change.user_id, at, [*pinned, op.seq])
            pin = Pin(op.seq, change.user_id, at)
            await store.pin(self.key, pin, RoomEvent(ev, "pin", op.seq, raw, at))
            self.pins = [*self.pins, pin]
        self.last_ev = ev
        self._broadcast(raw, ev, skip=skip_of(change))
        change.reply_ok(ev)

    def _pinned(self, ev: int, op: PinData, by: str, at: int, pins: list[int]) -> bytes:
        data = PinnedData(room=self.key, ev=ev, seq=op.seq, by=by, at=at, off=op.off, pins=pins)
        return codec.encode(MsgPinned(d=data))

    async def _disappear(self, change: AnyChange, op: DisappearData) -> None:
        problem = manage_problem(self.kind, self.roles.get(change.user_id))
        if problem is not None:
            change.reply_err(*problem)
            return
        ms = DISAPPEAR_TTLS[op.ttl]
        if ms == self.disappear_ms:
            change.reply_ok()
            return
        ev, at = self.last_ev + 1, self.deps.clock()
        data = DisappearingData(room=self.key, ev=ev, by=change.user_id, ttl=op.ttl, at=at)
        raw = codec.encode(RoomDisappearing(d=data))
        await pins_store(self.deps.store).set_disappearing(
            self.key, ms, RoomEvent(ev, "disappear", None, raw, at)
        )
        self.last_ev = ev
        self.disappear_ms = ms
        self._broadcast(raw, ev, skip=skip_of(change))
        change.reply_ok(ev)
        # Announced like group changes; posted through this actor's own path.
        from actors.room import PostAs

        text = json.dumps(
            {"ev": "disappearing", "by": change.user_id, "ttl": op.ttl}, separators=(",", ":")
        )
        await self._post(PostAs(SYSTEM_SENDER, new_id("sys_"), text, kind="system", system=True))

    async def _expire(self, change: AnyChange, op: ExpireData) -> None:
        ev_before = self.last_ev
        for seq in op.seqs:
            m = await self._find(seq)
            if m is None or m.deleted or m.expires_at is None or m.expires_at > op.now:
                continue
            await self._erase(m, SYSTEM_SENDER, op.now, skip=None)
        change.reply_ok(self.last_ev if self.last_ev != ev_before else None)
