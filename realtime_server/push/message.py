"""What a push says, whatever the provider, and what a provider answered."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Outcome(enum.Enum):
    SENT = "sent"
    DEAD = "dead"  # the token is gone for good (FCM UNREGISTERED, APNs 410): remove it
    RETRY = "retry"  # 429, 5xx, a network error: try again later
    FAILED = "failed"  # our request was refused (4xx): retrying cannot help


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    detail: str = ""
    retry_after: float | None = None  # seconds, when the provider said


@dataclass(frozen=True, slots=True)
class PushMessage:
    kind: str  # "message", "call.ring", "call.missed"
    title: str
    body: str  # empty when the user hides previews
    badge: int
    # Pushes with the same collapse id replace each other on the device (one per room).
    collapse_id: str
    urgent: bool = False  # calls: high priority, VoIP-style
    data: dict[str, str] = field(default_factory=dict)
