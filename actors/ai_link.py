"""What AI generations need from the other nodes (issue 13).

A generation runs on the node where its ask arrived. With several nodes the
room's one generation slot is a lease in the database (taken before the
prompt is stored, given back when the generation ends), its frames are
published on the room's bus channel for member devices elsewhere, and
attach / stop from a device on another node are forwarded to the node that
runs it. ``AiLink`` is the seam: ``actors/`` knows nothing of buses; a
single node has no link (``None``) and none of this runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

# What a published batch of frames is (``AiLink.frames``).
START, DELTAS, END = 0, 1, 2


class AiLink(Protocol):
    async def take_slot(self, room_id: str) -> int | None:
        """The room's generation slot across nodes: a token, or None (busy elsewhere)."""
        ...

    async def free_slot(self, room_id: str, token: int) -> None:
        """Give the slot taken with ``token`` back (never raises)."""
        ...

    def frames(self, room_id: str, gen_id: str, kind: int, data: bytes, n: int = 0) -> None:
        """Frames the generation pushed to its local sessions (already framed for the
        socket): the same bytes go to member sessions on other nodes. ``n``:
        deltas sent so far (what an ``ai.error`` says if this node dies)."""
        ...

    def attach_reply(
        self, room_id: str, gen_id: str, origin: str, fid: int, data: bytes, ended: bool
    ) -> None:
        """What a session on ``origin`` attaching from some index gets first, in
        order with the generation's live frames."""
        ...

    async def stop(self, user_id: str, gen_id: str) -> bool:
        """Stop a generation another node runs; False if no node is known to run it."""
        ...

    async def stop_room(self, user_id: str, room_id: str) -> None:
        """Stop ``room_id``'s generation if another node runs one."""
        ...

    async def attach(
        self, user_id: str, session: Any, room_id: str, gen_id: str | None, from_: int
    ) -> bool:
        """Attach ``session`` to the room's generation on another node; False if none runs."""
        ...

    async def running(self, room_ids: Sequence[str]) -> dict[str, str]:
        """The generations other nodes run now in these rooms: room -> generation id."""
        ...
