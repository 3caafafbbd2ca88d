"""Files in AI projects over REST: upload, list, read back the text, remove.

A project is a preset (``bridge.routes.ai``). Its files are its owner's
alone: every route answers 404 ``not_found`` for a preset that does not exist
or is someone else's, and for a file that is not in the preset, exactly as
the other AI routes do, so ids cannot be probed. Only the text extracted on
upload is kept (``bridge.files.file_text``), cut into chunks (``actors.ai_files``);
the conversations of the project get the chunks relevant to each question.

Upload limits, as for media (``bridge.routes.media``): the request body is
cut off past ``AI_FILE_MAX_BYTES`` plus the multipart overhead (this module's
request class), the file must be at most ``AI_FILE_MAX_BYTES`` and its text
at most ``AI_FILE_MAX_CHARS``: 413 ``payload_too_large`` and nothing stored;
one file more than ``AI_FILES_PER_PRESET``: 409 ``too_many_files``.
"""

from __future__ import annotations

import re

import msgspec
from quart import Response, request
from quart_trio.wrappers import TrioRequest

from actors.ai_files import chunk_text
from bridge.accounts.tokens import AccessClaims
from bridge.errors import BridgeError, NotFound, RestCode
from bridge.files.file_text import ACCEPTED, classify, extract
from bridge.http.routing import Body, Router, empty_response, json_response
from bridge.http.uploads import MULTIPART_OVERHEAD, read_one_file
from bridge.routes.media import clean_filename
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from storage.ai import AiPreset, ai_store
from storage.ai_files import AiFile, ai_files_store
from storage.base import new_time_id

TAG = "ai"
_UPLOAD_PATH = re.compile(r"^/ai/presets/[^/]+/files$")


class AiFileOut(msgspec.Struct, kw_only=True):
    id: str
    preset_id: str
    name: str
    content_type: str  # from the bytes: text/plain, text/markdown, application/pdf, or DOCX
    size: int  # bytes uploaded
    chars: int  # characters of text extracted
    chunks: int  # pieces the text is cut into for the context
    created_at: int

    @classmethod
    def of(cls, f: AiFile) -> AiFileOut:
        return cls(
            id=f.id,
            preset_id=f.preset_id,
            name=f.name,
            content_type=f.content_type,
            size=f.size,
            chars=f.chars,
            chunks=f.chunks,
            created_at=f.created_at,
        )


class AiFileEnvelope(msgspec.Struct):
    file: AiFileOut


class AiFileList(msgspec.Struct):
    files: list[AiFileOut]  # upload order
    limit: int  # most files the preset may hold (AI_FILES_PER_PRESET)


class AiFileText(msgspec.Struct):
    file: AiFileOut
    text: str  # the text extracted on upload, as the model sees it


def allow_file_uploads(router: Router, limit: int) -> None:
    """Raise the body limit of ``POST /ai/presets/{id}/files`` only, keeping the
    app's request class (media and avatars install theirs: see
    ``bridge.routes.profile.allow_large_avatar_bodies``)."""
    base: type[TrioRequest] = router.app.request_class

    class AiFileUploadRequest(base):  # type: ignore[valid-type, misc]
        def __init__(self, method: str, scheme: str, path: str, *args: object, **kwargs: object):
            ours = method == "POST" and _UPLOAD_PATH.match(path) is not None
            if ours:
                kwargs["max_content_length"] = limit
            super().__init__(method, scheme, path, *args, **kwargs)
            if ours:
                self.max_content_length = limit

    router.app.request_class = AiFileUploadRequest


