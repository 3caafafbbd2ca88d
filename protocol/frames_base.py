"""What every frame module shares: the tagged base of frames and the common ids.

Imports nothing of ours, so every ``protocol.frames_*`` module can use it and
``protocol.frames`` (the closed unions) imports them all at its top, with no
cycle between them.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

RoomId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ClientId = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=64, description="client-chosen id making a send idempotent"
    ),
]
# Seqs and evs stay exact in JavaScript numbers (and in a BIGINT column).
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
RequestId = Annotated[int, msgspec.Meta(ge=0, le=2**53)]


class Frame(msgspec.Struct, tag_field="t", omit_defaults=True, forbid_unknown_fields=False):
    """The base of every frame: tagged by ``t``; unknown fields are ignored (compatible growth)."""


__all__ = ["ClientId", "Frame", "RequestId", "RoomId", "Seq"]
