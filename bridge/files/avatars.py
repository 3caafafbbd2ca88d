"""Profile photos: validate an uploaded image and make the one stored avatar.

Rules:
- The type comes from the bytes (Pillow's parsers, restricted to JPEG, PNG,
  WebP and GIF), never from a header or a name. Anything else is 415
  ``unsupported_media_type``.
- The pixel count is read from the header and refused over
  ``AVATAR_MAX_PIXELS`` *before* decoding: a few KB of PNG can claim
  gigapixels (a decompression bomb). A file that does not decode fully is
  400 ``image_invalid``.
- What is stored is re-encoded by us: EXIF orientation applied, centre-cut
  to a square, at most ``AVATAR_SIZE`` pixels a side, JPEG. Re-encoding drops
  every metadata block (GPS position, camera serial) and any payload hidden
  after the image data.
- Decoding runs in a worker thread (it is CPU work), off the event loop.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from bridge.errors import BadRequest, RestCode

if TYPE_CHECKING:
    from PIL import Image

FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
CONTENT_TYPE = "image/jpeg"
QUALITY = 85


class UnsupportedImage(BadRequest):
    default_code = RestCode.UNSUPPORTED_MEDIA_TYPE


@dataclass(frozen=True, slots=True)
class AvatarImage:
    data: bytes
    content_type: str
    etag: str
    size: int  # pixels a side


def make_avatar(data: bytes, *, size: int, max_pixels: int) -> AvatarImage:
    """Blocking: validate ``data`` and return the square JPEG to store."""
    # Pillow loads on the first image (in this worker thread), not at start-up.
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise BadRequest("The image is empty.", code=RestCode.IMAGE_INVALID, field="image")
    try:
        with warnings.catch_warnings():
            # Pillow warns about big images; our own pixel limit decides below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise UnsupportedImage(
            "The avatar must be a JPEG, PNG, WebP or GIF image.", field="image"
        ) from None
    except (OSError, ValueError, Image.DecompressionBombError):
        raise _invalid("The image header is damaged.") from None
    with image:
        width, height = image.size
        if width < 1 or height < 1 or width * height > max_pixels:
            raise _invalid(
                f"The image is {width}x{height}; at most {max_pixels} pixels are accepted."
            )
        try:
            image.load()  # the first frame of an animation is the avatar
            upright = ImageOps.exif_transpose(image)
            rgb = _flatten(upright)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise _invalid("The image data is damaged or truncated.") from None
    side = min(size, rgb.width, rgb.height)  # never upscale a small photo
    square = ImageOps.fit(rgb, (side, side), method=Image.Resampling.LANCZOS)
    out = io.BytesIO()
    square.save(out, "JPEG", quality=QUALITY, optimize=True)
    encoded = out.getvalue()
    return AvatarImage(encoded, CONTENT_TYPE, hashlib.sha256(encoded).hexdigest()[:32], side)


async def process_avatar(data: bytes, *, size: int, max_pixels: int) -> AvatarImage:
    return await trio.to_thread.run_sync(
        lambda: make_avatar(data, size=size, max_pixels=max_pixels)
    )


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency laid over white (JPEG has no alpha)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _invalid(message: str) -> BadRequest:
    return BadRequest(message, code=RestCode.IMAGE_INVALID, field="image")
