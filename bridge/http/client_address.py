"""Who is asking: the client address every per-address limit counts against.

Behind a reverse proxy every request's direct peer is the proxy, so a limit
per peer would be shared by all users. ``TRUSTED_PROXIES`` lists the proxies
(addresses or CIDRs); only when the direct peer is one of them is the client
address read from ``PROXY_HEADER`` (``X-Forwarded-For``, or RFC 7239
``Forwarded``). The chain is read from the right, each hop appended by the
proxy that received from it: the right-most hop that is not a trusted proxy
is the client. Hops to its left were written by the client itself and prove
nothing. A request from any other peer is that peer, whatever its headers say.

The key a limit counts under is the address, except for IPv6, where it is
the /64 network: one subscriber usually holds a whole /64 and could otherwise
change address at every request.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from quart import current_app, request

from realtime_server.base.settings import Network, parse_networks

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
IPV6_PREFIX = 64
UNKNOWN = "unknown"


@lru_cache(maxsize=8)
def _networks(text: str) -> tuple[Network, ...]:
    return parse_networks(text)


def parse_address(text: str) -> Address | None:
    """An address from a header hop or peer: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # IPv4 with a port; IPv6 has two colons or more
        text = text.split(":", 1)[0]
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def forwarded_hops(header: str, values: Iterable[str]) -> list[str]:
    """The hops a forwarding header lists, left (first client) to right (last proxy)."""
    hops: list[str] = []
    for value in values:
        for element in value.split(","):
            if header == "x-forwarded-for":
                hops.append(element.strip())
                continue
            hop = ""
            for pair in element.split(";"):
                name, _, found = pair.partition("=")
                if name.strip().lower() == "for":
                    hop = found.strip()
            hops.append(hop)
    return hops


def resolve(peer: str | None, hops: list[str], trusted: tuple[Network, ...]) -> Address | str:
    """The client: the peer, unless it is a trusted proxy; then the right-most
    untrusted hop (the left-most one when every hop is trusted)."""
    address = parse_address(peer or "")
    if address is None:
        return peer or UNKNOWN
    for hop in reversed(hops):
        if not any(address in network for network in trusted):
            return address
        found = parse_address(hop)
        if found is None:
            # "unknown", an obfuscated name, garbage: the proxy we trust could
            # not say who it was, so the proxy is the most we know.
            return address
        address = found
    return address


def limit_key(address: Address | str) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


def client_ip() -> str:
    """The current request's client, as the key per-address limits count under."""
    settings = current_app.extensions["bridge"].settings
    trusted = _networks(settings.trusted_proxies)
    peer = request.remote_addr
    if not trusted:
        address: Address | str = parse_address(peer or "") or peer or UNKNOWN
    else:
        header = settings.proxy_header.strip().lower()
        address = resolve(peer, forwarded_hops(header, request.headers.getlist(header)), trusted)
    return limit_key(address)


__all__ = ["client_ip", "forwarded_hops", "limit_key", "parse_address", "resolve"]