def add_routes(router: Router, services: BridgeServices) -> None:
    settings = services.settings
    presets = ai_store(services.store)
    files = ai_files_store(services.store)
    max_bytes = settings.ai_file_max_bytes
    allow_file_uploads(router, max_bytes + MULTIPART_OVERHEAD)

    async def own_preset(user_id: str, preset_id: str) -> AiPreset:
        preset = await presets.get_preset(preset_id)
        if preset is None or preset.user_id != user_id:
            raise NotFound("No such preset.", field="preset_id")
        return preset

    async def own_file(user_id: str, preset_id: str, file_id: str) -> AiFile:
        await own_preset(user_id, preset_id)
        found = await files.get_file(file_id)
        if found is None or found.preset_id != preset_id or found.user_id != user_id:
            raise NotFound("No such file in this preset.", field="file_id")
        return found

    @router.route(
        "POST",
        "/ai/presets/<preset_id>/files",
        summary="Add a file to a project: text, Markdown, PDF or DOCX (multipart, field 'file')",
        description=(
            "The type comes from the file's bytes; a name ending in .txt, .md, .markdown, "
            ".pdf or .docx, or a declared part Content-Type, that the bytes contradict is "
            "refused (415 `media_type_mismatch`), other types answer 415 "
            "`unsupported_media_type`. Its text is extracted now and kept (not the file); "
            "a damaged or encrypted PDF/DOCX, or one without text, answers 400 `invalid`. "
            "Conversations of the project get the parts of the text most relevant to each "
            "question in their context, and `ai.start`/`ai.done` name the files used."
        ),
        tag=TAG,
        upload=Body(
            "multipart/form-data",
            {
                "type": "object",
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "The file; at most AI_FILE_MAX_BYTES.",
                    }
                },
                "required": ["file"],
            },
            "One part named `file`: " + ", ".join(ACCEPTED) + ".",
        ),
        responses={201: AiFileEnvelope},
        errors=(
            ErrorCode.INVALID,
            ErrorCode.NOT_FOUND,
            RestCode.PAYLOAD_TOO_LARGE,
            RestCode.UNSUPPORTED_MEDIA_TYPE,
            RestCode.MEDIA_TYPE_MISMATCH,
            RestCode.TOO_MANY_FILES,
        ),
    )
    async def upload_ai_file(claims: AccessClaims, preset_id: str) -> Response:
        me = claims.user_id
        await own_preset(me, preset_id)  # before the body: others learn nothing from it
        upload = await read_one_file(request, max_bytes, "project file")
        data = upload.data
        name = clean_filename(upload.filename)
        kind = classify(data, name, upload.mimetype)
        text = await extract(data, kind, settings.ai_file_max_chars)
        chunks = chunk_text(text, settings.ai_file_chunk_tokens)
        stored = AiFile(
            id=new_time_id("af_"),
            preset_id=preset_id,
            user_id=me,
            name=name,
            content_type=kind,
            size=len(data),
            chars=len(text),
            chunks=len(chunks),
            created_at=services.clock(),
        )
        limit = settings.ai_files_per_preset
        if not await files.add_file(stored, chunks, max_files=limit):
            raise BridgeError(
                f"This project already holds {limit} files, the most allowed; remove one first.",
                code=RestCode.TOO_MANY_FILES,
            )
        return json_response(AiFileEnvelope(AiFileOut.of(stored)), status=201)

    @router.route(
        "GET",
        "/ai/presets/<preset_id>/files",
        summary="A project's files, in upload order",
        tag=TAG,
        responses={200: AiFileList},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def list_ai_files(claims: AccessClaims, preset_id: str) -> Response:
        await own_preset(claims.user_id, preset_id)
        found = await files.list_files(preset_id)
        return json_response(
            AiFileList([AiFileOut.of(f) for f in found], settings.ai_files_per_preset)
        )

    @router.route(
        "GET",
        "/ai/presets/<preset_id>/files/<file_id>",
        summary="One project file and the text extracted from it",
        tag=TAG,
        responses={200: AiFileText},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def get_ai_file(claims: AccessClaims, preset_id: str, file_id: str) -> Response:
        found = await own_file(claims.user_id, preset_id, file_id)
        return json_response(AiFileText(AiFileOut.of(found), await files.file_text(file_id)))

    @router.route(
        "DELETE",
        "/ai/presets/<preset_id>/files/<file_id>",
        summary="Remove a file from a project; answers that cited it keep the citation",
        tag=TAG,
        responses={204: None},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def delete_ai_file(claims: AccessClaims, preset_id: str, file_id: str) -> Response:
        await own_file(claims.user_id, preset_id, file_id)
        if not await files.delete_file(file_id):
            raise NotFound("No such file in this preset.", field="file_id")
        return empty_response()
