"""ICE servers for clients, with TURN REST credentials.

The TURN REST scheme (draft-uberti-behave-turn-rest, what coturn's
``use-auth-secret`` implements): the server and the TURN relay share a
secret; a client gets

    username   = "<expiry unix seconds>:<user id>"
    credential = base64(HMAC-SHA1(secret, username))

and the relay recomputes the credential from the username, so nothing is
stored and a credential stops working at its expiry. With no secret
configured, TURN urls are not handed out at all (a TURN server without
credentials is no use to a client) and only STUN servers are returned.

Pure functions: the caller passes the clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from protocol.frames_calls import IceServer
from realtime_server.base.settings import Settings


def split_urls(value: str) -> list[str]:
    """A comma- or space-separated setting as a list of urls."""
    return [u for u in value.replace(",", " ").split() if u]


def turn_credentials(secret: str, user_id: str, expires_at: int) -> tuple[str, str]:
    """(username, credential) valid until ``expires_at`` (Unix seconds)."""
    username = f"{expires_at}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(settings: Settings, user_id: str, now: float) -> list[IceServer]:
    """What ``user_id`` should give RTCPeerConnection, at time ``now`` (Unix seconds)."""
    servers: list[IceServer] = []
    stun = split_urls(settings.call_stun_urls)
    if stun:
        servers.append(IceServer(urls=stun))
    turn = split_urls(settings.call_turn_urls)
    if turn and settings.call_turn_secret:
        username, credential = turn_credentials(
            settings.call_turn_secret, user_id, int(now) + settings.call_turn_ttl
        )
        servers.append(IceServer(urls=turn, username=username, credential=credential))
    return servers
