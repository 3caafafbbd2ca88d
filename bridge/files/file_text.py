"""The text of a file uploaded to an AI project: its type from its bytes, then its text.

Rules:
- Accepted: plain text and Markdown (UTF-8), PDF (pypdf) and DOCX
  (python-docx). The type comes from the bytes (``%PDF-``, a ZIP holding
  ``word/document.xml``, or UTF-8 without NUL), as for media
  (``bridge.files.media``). A name ending in one of the accepted extensions
  (``.txt .md .markdown .pdf .docx``) or a declared part Content-Type that the
  bytes contradict is refused with 415 ``media_type_mismatch`` (a ``.pdf``
  that is not a PDF); bytes of any other type with 415
  ``unsupported_media_type``. Any other name is display only: a ``.py`` or
  ``.csv`` of UTF-8 text is text.
- A PDF or DOCX that does not parse, an encrypted PDF, or a file with no text
  at all (a scanned PDF: no OCR here) is 400 ``invalid``, saying which.
- Bounded work: the bytes are at most ``AI_FILE_MAX_BYTES`` (the route's
  limit); a DOCX may unpack to at most ``MAX_UNPACKED`` (a ZIP bomb is refused
  before python-docx reads it); extraction stops as soon as the text passes
  ``AI_FILE_MAX_CHARS`` (413 ``payload_too_large``). Parsing runs in a worker
  thread (``extract``): it is CPU work.
- The text is normalised for storage: newlines are ``\\n``, NUL and other
  control characters but tab and newline are dropped (PostgreSQL cannot
  hold NUL), runs of blank lines become one, and it is stripped.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from typing import Final

import trio

from bridge.errors import BadRequest, RestCode
from bridge.files.media import MediaTooLarge, MediaTypeError

TEXT: Final = "text/plain"
MARKDOWN: Final = "text/markdown"
PDF: Final = "application/pdf"
DOCX: Final = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ACCEPTED: Final = (TEXT, MARKDOWN, PDF, DOCX)
MAX_UNPACKED: Final = 64 * 1024 * 1024

_BY_EXTENSION: Final = {
    ".txt": TEXT,
    ".text": TEXT,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".pdf": PDF,
    ".docx": DOCX,
}
_DECLARED: Final = {
    "text/plain": TEXT,
    "text/markdown": MARKDOWN,
    "text/x-markdown": MARKDOWN,
    "application/pdf": PDF,
    DOCX: DOCX,
    # Some clients label a DOCX by its container.
    "application/zip": DOCX,
    "application/x-zip-compressed": DOCX,
}
_UNSPECIFIC: Final = frozenset({"", "application/octet-stream"})
_LABEL: Final = {TEXT: "text file", MARKDOWN: "text file", PDF: "PDF", DOCX: "DOCX document"}
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_BLANK_LINES: Final = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def _family(kind: str) -> str:
    """Text and Markdown are one family: either name fits either content."""
    return TEXT if kind in (TEXT, MARKDOWN) else kind


def _utf8(data: bytes) -> str | None:
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def classify(data: bytes, filename: str, declared: str) -> str:
    """The accepted type of ``data`` (one of ``ACCEPTED``); raises ``MediaTypeError``."""
    ext = posixpath.splitext(filename.lower())[1]
    named = _BY_EXTENSION.get(ext)
    kind: str | None
    if data.startswith(b"%PDF-"):
        kind = PDF
    elif data.startswith(b"PK\x03\x04"):
        kind = DOCX  # a ZIP; ``extract`` checks it is a Word document
    elif _utf8(data) is not None:
        kind = MARKDOWN if named == MARKDOWN or declared.startswith("text/markdown") else TEXT
    else:
        kind = None
    if named is not None and (kind is None or _family(kind) != _family(named)):
        raise MediaTypeError(
            f"The file is named {filename!r} but its content is not a {_LABEL[named]}.",
            code=RestCode.MEDIA_TYPE_MISMATCH,
            field="file",
        )
    if kind is None:
        raise MediaTypeError(
            "Only text (UTF-8), Markdown, PDF and DOCX files can be added to a project.",
            field="file",
        )
    declared = declared.split(";", 1)[0].strip().lower()
    # Any text/* (text/csv, text/x-python) is text: the name does not matter for text.
    claimed = TEXT if declared.startswith("text/") else _DECLARED.get(declared, declared)
    if declared not in _UNSPECIFIC and _family(claimed) != _family(kind):
        raise MediaTypeError(
            f"The file was sent as {declared} but its content is a {_LABEL[kind]}.",
            code=RestCode.MEDIA_TYPE_MISMATCH,
            field="file",
        )
    return kind


def normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


class _TooMuchText(Exception):
    pass


class _Collector:
    """Text pieces, refusing as soon as their total passes ``limit`` characters."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0

    def add(self, text: str) -> None:
        text = text.strip()
        if text:
            self.parts.append(text)
            self.size += len(text) + 2
            if self.size > self.limit:
                raise _TooMuchText

    def text(self) -> str:
        return "\n\n".join(self.parts)


def _pdf_text(data: bytes, out: _Collector) -> None:
    from pypdf import PdfReader  # loaded on the first PDF, in the worker thread

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise BadRequest("The PDF is encrypted; upload it without a password.", field="file")
        for page in reader.pages:
            out.add(page.extract_text() or "")
    except (BadRequest, _TooMuchText):
        raise
    except Exception:  # pypdf raises many kinds on damaged input; all mean the same here
        raise BadRequest("The PDF is damaged and its text cannot be read.", field="file") from None


def _docx_text(data: bytes, out: _Collector) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise BadRequest("The DOCX is damaged (not a readable ZIP).", field="file") from None
    if not any(e.filename == "word/document.xml" for e in entries):
        raise MediaTypeError(
            "This ZIP archive is not a Word (DOCX) document.",
            code=RestCode.MEDIA_TYPE_MISMATCH,
            field="file",
        )
    if sum(e.file_size for e in entries) > MAX_UNPACKED:
        raise BadRequest("The DOCX unpacks to more than the server reads.", field="file")
    from docx import Document  # loaded on the first DOCX, in the worker thread

    try:
        document = Document(io.BytesIO(data))
        for paragraph in document.paragraphs:
            out.add(paragraph.text)
        for table in document.tables:
            for row in table.rows:
                out.add(" | ".join(cell.text.strip() for cell in row.cells))
    except _TooMuchText:
        raise
    except Exception:  # python-docx and lxml raise many kinds on damaged input
        raise BadRequest("The DOCX is damaged and its text cannot be read.", field="file") from None


def extract_sync(data: bytes, kind: str, max_chars: int) -> str:
    """The normalised text of ``data`` of type ``kind`` (see the module rules)."""
    out = _Collector(max_chars)
    try:
        if kind == PDF:
            _pdf_text(data, out)
        elif kind == DOCX:
            _docx_text(data, out)
        else:
            out.add(_utf8(data) or "")
        text = normalise(out.text())
        if len(text) > max_chars:
            raise _TooMuchText
    except _TooMuchText:
        raise MediaTooLarge(
            f"The file holds more than {max_chars} characters of text, the limit of a project file."
        ) from None
    if not text:
        hint = " (a scanned PDF has images, not text)" if kind == PDF else ""
        raise BadRequest(f"The file has no text{hint}.", field="file")
    return text


async def extract(data: bytes, kind: str, max_chars: int) -> str:
    return await trio.to_thread.run_sync(extract_sync, data, kind, max_chars)
