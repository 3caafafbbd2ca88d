"""Reading uploads from a request: multipart bodies bounded while they stream in.

- The request body is refused as soon as it crosses the route's own limit:
  by Content-Length up front (``upload_request_class``), or counted while a
  chunked body streams in (``read_upload``), so at most that much is ever held.
- ``read_one_file`` answers the bytes of the field ``file``; what they may be
  is for ``bridge.files`` to say.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import trio
from quart_trio.wrappers import TrioRequest
from quart_trio.wrappers.request import TrioBody
from werkzeug.exceptions import RequestTimeout

from bridge.errors import BadRequest
from bridge.files.media import MediaTooLarge

# Room for the multipart boundary and part headers around the file.
MULTIPART_OVERHEAD = 64 * 1024


def _memory_stream(*_: Any) -> io.BytesIO:
    return io.BytesIO()


async def read_upload(request: Any, cap: int) -> Any:
    """The files of a multipart request whose body may be at most ``cap`` bytes.

    Quart's own form parsing streams the body into temporary files and counts
    only what is buffered, so a chunked body (no Content-Length) would never
    meet the limit: an endless upload would fill the disk. Here the body is
    read with a running count and refused the moment it crosses ``cap``;
    only then is the (bounded) buffer parsed.
    """
    data = bytearray()
    timeout = math.inf if request.body_timeout is None else request.body_timeout
    with trio.move_on_after(timeout) as scope:
        async for chunk in request.body:
            data += chunk
            if len(data) > cap:
                raise MediaTooLarge(f"The upload is over the limit of {cap} bytes.")
    if scope.cancelled_caught:
        raise RequestTimeout()
    body = TrioBody(None, None)
    body.set_result(bytes(data))
    parser = request.make_form_data_parser()
    # The whole body is in memory already (bounded by ``cap``): parts go to
    # memory too, not to temporary files.
    parser.stream_factory = _memory_stream
    _, files = await parser.parse(body, request.mimetype, len(data), request.mimetype_params)
    return files


@dataclass(frozen=True, slots=True)
class UploadedFile:
    data: bytes
    filename: str | None
    mimetype: str


async def read_one_file(request: Any, limit: int, what: str) -> UploadedFile:
    """The bytes of the multipart field ``file``, at most ``limit`` of them.

    ``what`` names the limit in the error ("upload", "project file"). Every
    refusal is a clear 400/413: not multipart, no such field, empty, too big.
    """
    if request.mimetype != "multipart/form-data":
        raise BadRequest("Send the file as multipart/form-data in the field 'file'.")
    files = await read_upload(request, limit + MULTIPART_OVERHEAD)
    part = files.get("file")
    if part is None:
        raise BadRequest("Send the file in the multipart field 'file'.", field="file")
    data = part.read(limit + 1)
    if len(data) > limit:
        raise MediaTooLarge(f"The file is over the {what} limit of {limit} bytes.")
    if not data:
        raise BadRequest("The file is empty.", field="file")
    return UploadedFile(data, part.filename, part.mimetype or "")


def upload_request_class(paths: frozenset[str], limit: int) -> type[TrioRequest]:
    """A request class whose body limit is ``limit`` on POSTs to ``paths``.

    Quart fixes a request's body limit when the request object is built (from
    MAX_CONTENT_LENGTH), before any view runs, so a per-route limit has to be
    chosen here. Other routes keep the app-wide MAX_CONTENT_LENGTH.
    """

    class UploadLimitRequest(TrioRequest):
        def __init__(self, method: str, scheme: str, path: str, *args: Any, **kwargs: Any):
            if method == "POST" and path in paths:
                kwargs["max_content_length"] = limit
            super().__init__(method, scheme, path, *args, **kwargs)
            if method == "POST" and path in paths:
                # The form parser reads this property, not the body's limit.
                self.max_content_length = limit

    return UploadLimitRequest
