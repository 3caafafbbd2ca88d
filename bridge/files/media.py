"""Upload validation: the type comes from the bytes, images get a thumbnail.

Rules:
- The content type is *sniffed* from the first bytes (magic numbers). The
  file name and the part's declared Content-Type are never trusted; when the
  client declares a type that the bytes contradict, the upload is refused
  (``media_type_mismatch``) rather than silently relabelled: a client that
  lies about a type is buggy or hostile either way.
- An image must also decode: a PNG header glued to anything else is refused.
  Its dimensions are stored and a JPEG thumbnail of at most
  ``THUMB_MAX`` px a side is made (in a worker thread: Pillow is CPU work).
- Size is bounded twice: the request body is refused as soon as it crosses
  the route's own limit (``bridge.http.uploads``), so at most that much is
  ever held; and the file part itself must be at most ``max_upload_bytes``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import trio

from bridge.errors import BadRequest, BridgeError, RestCode

THUMB_MAX = 320
_EXIF_ORIENTATION = 0x0112
# Decompression bombs: a tiny file declaring a gigantic canvas.
MAX_PIXELS = 50_000_000

# (offset, magic, content type). Checked in order; first match wins.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"OggS", "audio/ogg"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),
)
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
ALLOWED_TYPES = IMAGE_TYPES | {
    "application/pdf",
    "audio/ogg",
    "audio/mpeg",
    "audio/wav",
    "audio/mp4",
    "video/mp4",
    "video/webm",
}
# Declared types that say nothing, so there is nothing to contradict.
_UNSPECIFIC = frozenset({"", "application/octet-stream"})


class MediaTypeError(BridgeError):
    default_code = RestCode.UNSUPPORTED_MEDIA_TYPE


class MediaTooLarge(BridgeError):
    default_code = RestCode.PAYLOAD_TOO_LARGE


def sniff(data: bytes) -> str | None:
    """The content type the bytes are, by their magic number; None if unknown."""
    for offset, magic, kind in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[4:8] == b"ftyp":
        # ISO base media: M4A is audio, the rest of the family plays as video.
        return "audio/mp4" if data[8:11] == b"M4A" else "video/mp4"
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        return "audio/mpeg"  # an MPEG audio frame sync without an ID3 tag
    return None


def check_type(data: bytes, declared: str) -> str:
    """The sniffed type of ``data``; raises if unknown, not allowed, or contradicted."""
    kind = sniff(data)
    if kind is None or kind not in ALLOWED_TYPES:
        raise MediaTypeError(
            "This file type is not accepted (allowed: " + ", ".join(sorted(ALLOWED_TYPES)) + ").",
            field="file",
        )
    declared = declared.split(";", 1)[0].strip().lower()
    if declared not in _UNSPECIFIC and declared != kind:
        raise MediaTypeError(
            f"The file was sent as {declared} but its content is {kind}.",
            code=RestCode.MEDIA_TYPE_MISMATCH,
            field="file",
        )
    return kind


@dataclass(frozen=True, slots=True)
class ImageFacts:
    width: int
    height: int
    thumbnail: bytes  # JPEG


def _image_facts(data: bytes) -> ImageFacts:
    # Pillow loads on the first image (in this worker thread), not at start-up.
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()  # structure check; the image must be reopened after it
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise BadRequest("The image is too large in pixels.", field="file")
            # Phones store photos sideways plus an EXIF orientation: report
            # and thumbnail the image the way it is meant to be seen.
            if img.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
                width, height = height, width
            img.draft("RGB", (THUMB_MAX, THUMB_MAX))  # JPEG: decode at reduced size
            thumb = ImageOps.exif_transpose(img).convert("RGB")
            thumb.thumbnail((THUMB_MAX, THUMB_MAX))
            out = io.BytesIO()
            thumb.save(out, "JPEG", quality=80)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise MediaTypeError(
            "The file starts like an image but is not a valid one.",
            code=RestCode.MEDIA_TYPE_MISMATCH,
            field="file",
        ) from None
    return ImageFacts(width, height, out.getvalue())


async def image_facts(data: bytes) -> ImageFacts:
    """Dimensions and a thumbnail; raises ``MediaTypeError`` if the image does not decode."""
    return await trio.to_thread.run_sync(_image_facts, data)
