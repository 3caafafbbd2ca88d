"""Stories: 24-hour status updates (issue 15, part 1).

- ``POST /stories``: a text story (text, background colour, font) or an
  image or video story (an upload from ``POST /media`` of that kind, with an
  optional caption). It shows for STORY_TTL_SECONDS. Privacy: ``contacts``
  (all my contacts), ``except`` (my contacts but ``users``), ``only``
  (``users``: close friends). The audience is fixed now (storage.stories);
  its online devices get ``story.new``.
- ``GET /stories/feed``: the people whose stories I may see, those with a
  story I have not seen first, then by their newest story; each person's
  stories oldest first.
- ``POST /stories/{id}/view``, ``.../reaction``, ``.../reply``: the viewer's
  side; the author hears ``story.viewed`` / ``story.reacted`` live, and a
  reply is a message in the direct room quoting the story, plus a
  ``story.reply`` notification.
- ``GET /stories/{id}/viewers``: the author only.
- Highlights keep chosen stories beyond 24 hours for their original audience.

A story id that is unknown, expired, deleted or not for the caller answers
404 alike: nothing tells a story exists that the caller may not see.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Annotated

import msgspec
from quart import Response

from bridge.accounts.tokens import AccessClaims
from bridge.errors import BadRequest, BridgeError, NotFound
from bridge.http.routing import Body, Router, empty_response, json_response
from bridge.routes.media import blob_store_for
from bridge.routes.schemas import UserId
from bridge.services import BridgeServices
from protocol import codec
from protocol.emoji import is_emoji
from protocol.errors import ErrorCode
from protocol.frames import Message
from protocol.frames_chat import PREVIEW_CHARS, MessageMeta, StoryQuote
from protocol.frames_stories import (
    Story,
    StoryGone,
    StoryKind,
    StoryNew,
    StoryPrivacy,
    StoryReacted,
    StoryViewData,
    StoryViewed,
)
from storage.base import Room, RoomMember, new_id
from storage.blobs import BlobNotFound, delete_blobs
from storage.media import media_store
from storage.stories import Highlight, story_store
from storage.stories import Story as StoredStory

log = logging.getLogger(__name__)

MAX_LISTED = 500
MAX_HIGHLIGHT_STORIES = 100
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_NO_STORY = "No such story, or it expired."
StoryId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class PostStory(msgspec.Struct, forbid_unknown_fields=True):
    kind: StoryKind
    text: Annotated[
        str, msgspec.Meta(description="A text story's text, or a caption; STORY_MAX_CHARS.")
    ] = ""
    bg: Annotated[str, msgspec.Meta(description="Text stories: background #rrggbb.")] = ""
    font: Annotated[str, msgspec.Meta(max_length=40)] = ""
    media: Annotated[
        str | None, msgspec.Meta(description="Image and video stories: your upload's id.")
    ] = None
    privacy: StoryPrivacy = "contacts"
    users: Annotated[
        list[UserId],
        msgspec.Meta(
            max_length=MAX_LISTED,
            description="`except`: contacts left out; `only`: the only ones to see it.",
        ),
    ] = []


class PostedStory(msgspec.Struct):
    story: Story
    audience: Annotated[int, msgspec.Meta(description="How many users may see it.")]


class StoryEnvelope(msgspec.Struct):
    story: Story


class StoryList(msgspec.Struct):
    stories: list[Story]


class FeedPerson(msgspec.Struct):
    user: str
    unseen: Annotated[int, msgspec.Meta(description="Their stories you have not viewed.")]
    stories: list[Story]


class Feed(msgspec.Struct):
    people: list[FeedPerson]


class Viewer(msgspec.Struct):
    user: str
    viewed_at: int
    reaction: str | None = None
    reacted_at: int | None = None


class Viewers(msgspec.Struct):
    viewers: list[Viewer]
    reactions: Annotated[dict[str, int], msgspec.Meta(description="Emoji -> how many.")]


class ReactRequest(msgspec.Struct, forbid_unknown_fields=True):
    emoji: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class ReplyRequest(msgspec.Struct, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(min_length=1)]


class ReplyOut(msgspec.Struct):
    message: Message


class NewHighlight(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    stories: Annotated[list[StoryId], msgspec.Meta(min_length=1, max_length=MAX_HIGHLIGHT_STORIES)]


class HighlightOut(msgspec.Struct):
    id: str
    name: str
    created_at: int
    stories: list[Story]


class HighlightEnvelope(msgspec.Struct):
    highlight: HighlightOut


class Highlights(msgspec.Struct):
    highlights: list[HighlightOut]


def to_wire(s: StoredStory) -> Story:
    return Story(
        id=s.id,
        author=s.author_id,
        kind=s.kind,  # type: ignore[arg-type]  # written only from StoryKind
        ts=s.created_at,
        expires_at=s.expires_at,
        text=s.text,
        bg=s.bg,
        font=s.font,
        media=s.media_id,
        seen=s.seen,
        reaction=s.reaction,
    )


def feed_of(stories: Iterable[StoredStory]) -> list[FeedPerson]:
    """Group by author: people with an unseen story first, then by newest story."""
    people: dict[str, list[StoredStory]] = {}
    for s in stories:
        people.setdefault(s.author_id, []).append(s)

    def order(item: tuple[str, list[StoredStory]]) -> tuple[bool, int, str]:
        author, theirs = item
        unseen = any(not s.seen for s in theirs)
        return (not unseen, -max(s.created_at for s in theirs), author)

    return [
        FeedPerson(author, sum(not s.seen for s in theirs), [to_wire(s) for s in theirs])
        for author, theirs in sorted(people.items(), key=order)
    ]


def add_routes(router: Router, services: BridgeServices) -> None:
    store = services.store
    stories = story_store(store)
    media = media_store(store)
    blobs = blob_store_for(services)
    settings = services.settings

    def push(user_ids: Iterable[str], frame: msgspec.Struct) -> None:
        if services.push_to_user is None:
            return
        raw = codec.encode(frame)
        for user in user_ids:
            services.push_to_user(user, raw)

    async def live(story_id: str, reader: str) -> StoredStory:
        story = await stories.live(story_id, reader, services.clock())
        if story is None:
            raise NotFound(_NO_STORY)
        return story

    async def others_live(story_id: str, reader: str) -> StoredStory:
        """A live story of someone else: what a viewer may view, react to, reply to."""
        story = await live(story_id, reader)
        if story.author_id == reader:
            raise BadRequest("This is your own story.")
        return story

    def check(body: PostStory) -> None:
        limit = settings.story_max_chars
        if len(body.text) > limit:
            raise BridgeError(
                code=ErrorCode.MESSAGE_TOO_LONG,
                message=f"The text is over {limit} characters.",
                field="text",
            )
        if "\x00" in body.text or "\x00" in body.font:
            raise BadRequest("The text must not contain NUL.", field="text")
        if body.kind == "text":
            if not body.text.strip():
                raise BadRequest("A text story needs text.", field="text")
            if body.media is not None:
                raise BadRequest("A text story has no media.", field="media")
            if body.bg and not _COLOUR.fullmatch(body.bg):
                raise BadRequest("The background is a colour like #1e88e5.", field="bg")
        else:
            if body.media is None:
                raise BadRequest(f"An {body.kind} story needs an upload.", field="media")
            if body.bg or body.font:
                raise BadRequest("Only text stories have a background and a font.", field="bg")
        if body.privacy == "contacts" and body.users:
            raise BadRequest("Privacy 'contacts' takes no list of users.", field="users")
        if body.privacy == "only" and not body.users:
            raise BadRequest("Privacy 'only' needs the users who may see it.", field="users")

    @router.route(
        "POST",
        "/stories",
        summary="Post a story, shown for STORY_TTL_SECONDS",
        description=(
            "Text stories have `text`, a background colour `bg` and a `font`; image and"
            " video stories name an upload of that kind (`POST /media`) in `media`, with an"
            " optional caption. `privacy`: `contacts` (all your contacts), `except` (your"
            " contacts but `users`), `only` (just `users`). Blocked users never see it. The"
            " audience is fixed now, and its online devices get `story.new`."
        ),
        tag="stories",
        body=PostStory,
        responses={201: PostedStory},
        errors=(ErrorCode.INVALID, ErrorCode.MESSAGE_TOO_LONG),
    )
    async def post_story(claims: AccessClaims, body: PostStory) -> Response:
        me = claims.user_id
        check(body)
        if body.media is not None:
            info = await media.get_media(body.media)
            if info is None or info.owner_id != me:
                raise BadRequest("No such upload of yours.", field="media")
            if not info.content_type.startswith(f"{body.kind}/"):
                raise BadRequest(
                    f"The upload is {info.content_type}, not an {body.kind}.", field="media"
                )
        listed = [u for u in dict.fromkeys(body.users) if u != me]
        if listed:
            known = await store.existing_user_ids(listed)
            if unknown := [u for u in listed if u not in known]:
                shown = ", ".join(unknown[:5])
                raise BadRequest(f"Unknown user ids: {shown}.", field="users")
        now = services.clock()
        story = StoredStory(
            id=new_id("s_"),
            author_id=me,
            kind=body.kind,
            text=body.text,
            bg=body.bg,
            font=body.font,
            media_id=body.media,
            privacy=body.privacy,
            created_at=now,
            expires_at=now + settings.story_ttl_seconds * 1000,
        )
        audience = await stories.post(story, listed)
        if services.stories is not None:
            services.stories.scheduled(story.expires_at)
        wire = to_wire(story)
        push(audience, StoryNew(d=wire))
        return json_response(PostedStory(wire, len(audience)), status=201)

    @router.route(
        "GET",
        "/stories/feed",
        summary="The stories you may see, by person: unseen first",
        tag="stories",
        responses={200: Feed},
    )
    async def feed(claims: AccessClaims) -> Response:
        return json_response(Feed(feed_of(await stories.feed(claims.user_id, services.clock()))))

    @router.route(
        "GET",
        "/me/stories",
        summary="Your live stories, oldest first",
        tag="stories",
        responses={200: StoryList},
    )
    async def my_stories(claims: AccessClaims) -> Response:
        mine = await stories.mine(claims.user_id, services.clock())
        return json_response(StoryList([to_wire(s) for s in mine]))

    @router.route(
        "GET",
        "/stories/<story_id>",
        summary="One story you may see",
        tag="stories",
        responses={200: StoryEnvelope},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def get_story(claims: AccessClaims, story_id: str) -> Response:
        story = await stories.get(story_id, claims.user_id, services.clock())
        if story is None:
            raise NotFound(_NO_STORY)
        return json_response(StoryEnvelope(to_wire(story)))

    @router.route(
        "GET",
        "/stories/<story_id>/media",
        summary="An image or video story's bytes",
        tag="stories",
        responses={200: Body("*/*", {"type": "string", "format": "binary"}, "The bytes.")},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def story_media(claims: AccessClaims, story_id: str) -> Response:
        story = await stories.get(story_id, claims.user_id, services.clock())
        info = (
            None
            if story is None or story.media_id is None
            else await media.get_media(story.media_id)
        )
        if info is None:
            raise NotFound(_NO_STORY)
        try:
            data = await blobs.get(info.blob_key)
        except BlobNotFound:
            raise NotFound(_NO_STORY) from None
        return Response(data, content_type=info.content_type)

    @router.route(
        "DELETE",
        "/stories/<story_id>",
        summary="Delete your story before it expires",
        description="Its audience's online devices get `story.gone`; its upload is deleted.",
        tag="stories",
        responses={204: None},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def delete_story(claims: AccessClaims, story_id: str) -> Response:
        me = claims.user_id
        audience = await stories.audience_of(story_id)
        keys = await stories.delete(story_id, me)
        if keys is None:
            raise NotFound(_NO_STORY)
        await delete_blobs(blobs, keys)
        push(audience, StoryGone(d=story_id))
        return empty_response()

    @router.route(
        "POST",
        "/stories/<story_id>/view",
        summary="Mark a story viewed",
        description="The first view tells the author's online devices (`story.viewed`).",
        tag="stories",
        responses={200: StoryEnvelope},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.INVALID),
    )
    async def view(claims: AccessClaims, story_id: str) -> Response:
        me = claims.user_id
        story = await others_live(story_id, me)
        now = services.clock()
        if await stories.view(story_id, me, now):
            push([story.author_id], StoryViewed(d=StoryViewData(story_id, me, now)))
        seen = await live(story_id, me)
        return json_response(StoryEnvelope(to_wire(seen)))

    @router.route(
        "GET",
        "/stories/<story_id>/viewers",
        summary="Who viewed your story, and their reactions",
        tag="stories",
        responses={200: Viewers},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def viewers(claims: AccessClaims, story_id: str) -> Response:
        if await stories.own(story_id, claims.user_id) is None:
            raise NotFound(_NO_STORY)
        views = await stories.viewers(story_id)
        counts: dict[str, int] = {}
        for v in views:
            if v.reaction is not None:
                counts[v.reaction] = counts.get(v.reaction, 0) + 1
        return json_response(
            Viewers(
                [Viewer(v.viewer_id, v.viewed_at, v.reaction, v.reacted_at) for v in views],
                counts,
            )
        )

    @router.route(
        "POST",
        "/stories/<story_id>/reaction",
        summary="React to a story with one emoji (replaces your earlier one)",
        description="Counts as a view too; the author's online devices get `story.reacted`.",
        tag="stories",
        body=ReactRequest,
        responses={200: StoryEnvelope},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.INVALID),
    )
    async def react(claims: AccessClaims, story_id: str, body: ReactRequest) -> Response:
        me = claims.user_id
        if not is_emoji(body.emoji):
            raise BadRequest("A reaction is one emoji.", field="emoji")
        story = await others_live(story_id, me)
        now = services.clock()
        await stories.view(story_id, me, now, body.emoji)
        push([story.author_id], StoryReacted(d=StoryViewData(story_id, me, now, body.emoji)))
        return json_response(StoryEnvelope(to_wire(await live(story_id, me))))

    @router.route(
        "POST",
        "/stories/<story_id>/reply",
        summary="Reply to a story: a message in your direct room with its author",
        description=(
            "The message quotes the story in its `story` field; the author also gets a"
            " `story.reply` notification."
        ),
        tag="stories",
        body=ReplyRequest,
        responses={201: ReplyOut},
        errors=(ErrorCode.NOT_FOUND, ErrorCode.INVALID, ErrorCode.MESSAGE_TOO_LONG),
    )
    async def reply(claims: AccessClaims, story_id: str, body: ReplyRequest) -> Response:
        me = claims.user_id
        if len(body.text) > settings.max_message_chars:
            raise BridgeError(
                code=ErrorCode.MESSAGE_TOO_LONG,
                message=f"The text is over {settings.max_message_chars} characters.",
                field="text",
            )
        if not body.text.strip() or "\x00" in body.text:
            raise BadRequest("A reply needs text (and no NUL).", field="text")
        story = await others_live(story_id, me)
        if services.system is None:
            raise BridgeError(code=ErrorCode.UNAVAILABLE, message="Replies need the realtime node.")
        from actors.errors import ActorError
        from actors.room import post_as

        author = story.author_id
        room = await store.create_room(
            Room(
                id=new_id("r_"),
                kind="direct",
                name="",
                created_by=me,
                created_at=services.clock(),
                members=(RoomMember(me, "member"), RoomMember(author, "member")),
                direct_key=":".join(sorted((me, author))),
            )
        )
        if services.room_changed is not None:
            services.room_changed(room.id, False)
        quote = StoryQuote(story.id, author, story.kind, story.text[:PREVIEW_CHARS], story.media_id)
        try:
            message = await post_as(
                services.system,
                room.id,
                me,
                new_id("sr_"),
                body.text,
                meta=MessageMeta(story=quote),
            )
        except ActorError as exc:
            raise BridgeError(str(exc), code=exc.code) from None
        if services.notifier is not None:
            await services.notifier.story_reply(author, room.id, me, body.text[:PREVIEW_CHARS])
        return json_response(ReplyOut(message), status=201)

    # ----- highlights ----------------------------------------------------------------

    async def highlight_out(h: Highlight, reader: str) -> HighlightOut:
        now = services.clock()
        shown = [await stories.get(s, reader, now) for s in h.story_ids]
        return HighlightOut(h.id, h.name, h.created_at, [to_wire(s) for s in shown if s])

    @router.route(
        "POST",
        "/me/highlights",
        summary="Keep some of your stories in a named highlight, beyond 24 hours",
        description="Each story stays visible to its original audience only.",
        tag="stories",
        body=NewHighlight,
        responses={201: HighlightEnvelope},
        errors=(ErrorCode.INVALID,),
    )
    async def add_highlight(claims: AccessClaims, body: NewHighlight) -> Response:
        me = claims.user_id
        ids = list(dict.fromkeys(body.stories))
        for sid in ids:
            if await stories.own(sid, me) is None:
                raise BadRequest(f"No story {sid} of yours.", field="stories")
        hid = new_id("h_")
        await stories.add_highlight(me, hid, body.name, ids, services.clock())
        mine = [h for h in await stories.highlights(me, me) if h.id == hid]
        return json_response(HighlightEnvelope(await highlight_out(mine[0], me)), status=201)

    @router.route(
        "GET",
        "/users/<user_id>/highlights",
        summary="A user's highlights, with the stories you may see in them",
        tag="stories",
        responses={200: Highlights},
    )
    async def highlights(claims: AccessClaims, user_id: str) -> Response:
        me = claims.user_id
        found = await stories.highlights(user_id, me)
        return json_response(Highlights([await highlight_out(h, me) for h in found]))

    @router.route(
        "DELETE",
        "/me/highlights/<highlight_id>",
        summary="Delete one of your highlights (its stories expire as usual)",
        tag="stories",
        responses={204: None},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def delete_highlight(claims: AccessClaims, highlight_id: str) -> Response:
        if not await stories.delete_highlight(claims.user_id, highlight_id):
            raise NotFound("No such highlight of yours.")
        if services.stories is not None:
            services.stories.scheduled(services.clock())  # what it kept may be due now
        return empty_response()
