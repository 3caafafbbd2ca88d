"""AI conversations over REST: settings, organisation, history, export, models, SSE.

A conversation is a room of kind "ai" whose only member is its owner; its id
is the room id, usable with the socket's ``ai.*`` and ``msg.*`` frames. Every
route answers 404 ``not_found`` for a conversation, folder or preset that does
not exist or is someone else's, so ids cannot be probed.

The SSE route streams one generation as ``text/event-stream`` for clients that
cannot hold a WebSocket. Events, each ``data`` a JSON object::

    event: ai.ask     the stored prompt (a message)
    event: ai.start   then ai.delta ..., then one of ai.done / ai.error
                      (the same payloads as the socket's frames)

The answer is stored exactly as on the socket, and the generation goes on if
the HTTP client goes away (its answer is in the history).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import trio
from quart import Response

from actors.ai_context import is_ai_sender, visible
from actors.ai_providers import OFFLINE_MODEL
from actors.ai_service import AiService
from actors.ai_stream import periods
from actors.errors import ActorError
from bridge.accounts.tokens import AccessClaims
from bridge.errors import BridgeError, NotFound
from bridge.http.routing import Body, Router, RouteTable, empty_response, json_response
from bridge.routes.schemas_ai import (
    AiMessageList,
    AiMessageOut,
    ConversationEnvelope,
    ConversationList,
    ConversationOut,
    ConversationQuery,
    CreateConversation,
    ExportOut,
    ExportQuery,
    FolderBody,
    FolderEnvelope,
    FolderList,
    FolderOut,
    ModelList,
    ModelOut,
    PresetBody,
    PresetEnvelope,
    PresetList,
    PresetOut,
    StreamBody,
    UpdateConversation,
    UsageOut,
    UsagePeriodOut,
)
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from protocol.frames_ai import AiDone, AiError, AiFileRef
from storage.ai import AiConversation, AiFolder, AiPreset
from storage.ai_files import FileRef
from storage.base import new_time_id

TAG = "ai"
_json = msgspec.json.Encoder()


def _refusal(exc: ActorError) -> BridgeError:
    return BridgeError(exc.message, code=exc.code)


# Module-level views: each takes the app's services first (RouteTable binds them).
routes = RouteTable[BridgeServices]()


def ai_service(services: BridgeServices) -> AiService:
    if services.ai is None:
        raise BridgeError("AI is not running on this server.", code=ErrorCode.UNAVAILABLE)
    ai: AiService = services.ai
    return ai


async def own_conversation(services: BridgeServices, user_id: str, room_id: str) -> AiConversation:
    conv = await ai_service(services).ai.get_conversation(room_id)
    if conv is None or conv.user_id != user_id:
        raise NotFound("No such conversation.")
    return conv


async def own_folder(services: BridgeServices, user_id: str, folder_id: str) -> AiFolder:
    folder = await ai_service(services).ai.get_folder(folder_id)
    if folder is None or folder.user_id != user_id:
        raise NotFound("No such folder.", field="folder_id")
    return folder


async def own_preset(services: BridgeServices, user_id: str, preset_id: str) -> AiPreset:
    preset = await ai_service(services).ai.get_preset(preset_id)
    if preset is None or preset.user_id != user_id:
        raise NotFound("No such preset.", field="preset_id")
    return preset


async def check_model(services: BridgeServices, user_id: str, model: str) -> None:
    try:
        await ai_service(services).check_model(user_id, model)
    except ActorError as exc:
        raise _refusal(exc) from None


async def conversation_outs(
    services: BridgeServices, convs: list[AiConversation]
) -> list[ConversationOut]:
    # ``running``: the answer running now on any node (issue 13).
    try:
        running = await ai_service(services).running([c.room_id for c in convs])
    except ActorError as exc:
        raise _refusal(exc) from None
    return [ConversationOut.of(c, running.get(c.room_id)) for c in convs]


async def conversation_out(services: BridgeServices, conv: AiConversation) -> ConversationOut:
    [one] = await conversation_outs(services, [conv])
    return one


# ----- models and usage -----


@routes.route(
    "GET",
    "/ai/models",
    summary="AI models your plan allows",
    tag=TAG,
    responses={200: ModelList},
)
async def ai_models(services: BridgeServices, claims: AccessClaims) -> Response:
    ai = ai_service(services)
    models = [
        ModelOut(m, ai.providers.by_model[m].name, m == OFFLINE_MODEL)
        for m in await ai.allowed_models(claims.user_id)
    ]
    return json_response(ModelList(models, ai.providers.default_model))


@routes.route(
    "GET",
    "/ai/usage",
    summary="Your AI messages and tokens",
    tag=TAG,
    responses={200: UsageOut},
)
async def ai_usage(services: BridgeServices, claims: AccessClaims) -> Response:
    ai = ai_service(services)
    try:
        summary = await ai.metered().summary(claims.user_id)
    except ActorError as exc:
        raise _refusal(exc) from None
    day, month = periods(services.clock())
    rows = await ai.ai.usage(claims.user_id, [day, month])
    return json_response(
        UsageOut(
            plan=summary.plan,
            limit=summary.monthly_limit,
            used=summary.monthly_used,
            resets_at=summary.resets_at,
            day=_period(rows[day]),
            month=_period(rows[month]),
        )
    )


# ----- conversations -----


@routes.route(
    "POST",
    "/ai/conversations",
    summary="Start an AI conversation",
    tag=TAG,
    body=CreateConversation,
    responses={201: ConversationEnvelope},
    errors=(ErrorCode.AI_UNKNOWN_MODEL, ErrorCode.AI_MODEL_NOT_ALLOWED),
)
async def create_conversation(
    services: BridgeServices, claims: AccessClaims, body: CreateConversation
) -> Response:
    ai, me = ai_service(services), claims.user_id
    preset = await own_preset(services, me, body.preset_id) if body.preset_id else None
    model = body.model or (preset.model if preset else ai.providers.default_model)
    await check_model(services, me, model)
    if body.folder_id:
        await own_folder(services, me, body.folder_id)
    room = await ai.create_room(me, body.title)
    if services.room_changed is not None:
        services.room_changed(room.id, False)
    at = services.clock()
    conv = AiConversation(
        room_id=room.id,
        user_id=me,
        title=body.title,
        model=model,
        system_prompt=_pick(body.system_prompt, preset and preset.system_prompt, ""),
        temperature=_pick(body.temperature, preset and preset.temperature, None),
        max_tokens=_pick(body.max_tokens, preset and preset.max_tokens, None),
        folder_id=body.folder_id,
        preset_id=body.preset_id,
        favourite=False,
        created_at=at,
        updated_at=at,
    )
    try:
        await ai.ai.create_conversation(conv)
    except BaseException:
        with trio.CancelScope(shield=True):
            await ai.ai.delete_conversation(room.id)
        raise
    return json_response(ConversationEnvelope(await conversation_out(services, conv)), status=201)


@routes.route(
    "GET",
    "/ai/conversations",
    summary="Your AI conversations, most recently active first",
    tag=TAG,
    query=ConversationQuery,
    responses={200: ConversationList},
)
async def list_conversations(
    services: BridgeServices, claims: AccessClaims, query: ConversationQuery
) -> Response:
    convs = await ai_service(services).ai.list_conversations(
        claims.user_id,
        folder_id=query.folder,
        favourite=query.favourite,
        limit=query.limit,
        offset=query.offset,
    )
    return json_response(ConversationList(await conversation_outs(services, convs)))


@routes.route(
    "GET",
    "/ai/conversations/<room_id>",
    summary="One AI conversation and its settings",
    tag=TAG,
    responses={200: ConversationEnvelope},
)
async def get_conversation(
    services: BridgeServices, claims: AccessClaims, room_id: str
) -> Response:
    conv = await own_conversation(services, claims.user_id, room_id)
    return json_response(ConversationEnvelope(await conversation_out(services, conv)))


@routes.route(
    "PATCH",
    "/ai/conversations/<room_id>",
    summary="Rename, move to a folder, favourite, change settings or apply a preset",
    tag=TAG,
    body=UpdateConversation,
    responses={200: ConversationEnvelope},
    errors=(ErrorCode.AI_UNKNOWN_MODEL, ErrorCode.AI_MODEL_NOT_ALLOWED),
)
async def update_conversation(
    services: BridgeServices, claims: AccessClaims, room_id: str, body: UpdateConversation
) -> Response:
    me = claims.user_id
    await own_conversation(services, me, room_id)
    changes: dict[str, Any] = {}
    if body.preset_id is not msgspec.UNSET:
        preset = await own_preset(services, me, body.preset_id)
        changes.update(
            preset_id=preset.id,
            model=preset.model,
            system_prompt=preset.system_prompt,
            temperature=preset.temperature,
            max_tokens=preset.max_tokens,
        )
    for name in ("title", "model", "system_prompt", "temperature", "max_tokens", "favourite"):
        value = getattr(body, name)
        if value is not msgspec.UNSET:
            changes[name] = value
    if body.folder_id is not msgspec.UNSET:
        if body.folder_id is not None:
            await own_folder(services, me, body.folder_id)
        changes["folder_id"] = body.folder_id
    if "model" in changes:
        await check_model(services, me, changes["model"])
    changes["updated_at"] = services.clock()
    conv = await ai_service(services).ai.update_conversation(room_id, changes)
    if conv is None:
        raise NotFound("No such conversation.")
    return json_response(ConversationEnvelope(await conversation_out(services, conv)))


@routes.route(
    "DELETE",
    "/ai/conversations/<room_id>",
    summary="Delete an AI conversation and its messages",
    tag=TAG,
    responses={204: None},
)
async def delete_conversation(
    services: BridgeServices, claims: AccessClaims, room_id: str
) -> Response:
    await own_conversation(services, claims.user_id, room_id)
    ai = ai_service(services)
    try:
        await ai.stop_room(claims.user_id, room_id)  # on whichever node runs it
    except ActorError as exc:
        raise _refusal(exc) from None
    await ai.ai.delete_conversation(room_id)
    return empty_response()


async def history(services: BridgeServices, conv: AiConversation) -> list[AiMessageOut]:
    ai = ai_service(services)
    last = await ai.store.last_seq(conv.room_id)
    rows = await ai.store.messages_after(conv.room_id, 0, max(last, 1))
    shown = visible(rows, await ai.ai.hidden(conv.room_id))
    answers = {a.message_id: a for a in await ai.ai.answers(conv.room_id)}
    cited = await ai.files.cited(conv.room_id)
    result = []
    for m in shown:
        answer = answers.get(m.id)
        result.append(
            AiMessageOut(
                id=m.id,
                seq=m.seq,
                role="assistant" if is_ai_sender(m.sender_id) else "user",
                sender=m.sender_id,
                text=m.text,
                ts=m.created_at,
                model=answer.model if answer else None,
                status=answer.status if answer else None,
                prompt_tokens=answer.prompt_tokens if answer else None,
                completion_tokens=answer.completion_tokens if answer else None,
                files=_refs(cited.get(answer.gen_id)) if answer else None,
            )
        )
    return result


@routes.route(
    "GET",
    "/ai/conversations/<room_id>/messages",
    summary="The visible history: hidden branches (regenerated, edited) left out",
    tag=TAG,
    responses={200: AiMessageList},
)
async def conversation_messages(
    services: BridgeServices, claims: AccessClaims, room_id: str
) -> Response:
    conv = await own_conversation(services, claims.user_id, room_id)
    return json_response(AiMessageList(await history(services, conv)))


@routes.route(
    "GET",
    "/ai/conversations/<room_id>/export",
    summary="Export a conversation as JSON (format=json) or Markdown (format=markdown)",
    tag=TAG,
    query=ExportQuery,
    responses={200: ExportOut},
)
async def export_conversation(
    services: BridgeServices, claims: AccessClaims, room_id: str, query: ExportQuery
) -> Response:
    conv = await own_conversation(services, claims.user_id, room_id)
    messages = await history(services, conv)
    filename = f"conversation-{conv.room_id}"
    if query.format == "markdown":
        return Response(
            to_markdown(conv, messages),
            status=200,
            content_type="text/markdown; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}.md"'},
        )
    body = ExportOut(await conversation_out(services, conv), messages, services.clock())
    response = json_response(body)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.json"'
    return response


# ----- SSE -----


@routes.route(
    "POST",
    "/ai/conversations/<room_id>/stream",
    summary="Ask and stream the answer as text/event-stream (for clients without WebSocket)",
    tag=TAG,
    body=StreamBody,
    responses={
        200: Body(
            "text/event-stream",
            {"type": "string"},
            "Server-sent events, each `event: <frame type>` and `data: <JSON>`: first "
            "`ai.ask` (the stored prompt), then `ai.start`, `ai.delta`... and last "
            "`ai.done` or `ai.error`, with the same payloads as the WebSocket frames.",
        )
    },
    errors=(
        ErrorCode.AI_QUOTA_EXCEEDED,
        ErrorCode.AI_UNKNOWN_MODEL,
        ErrorCode.AI_MODEL_NOT_ALLOWED,
        ErrorCode.AI_BUSY,
        ErrorCode.MESSAGE_TOO_LONG,
    ),
)
async def stream_answer(
    services: BridgeServices, claims: AccessClaims, room_id: str, body: StreamBody
) -> Response:
    await own_conversation(services, claims.user_id, room_id)
    ai = ai_service(services)
    # Room for every delta a generation may send: a sink must never block.
    send, receive = trio.open_memory_channel[msgspec.Struct](
        4 * ai.settings.ai_max_output_tokens + 64
    )

    def sink(frame: msgspec.Struct) -> None:
        try:
            send.send_nowait(frame)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the HTTP client is gone or hopelessly behind; the answer is stored

    try:
        question, gen = await ai.ask(
            claims.user_id, room_id, body.cid, body.text, body.model, sink=sink
        )
    except ActorError as exc:
        raise _refusal(exc) from None

    async def events() -> AsyncIterator[bytes]:
        with receive:
            yield _sse("ai.ask", question)
            if gen is None:
                return  # a resend: the prompt was stored before; its answer is in history
            async for frame in receive:
                # Every frame on this channel is an AI push frame: a string tag and ``d``.
                tag = str(frame.__struct_config__.tag)
                yield _sse(tag, frame.d)  # type: ignore[attr-defined]
                if isinstance(frame, AiDone | AiError):
                    return

    response = Response(events(), status=200, content_type="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    response.timeout = None
    return response


# ----- folders -----


@routes.route(
    "POST",
    "/ai/folders",
    summary="Create a folder of conversations",
    tag=TAG,
    body=FolderBody,
    responses={201: FolderEnvelope},
)
async def create_folder(
    services: BridgeServices, claims: AccessClaims, body: FolderBody
) -> Response:
    folder = AiFolder(new_time_id("f_"), claims.user_id, body.name, services.clock())
    await ai_service(services).ai.create_folder(folder)
    return json_response(FolderEnvelope(FolderOut.of(folder)), status=201)


@routes.route("GET", "/ai/folders", summary="Your folders", tag=TAG, responses={200: FolderList})
async def list_folders(services: BridgeServices, claims: AccessClaims) -> Response:
    folders = await ai_service(services).ai.list_folders(claims.user_id)
    return json_response(FolderList([FolderOut.of(f) for f in folders]))


@routes.route(
    "PATCH",
    "/ai/folders/<folder_id>",
    summary="Rename a folder",
    tag=TAG,
    body=FolderBody,
    responses={200: FolderEnvelope},
)
async def rename_folder(
    services: BridgeServices, claims: AccessClaims, folder_id: str, body: FolderBody
) -> Response:
    folder = await own_folder(services, claims.user_id, folder_id)
    await ai_service(services).ai.rename_folder(folder_id, body.name)
    return json_response(FolderEnvelope(FolderOut(folder.id, body.name, folder.created_at)))


@routes.route(
    "DELETE",
    "/ai/folders/<folder_id>",
    summary="Delete a folder; its conversations stay, outside any folder",
    tag=TAG,
    responses={204: None},
)
async def delete_folder(services: BridgeServices, claims: AccessClaims, folder_id: str) -> Response:
    await own_folder(services, claims.user_id, folder_id)
    await ai_service(services).ai.delete_folder(folder_id)
    return empty_response()


# ----- presets ("projects") -----


@routes.route(
    "POST",
    "/ai/presets",
    summary="Save reusable conversation settings (a project)",
    tag=TAG,
    body=PresetBody,
    responses={201: PresetEnvelope},
    errors=(ErrorCode.AI_UNKNOWN_MODEL, ErrorCode.AI_MODEL_NOT_ALLOWED),
)
async def create_preset(
    services: BridgeServices, claims: AccessClaims, body: PresetBody
) -> Response:
    await check_model(services, claims.user_id, body.model)
    preset = AiPreset(
        new_time_id("p_"),
        claims.user_id,
        body.name,
        body.model,
        body.system_prompt,
        body.temperature,
        body.max_tokens,
        services.clock(),
    )
    await ai_service(services).ai.create_preset(preset)
    return json_response(PresetEnvelope(PresetOut.of(preset)), status=201)


@routes.route("GET", "/ai/presets", summary="Your presets", tag=TAG, responses={200: PresetList})
async def list_presets(services: BridgeServices, claims: AccessClaims) -> Response:
    presets = await ai_service(services).ai.list_presets(claims.user_id)
    return json_response(PresetList([PresetOut.of(p) for p in presets]))


@routes.route(
    "DELETE",
    "/ai/presets/<preset_id>",
    summary="Delete a preset; conversations keep the settings they copied",
    tag=TAG,
    responses={204: None},
)
async def delete_preset(services: BridgeServices, claims: AccessClaims, preset_id: str) -> Response:
    await own_preset(services, claims.user_id, preset_id)
    await ai_service(services).ai.delete_preset(preset_id)
    return empty_response()


def add_routes(router: Router, services: BridgeServices) -> None:
    routes.add_to(router, services)


def _pick(given: Any, from_preset: Any, default: Any) -> Any:
    if given is not None:
        return given
    if from_preset is not None and from_preset is not False:
        return from_preset
    return default


def _refs(files: list[FileRef] | None) -> list[AiFileRef] | None:
    return [AiFileRef(id=f.id, name=f.name) for f in files] if files else None


def _period(row: Any) -> UsagePeriodOut:
    return UsagePeriodOut(row.period, row.messages, row.prompt_tokens, row.completion_tokens)


def _sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + _json.encode(data) + b"\n\n"


def to_markdown(conv: AiConversation, messages: list[AiMessageOut]) -> str:
    """A conversation as Markdown: a title, its settings, then each turn."""
    lines = [f"# {conv.title or 'Conversation'}", "", f"- Model: `{conv.model}`"]
    if conv.system_prompt:
        lines.append(f"- System prompt: {conv.system_prompt}")
    lines.append("")
    for m in messages:
        if m.role == "user":
            lines.append("## You")
        else:
            stopped = " (stopped)" if m.status == "stopped" else ""
            lines.append(f"## Assistant · {m.model or m.sender.removeprefix('ai:')}{stopped}")
        lines += ["", m.text, ""]
        if m.files:
            lines += ["Files: " + ", ".join(f.name for f in m.files), ""]
    return "\n".join(lines)
