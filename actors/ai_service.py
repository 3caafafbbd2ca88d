"""AI requests, one place for the socket and REST: ask, regenerate, edit, stop, attach.

Order of an ask (each step can refuse; nothing after a refusal happens):
1. the room exists and the caller is a member; the prompt is valid and
   within ``ai_max_prompt_chars``; the model is served and the plan allows it;
2. the room's one generation slot is free (``ai_busy`` otherwise);
3. the quota is consumed (``ai_quota_exceeded`` otherwise): BEFORE the
   provider is called, atomically, so two concurrent asks at the limit
   cannot both pass;
4. the prompt is stored as a normal room message (``post_as``);
5. the context is built from the visible history and the generation starts.
A failure after step 3 refunds the quota; a failure after step 2 frees the slot.

Resending an ask with the same ``cid`` returns the stored prompt and starts
nothing: the first ask's answer is (or is becoming) the answer.

Quota and models: billing's ``QuotaService`` (``bridge.billing.quota``; the
node sets ``AiService.quota``): ``try_consume`` before the provider is called,
``refund`` when a failure produced nothing, ``allows_model`` for the plan's
models. The built-in ``offline`` model is allowed on every plan (it costs
nothing), though it still counts as an AI message. Without a quota service
every ask is refused with ``unavailable``: AI is never unmetered by accident.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import trio

from actors.ai_context import build_context, is_ai_sender, short_title, visible
from actors.ai_files import project_context
from actors.ai_link import AiLink
from actors.ai_providers import OFFLINE_MODEL, ChatRequest, Providers
from actors.ai_stream import (
    AiStreams,
    Attach,
    Generation,
    GenerationSpec,
    Leave,
    Stop,
    StreamDeps,
    Subscribe,
)
from actors.errors import ActorError
from actors.room import post_as
from actors.runtime import ActorSystem
from actors.sessions import MemberSession, SessionHub
from protocol.errors import ErrorCode
from protocol.frames import Message
from storage.ai import ai_store
from storage.ai_files import ai_files_store
from storage.base import Room, Store, StoredMessage, new_time_id, now_ms

if TYPE_CHECKING:  # types only: actors/ starts no billing and reads settings as given
    from realtime_server.base.settings import Settings

AI_KIND = "ai"


# Billing's quota (bridge.billing.quota.QuotaService) as the AI feature uses it,
# as Protocols: actors sit below the bridge (ARCHITECTURE.md), so they name no
# billing class; the node hands the real service in.
class QuotaFigures(Protocol):
    @property
    def plan(self) -> str: ...
    @property
    def monthly_limit(self) -> int: ...
    @property
    def monthly_used(self) -> int: ...
    @property
    def daily_limit(self) -> int | None: ...
    @property
    def daily_used(self) -> int: ...
    @property
    def resets_at(self) -> int: ...
    @property
    def day_resets_at(self) -> int: ...


class QuotaVerdict(Protocol):
    @property
    def allowed(self) -> bool: ...
    @property
    def summary(self) -> QuotaFigures: ...
    @property
    def exhausted(self) -> str | None: ...


class Quota(Protocol):
    async def try_consume(self, user_id: str, n: int = 1) -> QuotaVerdict: ...
    # ``consumed``: the verdict try_consume gave (billing's own decision type).
    async def refund(self, user_id: str, n: int = 1, *, consumed: Any = None) -> object: ...
    async def allows_model(self, user_id: str, model: str) -> bool: ...
    async def summary(self, user_id: str) -> QuotaFigures: ...


class AiRefused(ActorError):
    """An AI request refused with a client-facing code (socket ``err`` / REST error)."""


def _refusal_text(decision: QuotaVerdict) -> str:
    """Limit, usage and reset time, in words (billing's summary has the numbers)."""
    s = decision.summary
    daily = getattr(decision, "exhausted", None) == "daily"
    limit = s.daily_limit if daily else s.monthly_limit
    used = s.daily_used if daily else s.monthly_used
    resets = s.day_resets_at if daily else s.resets_at
    when = dt.datetime.fromtimestamp(resets / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cap = "daily" if daily else "monthly"
    return (
        f"AI message limit reached: {used} of {limit} used ({cap} cap of the {s.plan} plan);"
        f" it resets at {when}."
    )


class AiService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        system: ActorSystem,
        hub: SessionHub,
        frame: Callable[[bytes], bytes],
        quota: Quota | None = None,
        link: AiLink | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings
        self.store = store
        self.system = system
        self.ai = ai_store(store)
        self.files = ai_files_store(store)
        self.providers = Providers.from_settings(settings)
        self.quota = quota  # billing's QuotaService; the node sets it
        self.clock = clock  # the node's (realtime_server.base.clock)

        async def post(room_id: str, sender: str, cid: str, text: str) -> Message:
            return await post_as(
                system, room_id, sender, cid, text, kind=AI_KIND, system_sender=True
            )

        self.streams = AiStreams(
            StreamDeps(
                ai=self.ai,
                hub=hub,
                frame=frame,
                post=post,
                first_token_timeout=settings.ai_first_token_timeout,
                idle_timeout=settings.ai_idle_timeout,
                max_generations=settings.ai_max_generations,
                link=link,
                clock=clock,
            )
        )

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await self.streams.serve(task_status=task_status)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self.providers.aclose()

    # ----- models -----

    def metered(self) -> Quota:
        if self.quota is None:
            raise AiRefused(
                "AI quotas are not configured on this server.", code=ErrorCode.UNAVAILABLE
            )
        return self.quota

    async def _allows(self, user_id: str, model: str) -> bool:
        return model == OFFLINE_MODEL or bool(await self.metered().allows_model(user_id, model))

    async def allowed_models(self, user_id: str) -> list[str]:
        return [m for m in self.providers.models() if await self._allows(user_id, m)]

    async def check_model(self, user_id: str, model: str) -> None:
        if self.providers.get(model) is None:
            raise AiRefused(
                f"No configured provider serves {model!r}.", code=ErrorCode.AI_UNKNOWN_MODEL
            )
        if not await self._allows(user_id, model):
            raise AiRefused(
                f"Your plan does not include the model {model!r}.",
                code=ErrorCode.AI_MODEL_NOT_ALLOWED,
            )

    # ----- asking -----

    async def member_room(self, user_id: str, room_id: str) -> Room:
        room = await self.store.get_room(room_id)
        if room is None or all(m.user_id != user_id for m in room.members):
            raise AiRefused(
                "You are not a member of this room (or it does not exist).",
                code=ErrorCode.NOT_MEMBER,
            )
        return room

    def check_prompt(self, text: str) -> None:
        if not text.strip():
            raise AiRefused("The prompt must not be empty.", code=ErrorCode.INVALID)
        if "\x00" in text:
            raise AiRefused("The prompt must not contain NUL.", code=ErrorCode.INVALID)
        limit = self.settings.ai_max_prompt_chars
        if len(text) > limit:
            raise AiRefused(
                f"The prompt is {len(text)} characters; the limit is {limit}.",
                code=ErrorCode.MESSAGE_TOO_LONG,
            )

    async def ask(
        self,
        user_id: str,
        room_id: str,
        cid: str,
        text: str,
        model: str | None = None,
        *,
        sink: Callable[[msgspec.Struct], None] | None = None,
    ) -> tuple[Message, Generation | None]:
        room = await self.member_room(user_id, room_id)
        self.check_prompt(text)
        known = await self.store.find_by_cids(room_id, [(user_id, cid)])
        if (user_id, cid) in known:
            from actors.room_rules import to_wire

            return to_wire(known[(user_id, cid)]), None
        return await self._generate(user_id, room, model, sink, prompt=(cid, text))

    async def regenerate(self, user_id: str, room_id: str, model: str | None = None) -> Generation:
        room = await self.member_room(user_id, room_id)
        _, gen = await self._generate(user_id, room, model, None, regen=True)
        assert gen is not None
        return gen

    async def edit(
        self, user_id: str, room_id: str, seq: int, cid: str, text: str, model: str | None = None
    ) -> tuple[Message, Generation | None]:
        room = await self.member_room(user_id, room_id)
        self.check_prompt(text)
        return await self._generate(user_id, room, model, None, prompt=(cid, text), edit_seq=seq)

    async def _generate(
        self,
        user_id: str,
        room: Room,
        model: str | None,
        sink: Callable[[msgspec.Struct], None] | None,
        *,
        prompt: tuple[str, str] | None = None,
        regen: bool = False,
        edit_seq: int | None = None,
    ) -> tuple[Message, Generation | None]:
        conv = await self.ai.get_conversation(room.id) if room.kind == AI_KIND else None
        model = model or (conv.model if conv else self.providers.default_model)
        await self.check_model(user_id, model)
        provider = self.providers.get(model)
        assert provider is not None
        if not self.streams.reserve(room.id):
            raise AiRefused(code=ErrorCode.AI_BUSY)
        consumed = False
        slot: int | None = None
        link = self.streams.deps.link
        try:
            if link is not None:
                # Several nodes: the slot is the room's, not this node's.
                slot = await link.take_slot(room.id)
                if slot is None:
                    raise AiRefused(code=ErrorCode.AI_BUSY)
            hidden = await self.ai.hidden(room.id)
            last = await self.store.last_seq(room.id)
            recent = visible(
                await self.store.messages_before(
                    room.id, last + 1, self.settings.ai_context_messages
                ),
                hidden,
            )
            hide: tuple[int, int] | None = None
            if regen:
                # The last visible answer goes; the prompt before it is answered again.
                while recent and is_ai_sender(recent[-1].sender_id):
                    hide = (recent[-1].seq, last)
                    recent.pop()
                if not recent:
                    raise AiRefused("There is no prompt to answer again.", code=ErrorCode.NOT_FOUND)
            if edit_seq is not None:
                mine = [m for m in recent if m.seq == edit_seq]
                if not mine or mine[0].sender_id != user_id:
                    raise AiRefused(
                        "Only your own visible message can be edited.", code=ErrorCode.NOT_FOUND
                    )
                hide = (edit_seq, last)
                recent = [m for m in recent if m.seq < edit_seq]
            quota = self.metered()
            decision = await quota.try_consume(user_id, 1)
            if not decision:
                raise AiRefused(_refusal_text(decision), code=ErrorCode.AI_QUOTA_EXCEEDED)
            consumed = True
            first_exchange = (
                conv is not None
                and not conv.title
                and not any(is_ai_sender(m.sender_id) for m in recent)
            )
            if prompt is not None:
                cid, text = prompt
                question = await post_as(self.system, room.id, user_id, cid, text)
                recent.append(_as_stored(question))
            else:
                question = _to_message(recent[-1])
            # Hidden only once the replacement prompt is stored: a failed post
            # must not leave an edited branch gone with nothing in its place.
            if hide is not None:
                await self.ai.hide(room.id, *hide)
            system_prompt = conv.system_prompt if conv else self.settings.ai_system_prompt
            gen_id = new_time_id("g_")
            # The project's files: chunks relevant to the question join the system prompt.
            project = await project_context(
                self.files,
                self.settings,
                conv,
                user_id,
                question.text,
                system_prompt,
                gen_id=gen_id,
                room_id=room.id,
            )
            request = ChatRequest(
                model=model,
                messages=build_context(
                    project.system_prompt,
                    recent,
                    budget_tokens=self.settings.ai_context_tokens,
                    group=room.kind != AI_KIND,
                ),
                temperature=conv.temperature if conv else None,
                max_tokens=(conv.max_tokens if conv and conv.max_tokens else None)
                or self.settings.ai_max_output_tokens,
            )

            async def refund() -> None:
                # To the period the message was counted in, not the one in force
                # when the generation fails (a plan may change meanwhile).
                await quota.refund(user_id, 1, consumed=decision)

            spec = GenerationSpec(
                gen_id=gen_id,
                room_id=room.id,
                user_id=user_id,
                model=model,
                provider=provider,
                request=request,
                prompt_seq=question.seq,
                members=frozenset(m.user_id for m in room.members),
                refund=refund,
                title=short_title(question.text) if first_exchange else None,
                conversation=conv is not None,
                files=project.files,
                slot=slot,
            )
            gen = self.streams.start(spec)
            slot = None  # the generation gives it back when it ends
            if sink is not None:
                await gen.tell(Subscribe(sink))
            return question, gen
        except BaseException:
            if link is not None and slot is not None:
                with trio.CancelScope(shield=True):
                    await link.free_slot(room.id, slot)
            self.streams.release(room.id)
            if consumed:
                with trio.CancelScope(shield=True):
                    await quota.refund(user_id, 1, consumed=decision)
            raise

    # ----- control -----

    async def _is_member(self, user_id: str, room_id: str) -> bool:
        """Membership now (storage), not at the generation's start: a removed member is out."""
        room = await self.store.get_room(room_id)
        return room is not None and any(m.user_id == user_id for m in room.members)

    async def member_left(self, room_id: str, user_id: str) -> None:
        """``user_id`` was removed from ``room_id`` or left it: the running answer stops
        streaming to them at once."""
        gen = self.streams.running_in(room_id)
        if gen is None:
            return
        try:
            await gen.tell(Leave(user_id))
        except trio.ClosedResourceError:
            pass  # it ended meanwhile

    async def stop(self, user_id: str, gen_id: str, *, forward: bool = True) -> None:
        """``forward``: ask the other nodes when this one does not run ``gen_id``
        (False for a stop they forwarded here)."""
        gen = self.streams.get(gen_id)
        if gen is None or not await self._is_member(user_id, gen.room_id):
            if self.streams.has_ended(gen_id) and gen is None:
                return  # stopping twice, or after the end: nothing left to do
            link = self.streams.deps.link
            if gen is None and link is not None and forward and await link.stop(user_id, gen_id):
                return  # it runs (or ran) on another node
            raise AiRefused("No such AI answer is being generated.", code=ErrorCode.NOT_FOUND)
        msg = Stop()
        try:
            await gen.tell(msg)
        except trio.ClosedResourceError:
            return  # it ended meanwhile
        await msg.done.wait()

    async def stop_room(self, user_id: str, room_id: str) -> None:
        """Stop the room's running answer, on this node or another (no error if none)."""
        running = self.streams.running_in(room_id)
        if running is not None:
            try:
                await self.stop(user_id, running.id, forward=False)
            except ActorError:
                pass  # it ended meanwhile
        elif self.streams.deps.link is not None:
            await self.streams.deps.link.stop_room(user_id, room_id)

    async def running(self, room_ids: Sequence[str]) -> dict[str, str]:
        """The generation running now in each of these rooms (room -> id), on this
        node or another; rooms with none are left out. Raises ``ActorError``
        (``unavailable``) when another node that runs one cannot be asked."""
        found: dict[str, str] = {}
        for room_id in room_ids:
            gen = self.streams.running_in(room_id)
            if gen is not None:
                found[room_id] = gen.id
        link = self.streams.deps.link
        rest = [r for r in room_ids if r not in found]
        if link is not None and rest:
            found.update(await link.running(rest))
        return found

    async def attach(
        self, user_id: str, session: MemberSession, room_id: str, gen_id: str | None, from_: int
    ) -> None:
        gen = self.streams.running_in(room_id)
        link = self.streams.deps.link
        if gen is None and link is not None and await self._is_member(user_id, room_id):
            if await link.attach(user_id, session, room_id, gen_id, from_):
                return  # attached to the generation another node runs
        if (
            gen is None
            or (gen_id is not None and gen.id != gen_id)
            or not await self._is_member(user_id, room_id)
        ):
            raise AiRefused(
                "No AI answer is being generated here; a finished answer is in the history.",
                code=ErrorCode.NOT_FOUND,
            )
        msg = Attach(session, from_)
        try:
            await gen.tell(msg)
        except trio.ClosedResourceError:
            raise AiRefused(
                "The AI answer has just ended; it is in the history.", code=ErrorCode.NOT_FOUND
            ) from None
        await msg.done.wait()

    async def create_room(self, user_id: str, title: str) -> Room:
        """A new AI conversation's room: kind "ai", the user its only member (owner)."""
        from storage.base import RoomMember

        room = Room(
            id=new_time_id("r_"),
            kind=AI_KIND,
            name=title,
            created_by=user_id,
            created_at=self.clock(),
            members=(RoomMember(user_id, "owner"),),
        )
        return await self.store.create_room(room)


def _as_stored(m: Message) -> StoredMessage:
    return StoredMessage(
        id=m.id,
        room_id=m.room,
        seq=m.seq,
        sender_id=m.sender,
        cid=m.cid,
        text=m.text,
        created_at=m.ts,
        kind=m.kind,
    )


def _to_message(m: StoredMessage) -> Message:
    from actors.room_rules import to_wire

    return to_wire(m)
