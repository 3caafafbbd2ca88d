"""Call frames: WebRTC signaling and the call state machine, over the socket.

The server carries no media. It rings the other members of a room, keeps
the call's state, and relays SDP and ICE between the call's participants::

    client -> server                       server -> client
    call.start   ring a room               call.ok          reply: the call as it is now
    call.accept  answer a ringing call     call.ring        a call rings on this device
    call.decline refuse it                 call.state       every transition, to every device
    call.join    join a running group call call.remote.sdp  a peer's offer/answer
                 (or come back after a     call.remote.ice  a peer's ICE candidate
                 reconnect)                call.missed      you missed a call
    call.hangup  leave / cancel / end
    call.sdp     offer or answer to a peer
    call.ice     ICE candidate to a peer

Mesh rule (the same for 1:1 and group calls): when ``call.state`` says that
another user ``joined`` or ``rejoined``, every participant already in the call
sends that user an offer. An SFU later only changes who the peer is.

Pure types, no I/O: imported by ``protocol.frames`` into its unions.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from protocol.frames_base import Frame

# The same constraints as protocol.frames' RoomId and RequestId, restated so
# this module can be imported first: protocol.frames imports it at its end.
# Ids never hold a NUL: PostgreSQL cannot compare one, so a NUL id answered
# "unavailable" there and "not_found" on SQLite; now ``invalid`` on both.
_NO_NUL = r"^[^\x00]*$"
RoomId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_NO_NUL)]
RequestId = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
CallId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_NO_NUL)]
UserId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_NO_NUL)]
CallKind = Literal["audio", "video"]
CallStateName = Literal["ringing", "active", "ended"]
CallOutcome = Literal["answered", "declined", "busy", "missed", "cancelled", "failed"]
ParticipantStatus = Literal[
    "ringing", "joined", "reconnecting", "left", "declined", "missed", "busy"
]
CallEvent = Literal[
    "started", "joined", "declined", "left", "reconnecting", "rejoined", "missed", "ended"
]
SdpType = Literal["offer", "answer"]


# ----- payloads ------------------------------------------------------------


class IceServer(msgspec.Struct, omit_defaults=True):
    """One entry of RTCConfiguration.iceServers, as the browser API spells it."""

    urls: list[str]
    # TURN only: time-limited credentials (TURN REST scheme).
    username: str | None = None
    credential: str | None = None


class CallParticipant(msgspec.Struct, omit_defaults=True):
    """A member of the call and where they are in it."""

    user: str
    status: ParticipantStatus
    # The device (hello's ``device``) that answered; only it gets signaling.
    device: str | None = None


class CallView(msgspec.Struct, omit_defaults=True):
    """A call as its participants see it; times are ms since the Unix epoch."""

    id: str
    room: str
    caller: str
    kind: CallKind
    group: bool
    state: CallStateName
    started_at: int
    participants: list[CallParticipant]
    outcome: CallOutcome | None = None
    answered_at: int | None = None
    ended_at: int | None = None
    # Only in call.ok and call.ring: what to give RTCPeerConnection.
    ice_servers: list[IceServer] | None = None


class CallStartData(msgspec.Struct, omit_defaults=True):
    """Ring every other member of ``room``: a direct room makes a 1:1 call."""

    room: RoomId
    kind: CallKind = "audio"


class CallRef(msgspec.Struct, omit_defaults=True):
    """Names the call a request is about."""

    call: CallId


class CallSdpData(msgspec.Struct, omit_defaults=True):
    """An SDP offer or answer for one other participant (``to``)."""

    call: CallId
    to: UserId
    type: SdpType
    sdp: str


class CallIceData(msgspec.Struct, omit_defaults=True):
    """One trickled ICE candidate for ``to``; an empty ``candidate`` ends the trickle."""

    call: CallId
    to: UserId
    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: Annotated[int, msgspec.Meta(ge=0, le=1023)] | None = None
    ufrag: str | None = None


class CallStateData(msgspec.Struct, omit_defaults=True):
    """What happened (``event``, done by ``user``) and the call after it."""

    event: CallEvent
    call: CallView
    user: str | None = None


class RemoteSdpData(msgspec.Struct, omit_defaults=True, rename={"from_": "from"}):
    """A peer's SDP: give it to setRemoteDescription."""

    call: str
    from_: str
    type: SdpType
    sdp: str


class RemoteIceData(msgspec.Struct, omit_defaults=True, rename={"from_": "from"}):
    """A peer's ICE candidate: give it to addIceCandidate."""

    call: str
    from_: str
    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    ufrag: str | None = None


class CallMissedData(msgspec.Struct, omit_defaults=True):
    """A call to you that nobody answered."""

    call: str
    room: str
    caller: str
    kind: CallKind
    ts: int


# ----- client -> server ----------------------------------------------------


class CallStart(Frame, tag="call.start"):
    """Start a call in a room; answered by ``call.ok`` or ``err``."""

    id: RequestId
    d: CallStartData


class CallAccept(Frame, tag="call.accept"):
    """Answer a call ringing on this device; answered by ``call.ok`` or ``err``."""

    id: RequestId
    d: CallRef


class CallDecline(Frame, tag="call.decline"):
    """Refuse a ringing call; answered by ``ok``."""

    id: RequestId
    d: CallRef


class CallJoin(Frame, tag="call.join"):
    """Join a running group call, or bring a call back to this device; ``call.ok``."""

    id: RequestId
    d: CallRef


class CallHangup(Frame, tag="call.hangup"):
    """Leave the call (cancel it while it rings); answered by ``ok``."""

    id: RequestId
    d: CallRef


class CallSdp(Frame, tag="call.sdp"):
    """Send an offer or answer to a participant; answered by ``ok`` once relayed."""

    id: RequestId
    d: CallSdpData


class CallIce(Frame, tag="call.ice"):
    """Send an ICE candidate to a participant; answered by ``ok`` once relayed."""

    id: RequestId
    d: CallIceData


CALL_CLIENT_FRAMES = (CallStart, CallAccept, CallDecline, CallJoin, CallHangup, CallSdp, CallIce)
CALL_CLIENT_TYPES: frozenset[str] = frozenset(
    str(f.__struct_config__.tag) for f in CALL_CLIENT_FRAMES
)


# ----- server -> client ----------------------------------------------------


class CallOk(Frame, tag="call.ok"):
    """Reply to ``call.start``, ``call.accept`` and ``call.join``: the call, with ICE servers."""

    re: int
    d: CallView


class CallRing(Frame, tag="call.ring"):
    """A call is ringing for you; every one of your devices gets it."""

    d: CallView


class CallStateFrame(Frame, tag="call.state"):
    """A transition of a call you are part of; sent to every device of every participant."""

    d: CallStateData


class CallRemoteSdp(Frame, tag="call.remote.sdp"):
    """An offer or answer from another participant, to the device in the call."""

    d: RemoteSdpData


class CallRemoteIce(Frame, tag="call.remote.ice"):
    """An ICE candidate from another participant, to the device in the call."""

    d: RemoteIceData


class CallMissed(Frame, tag="call.missed"):
    """Notice to every device of a callee who did not answer."""

    d: CallMissedData


CALL_SERVER_FRAMES = (CallOk, CallRing, CallStateFrame, CallRemoteSdp, CallRemoteIce, CallMissed)
