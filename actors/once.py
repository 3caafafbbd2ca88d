"""``Once``: the one bit of a request that changes, kept out of the request itself.

Actor messages are frozen values. A request cast to a room (a post, a change)
must still be answered exactly once although several paths may try: the
room's fan-out, a failed write, a crash (the runtime fails what it held), the
cluster link taking a forwarded request back. The request carries a ``Once``
the way an ``ask`` carries its ``Reply``: the first ``claim()`` wins.
"""

from __future__ import annotations


class Once:
    __slots__ = ("_claimed",)

    def __init__(self) -> None:
        self._claimed = False

    @property
    def claimed(self) -> bool:
        return self._claimed

    def claim(self) -> bool:
        """True the first time only: the caller is the one to answer."""
        if self._claimed:
            return False
        self._claimed = True
        return True
