"""Media: upload (multipart), download and thumbnail, with an access check.

An upload is private to its uploader until it is sent in a room (or made a
group's avatar): then the members of that room may read it too
(``storage.media``). Anyone else gets 404 ``not_found``, exactly as for an id
that does not exist, so ids cannot be probed.

Upload limits: the request body is cut off past ``max_upload_bytes`` plus the
multipart overhead (the route's own request class, see
``bridge.http.uploads.upload_request_class``), and the file itself must be at most
``max_upload_bytes``; either way the answer is 413 ``payload_too_large`` and
nothing is stored.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import msgspec
from quart import Response, request

from bridge.accounts.tokens import AccessClaims
from bridge.errors import NotFound, RestCode
from bridge.files.media import IMAGE_TYPES, check_type, image_facts
from bridge.http.routing import Body, Router, json_response
from bridge.http.uploads import MULTIPART_OVERHEAD, read_one_file, upload_request_class
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from storage.base import new_id
from storage.blobs import BlobNotFound, BlobStore, LocalBlobStore
from storage.media import MediaInfo, media_store

UPLOAD_PATH = "/media"
_NO_SUCH_MEDIA = "No such upload, or you may not read it."
# Types a browser may show in place; anything else downloads as a file.
_INLINE = ("image/", "audio/", "video/")


class MediaOut(msgspec.Struct, kw_only=True):
    id: str
    content_type: str  # sniffed from the content
    size: int
    filename: str
    width: int | None = None
    height: int | None = None
    thumbnail: bool  # GET /media/{id}/thumbnail serves a JPEG
    created_at: int

    @classmethod
    def of(cls, m: MediaInfo) -> MediaOut:
        return cls(
            id=m.id,
            content_type=m.content_type,
            size=m.size,
            filename=m.filename,
            width=m.width,
            height=m.height,
            thumbnail=m.thumb_key is not None,
            created_at=m.created_at,
        )


class MediaEnvelope(msgspec.Struct):
    media: MediaOut


_BINARY = {"type": "string", "format": "binary"}


def blob_store_for(services: BridgeServices) -> BlobStore:
    if services.blobs is not None:
        return services.blobs
    return LocalBlobStore(Path(services.settings.data_dir) / "media")


def clean_filename(name: str | None) -> str:
    """The client's file name, for display only: no path, no control characters."""
    base = os.path.basename((name or "").replace("\\", "/"))
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    return base.strip()[:255] or "file"


def add_routes(router: Router, services: BridgeServices) -> None:
    store = services.store
    media = media_store(store)
    blobs = blob_store_for(services)
    limit = services.settings.max_upload_bytes
    router.app.request_class = upload_request_class(
        frozenset({UPLOAD_PATH}), limit + MULTIPART_OVERHEAD
    )

    @router.route(
        "POST",
        UPLOAD_PATH,
        summary="Upload a file (multipart/form-data, field 'file')",
        description=(
            "The content type is taken from the file's bytes, never from its name. "
            "A declared part Content-Type that the bytes contradict is refused "
            "(415 `media_type_mismatch`); a type not accepted answers 415 "
            "`unsupported_media_type`. Images get their dimensions and a JPEG "
            "thumbnail. The upload is private until sent in a room."
        ),
        tag="media",
        upload=Body(
            "multipart/form-data",
            {
                "type": "object",
                "properties": {
                    "file": {**_BINARY, "description": "The file; at most MAX_UPLOAD_BYTES."}
                },
                "required": ["file"],
            },
            "One part named `file`; its declared Content-Type must match its bytes.",
        ),
        responses={201: MediaEnvelope},
        errors=(
            ErrorCode.INVALID,
            RestCode.PAYLOAD_TOO_LARGE,
            RestCode.UNSUPPORTED_MEDIA_TYPE,
            RestCode.MEDIA_TYPE_MISMATCH,
        ),
    )
    async def upload(claims: AccessClaims) -> Response:
        upload = await read_one_file(request, limit, "upload")
        data = upload.data
        kind = check_type(data, upload.mimetype)
        width = height = None
        thumb: bytes | None = None
        if kind in IMAGE_TYPES:
            facts = await image_facts(data)
            width, height, thumb = facts.width, facts.height, facts.thumbnail
        media_id = new_id("f_")
        info = MediaInfo(
            id=media_id,
            owner_id=claims.user_id,
            content_type=kind,
            size=len(data),
            filename=clean_filename(upload.filename),
            blob_key=media_id,
            thumb_key=f"{media_id}_t" if thumb is not None else None,
            width=width,
            height=height,
            created_at=services.clock(),
        )
        # Bytes first, row last: a row never points at a blob that is not there.
        await blobs.put(info.blob_key, data)
        if thumb is not None and info.thumb_key is not None:
            await blobs.put(info.thumb_key, thumb)
        await media.add_media(info)
        return json_response(MediaEnvelope(MediaOut.of(info)), status=201)

    async def visible(media_id: str, user_id: str) -> MediaInfo:
        info = await media.media_visible_to(media_id, user_id)
        if info is None:
            raise NotFound(_NO_SUCH_MEDIA)
        return info

    @router.route(
        "GET",
        "/media/<media_id>/info",
        summary="What an upload is: type, size, dimensions",
        tag="media",
        responses={200: MediaEnvelope},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def media_info(claims: AccessClaims, media_id: str) -> Response:
        return json_response(MediaEnvelope(MediaOut.of(await visible(media_id, claims.user_id))))

    @router.route(
        "GET",
        "/media/<media_id>",
        summary="Download an upload (its bytes, with its sniffed Content-Type)",
        tag="media",
        responses={200: Body("*/*", _BINARY, "The file's bytes, with its sniffed Content-Type.")},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def download(claims: AccessClaims, media_id: str) -> Response:
        info = await visible(media_id, claims.user_id)
        return await _blob_response(blobs, info.blob_key, info.content_type, info.filename)

    @router.route(
        "GET",
        "/media/<media_id>/thumbnail",
        summary="An image upload's JPEG thumbnail",
        tag="media",
        responses={200: Body("image/jpeg", _BINARY, "The thumbnail, a JPEG.")},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def thumbnail(claims: AccessClaims, media_id: str) -> Response:
        info = await visible(media_id, claims.user_id)
        if info.thumb_key is None:
            raise NotFound("This upload has no thumbnail.")
        return await _blob_response(blobs, info.thumb_key, "image/jpeg", "thumbnail.jpg")


async def _blob_response(blobs: BlobStore, key: str, content_type: str, filename: str) -> Response:
    try:
        data = await blobs.get(key)
    except BlobNotFound:
        raise NotFound(_NO_SUCH_MEDIA) from None
    disposition = "inline" if content_type.startswith(_INLINE) else "attachment"
    quoted = filename.encode("ascii", "replace").decode().replace('"', "")
    return Response(
        data,
        status=200,
        content_type=content_type,
        headers={
            # The type is ours (sniffed): the browser must not guess another.
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'{disposition}; filename="{quoted}"',
            "Cache-Control": "private, max-age=86400",
        },
    )
