"""Files in AI projects: cutting their text into chunks, and the chunks a question gets.

Rules:
- A file's text is cut into chunks of at most ``chunk_tokens`` estimated
  tokens, at the largest boundary that fits: paragraph, line, sentence, word,
  and only for a run with no whitespace at all, characters. Nothing is lost
  or repeated: the chunks joined are the text, so the stored file can be
  shown whole from its chunks.
- A question in a conversation of a project (its ``preset_id``) gets the
  chunks of that project's files ranked by full-text search over the
  question's words (``storage.ai_files``), most relevant first, as many as
  fit the files' budget: ``AI_FILES_CONTEXT_TOKENS``, never more than what
  ``AI_CONTEXT_TOKENS`` leaves after the system prompt and the question
  (the history gets the rest, see ``actors.ai_context``). When no word
  matches ("summarise this"), the files' opening chunks are used instead, in
  turns, so a project's files are never silently ignored.
- The chunks go into the system message, each headed with its file's name,
  and the model is asked to cite the file names it used. Which files went in
  is recorded per generation (``ai.start`` and ``ai.done`` carry them, and the
  stored answer in the history): that is the citation a client can show
  whatever the model wrote.
- Only the owner's files are used: the search is limited to files uploaded
  by the user asking, in the conversation's own preset.

Everything but ``project_context`` is pure and tested without I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from actors.ai_providers import estimate_tokens

# Through protocol.frames: importing frames_ai before it is an import cycle.
from protocol import frames as _frames  # noqa: F401
from protocol.frames_ai import AiFileRef
from storage.ai_files import AiFilesStore, FileChunk, FileRef

# Boundaries to cut at, largest first; a cut goes right after the match.
_BOUNDARIES: Final = (
    re.compile(r"\n[ \t]*\n\s*"),  # paragraph
    re.compile(r"\n"),  # line
    re.compile(r"[.!?;:]\s+"),  # sentence
    re.compile(r"\s+"),  # word
)
# Letters and digits only: no search syntax of either database survives.
_WORD: Final = re.compile(r"[^\W_]+")
MAX_TERMS: Final = 32
# Candidates read from storage per question; the budget picks among them.
CANDIDATES: Final = 64
# Words too common to tell passages apart (PostgreSQL's ts_rank has no idf).
_STOPWORDS: Final = frozenset(
    """a an and are as at be but by can could did do does for from had has have how i if in
    into is it its me my of on or our so than that the their them then there these they this
    to was we were what when where which who whom why will with would you your""".split()
)
FILES_HEADER: Final = (
    "Excerpts from the files of this project follow, the most relevant first; each "
    "begins with [file: NAME, part N]. Use them when they help. When your answer "
    "relies on one, cite its file name in square brackets, like [NAME]."
)


def chunk_text(text: str, chunk_tokens: int) -> list[str]:
    """Cut ``text`` into chunks of at most ``chunk_tokens`` estimated tokens.

    ``"".join(chunk_text(t, n)) == t`` for every ``t``.
    """
    limit = max(1, chunk_tokens * 4 - 1)  # estimate_tokens is len // 4 + 1
    chunks: list[str] = []
    current = ""
    for piece in _pieces(text, limit, 0):
        if current and len(current) + len(piece) > limit:
            chunks.append(current)
            current = ""
        current += piece
    if current:
        chunks.append(current)
    return chunks


def _pieces(text: str, limit: int, level: int) -> Iterable[str]:
    if len(text) <= limit:
        yield text
        return
    if level == len(_BOUNDARIES):
        for i in range(0, len(text), limit):
            yield text[i : i + limit]
        return
    start = 0
    for match in _BOUNDARIES[level].finditer(text):
        if match.end() > start:
            yield from _pieces(text[start : match.end()], limit, level + 1)
            start = match.end()
    if start < len(text):
        yield from _pieces(text[start:], limit, level + 1)


def search_terms(question: str) -> list[str]:
    """The question's distinct words worth searching for, lower case, in order."""
    words = [w for w in _WORD.findall(question.lower()) if len(w) > 1]
    kept = [w for w in words if w not in _STOPWORDS] or words
    return list(dict.fromkeys(kept))[:MAX_TERMS]


def _heading(chunk: FileChunk) -> str:
    return f"[file: {chunk.name}, part {chunk.n + 1}]"


def pick_chunks(ranked: Sequence[FileChunk], budget_tokens: int) -> list[FileChunk]:
    """The chunks that fit ``budget_tokens`` (with the header), in rank order."""
    used = estimate_tokens(FILES_HEADER)
    picked: list[FileChunk] = []
    for chunk in ranked:
        cost = estimate_tokens(_heading(chunk)) + estimate_tokens(chunk.text) + 2
        if used + cost <= budget_tokens:
            picked.append(chunk)
            used += cost
    return picked


def with_files(system_prompt: str, chunks: Sequence[FileChunk]) -> str:
    """The system prompt followed by the chunks, each headed with its file's name."""
    if not chunks:
        return system_prompt
    parts = [system_prompt] if system_prompt else []
    parts.append(FILES_HEADER)
    parts += [f"{_heading(c)}\n{c.text.strip()}" for c in chunks]
    return "\n\n".join(parts)


def files_of(chunks: Sequence[FileChunk]) -> list[FileRef]:
    """The distinct files of ``chunks``, in the order they first appear."""
    seen: dict[str, FileRef] = {}
    for c in chunks:
        seen.setdefault(c.file_id, FileRef(c.file_id, c.name))
    return list(seen.values())


def files_budget(settings: Any, system_prompt: str, question: str) -> int:
    """The files' share: their own limit, within what the whole context leaves."""
    left: int = (
        settings.ai_context_tokens
        - (estimate_tokens(system_prompt) if system_prompt else 0)
        - estimate_tokens(question)
        - 8
    )
    share: int = settings.ai_files_context_tokens
    return max(0, min(share, left))


@dataclass(frozen=True, slots=True)
class ProjectContext:
    system_prompt: str  # the conversation's, with the chunks appended
    files: list[AiFileRef] | None  # for the frames: None when no file was used


async def project_context(
    files: AiFilesStore,
    settings: Any,
    conv: Any,  # storage.ai.AiConversation | None
    user_id: str,
    question: str,
    system_prompt: str,
    *,
    gen_id: str,
    room_id: str,
) -> ProjectContext:
    """The system prompt with the relevant file chunks of ``conv``'s project,
    and the files used, recorded as ``gen_id``'s citations. Without a project
    (or files) this costs no query beyond the search itself."""
    if conv is None or conv.preset_id is None or conv.user_id != user_id:
        return ProjectContext(system_prompt, None)
    budget = files_budget(settings, system_prompt, question)
    if budget <= estimate_tokens(FILES_HEADER):
        return ProjectContext(system_prompt, None)
    ranked = await files.search(conv.preset_id, user_id, search_terms(question), CANDIDATES)
    if not ranked:
        ranked = await files.leading(conv.preset_id, user_id, CANDIDATES)
    picked = pick_chunks(ranked, budget)
    if not picked:
        return ProjectContext(system_prompt, None)
    used = files_of(picked)
    await files.cite(gen_id, room_id, used)
    return ProjectContext(
        with_files(system_prompt, picked), [AiFileRef(id=f.id, name=f.name) for f in used]
    )
