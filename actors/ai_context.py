"""What the model sees: the recent visible messages of a room, within a token budget.

Pure functions, tested without I/O. Messages from an ``ai:`` sender are the
assistant's; everyone else's are the user's. In a group room each user line is
prefixed with its sender so the model can tell people apart. Hidden messages
(a regenerated answer, an edited branch) are left out, exactly as the visible
history leaves them out.

The budget counts estimated tokens (``estimate_tokens``) of the system prompt
and the messages; the newest messages are kept, the oldest dropped. The prompt
being answered is always kept (its size is bounded by the prompt limit).
"""

from __future__ import annotations

from collections.abc import Sequence

from actors.ai_providers import estimate_tokens
from storage.ai import is_hidden
from storage.base import StoredMessage

AI_SENDER_PREFIX = "ai:"
TITLE_WORDS = 6
TITLE_CHARS = 60


def ai_sender(model: str) -> str:
    return f"{AI_SENDER_PREFIX}{model}"


def is_ai_sender(sender_id: str) -> bool:
    return sender_id.startswith(AI_SENDER_PREFIX)


def visible(
    messages: Sequence[StoredMessage], hidden: list[tuple[int, int]]
) -> list[StoredMessage]:
    # Deleted messages (delete for everyone) are not context either.
    return [
        m
        for m in messages
        if not is_hidden(m.seq, hidden) and getattr(m, "deleted_at", None) is None
    ]


def build_context(
    system_prompt: str,
    history: Sequence[StoredMessage],
    *,
    budget_tokens: int,
    group: bool = False,
) -> list[dict[str, str]]:
    """Chat messages for the provider: system prompt, then the newest history that fits.

    ``history`` is ascending by seq and already visible-only; its last message
    is the prompt being answered.
    """
    used = estimate_tokens(system_prompt) if system_prompt else 0
    picked: list[dict[str, str]] = []
    for i, m in enumerate(reversed(history)):
        if is_ai_sender(m.sender_id):
            entry = {"role": "assistant", "content": m.text}
        else:
            content = f"{m.sender_id}: {m.text}" if group else m.text
            entry = {"role": "user", "content": content}
        cost = estimate_tokens(entry["content"]) + 4  # per-message framing
        if i > 0 and used + cost > budget_tokens:
            break
        used += cost
        picked.append(entry)
    picked.reverse()
    # Providers expect the conversation to open with a user turn.
    while picked and picked[0]["role"] == "assistant":
        picked.pop(0)
    if system_prompt:
        picked.insert(0, {"role": "system", "content": system_prompt})
    return picked


def short_title(prompt: str) -> str:
    """An automatic title from the first prompt: its first few words."""
    words = prompt.split()
    title = " ".join(words[:TITLE_WORDS])
    if len(words) > TITLE_WORDS or len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rstrip() + "…"
    return title or "New conversation"
