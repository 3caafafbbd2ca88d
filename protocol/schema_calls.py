"""Examples of the call frames, merged into ``protocol.schema.EXAMPLES``."""

from __future__ import annotations

import msgspec

from protocol.frames_calls import (
    CallAccept,
    CallDecline,
    CallHangup,
    CallIce,
    CallIceData,
    CallJoin,
    CallMissed,
    CallMissedData,
    CallOk,
    CallParticipant,
    CallRef,
    CallRemoteIce,
    CallRemoteSdp,
    CallRing,
    CallSdp,
    CallSdpData,
    CallStart,
    CallStartData,
    CallStateData,
    CallStateFrame,
    CallView,
    IceServer,
    RemoteIceData,
    RemoteSdpData,
)

_TS = 1_700_000_000_000
_CALL = "c_018bcfe5680004f2a1"
_SDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n..."
_CANDIDATE = "candidate:842163049 1 udp 1677729535 198.51.100.7 46154 typ srflx"


def _ice(user: str) -> list[IceServer]:
    return [
        IceServer(urls=["stun:stun.example.com:3478"]),
        IceServer(
            urls=["turn:turn.example.com:3478?transport=udp"],
            username=f"1700003600:{user}",
            credential="tE3Cq8X8ZrzPpBqOKrHYQdzNvYQ=",
        ),
    ]


_RINGING = CallView(
    id=_CALL,
    room="r_ada_bob",
    caller="u_123",
    kind="video",
    group=False,
    state="ringing",
    started_at=_TS,
    participants=[
        CallParticipant(user="u_123", status="joined", device="pixel-8"),
        CallParticipant(user="u_456", status="ringing"),
    ],
)
_ACTIVE = msgspec.structs.replace(
    _RINGING,
    state="active",
    answered_at=_TS + 4200,
    participants=[
        CallParticipant(user="u_123", status="joined", device="pixel-8"),
        CallParticipant(user="u_456", status="joined", device="laptop"),
    ],
)

CALL_EXAMPLES: dict[str, msgspec.Struct] = {
    "call.start": CallStart(id=20, d=CallStartData(room="r_ada_bob", kind="video")),
    "call.accept": CallAccept(id=21, d=CallRef(call=_CALL)),
    "call.decline": CallDecline(id=22, d=CallRef(call=_CALL)),
    "call.join": CallJoin(id=23, d=CallRef(call=_CALL)),
    "call.hangup": CallHangup(id=24, d=CallRef(call=_CALL)),
    "call.sdp": CallSdp(id=25, d=CallSdpData(call=_CALL, to="u_456", type="offer", sdp=_SDP)),
    "call.ice": CallIce(
        id=26,
        d=CallIceData(call=_CALL, to="u_456", candidate=_CANDIDATE, sdp_mid="0", sdp_mline_index=0),
    ),
    "call.ok": CallOk(re=20, d=msgspec.structs.replace(_RINGING, ice_servers=_ice("u_123"))),
    "call.ring": CallRing(d=msgspec.structs.replace(_RINGING, ice_servers=_ice("u_456"))),
    "call.state": CallStateFrame(d=CallStateData(event="joined", user="u_456", call=_ACTIVE)),
    "call.remote.sdp": CallRemoteSdp(
        d=RemoteSdpData(call=_CALL, from_="u_123", type="offer", sdp=_SDP)
    ),
    "call.remote.ice": CallRemoteIce(
        d=RemoteIceData(
            call=_CALL, from_="u_123", candidate=_CANDIDATE, sdp_mid="0", sdp_mline_index=0
        )
    ),
    "call.missed": CallMissed(
        d=CallMissedData(call=_CALL, room="r_ada_bob", caller="u_123", kind="video", ts=_TS)
    ),
}
