"""Which uploads each media message kind may carry (``msg.send`` with ``media``).

An upload's type is sniffed from its bytes when it is stored (REST
``POST /media``); a message of a media kind must carry an upload of that
kind, so a client never receives a "voice note" that is a PNG:

    image     image/*                  (JPEG, PNG, GIF, WebP)
    video     video/*                  (MP4, WebM)
    audio     audio/*                  (Ogg, MP3, WAV, M4A), and MP4 or WebM:
                                       sniffing a container cannot tell an
                                       audio-only recording (a browser's
                                       voice note is WebM/Opus) from a video
    document  any accepted upload      (a file, shown as a file)

Anything else is refused with ``media_kind_mismatch``. Pure: no I/O.
"""

from __future__ import annotations

# Whole containers that may hold sound only.
_AUDIO_CONTAINERS = frozenset({"video/mp4", "video/webm"})


def media_kind_problem(kind: str, content_type: str) -> str | None:
    """Why an upload of ``content_type`` cannot be a ``kind`` message; None when it can."""
    family = content_type.split("/", 1)[0]
    if kind == "document":
        return None
    if kind == family or (kind == "audio" and content_type in _AUDIO_CONTAINERS):
        return None
    article = "an" if kind[:1] in "aeiou" else "a"
    return (
        f"This upload is {content_type}; {article} {kind} message needs {article} {kind} upload"
        " (send it as a document instead)."
    )
