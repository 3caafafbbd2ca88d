"""Contacts, phone-number discovery, blocks and user search.

Discovery: the client sends SHA-256 hashes of its address book's numbers
(E.164 text; see ``bridge.accounts.phones``) and learns which belong to users. At most
DISCOVER_MAX_HASHES per request and DISCOVER_PER_DAY per user and day, so
walking the numbering plan to list our users is out of reach; a refused
request answers nothing at all. Matches leave out incomplete accounts and
people who blocked the caller; a match shows the user's card, never the
number itself.

Blocks are one-way to make and hold both ways: neither can message the other
in their direct room (the room actor is told at once), call, or see the
other's photo, bio and presence. Search and discovery hide those who
blocked the caller; whom the caller blocked stays findable (to unblock).
"""

from __future__ import annotations

from quart import Response

from bridge.accounts.onboarding import Onboarding
from bridge.accounts.tokens import AccessClaims
from bridge.errors import BadRequest, NotFound
from bridge.http.routing import Router, empty_response, json_response
from bridge.routes.schemas_onboarding import (
    AddContactRequest,
    BlockRequest,
    ContactEnvelope,
    ContactList,
    ContactOut,
    DiscoverRequest,
    DiscoverResponse,
    Match,
    PageQuery,
    SearchQuery,
    UserCardOut,
    UserList,
)
from bridge.services import BridgeServices
from protocol.errors import ErrorCode
from storage.contacts import ascii_fold


def add_routes(router: Router, services: BridgeServices) -> None:
    onboarding = Onboarding.of(services)
    social = onboarding.social
    settings = services.settings

    # ----- contacts ----------------------------------------------------------------

    @router.route(
        "GET",
        "/contacts",
        summary="Your contacts, by name",
        tag="contacts",
        query=PageQuery,
        responses={200: ContactList},
    )
    async def list_contacts(claims: AccessClaims, query: PageQuery) -> Response:
        me = claims.user_id
        found = await social.list_contacts(me, limit=query.limit + 1, offset=query.offset)
        page = found[: query.limit]
        blocked = await social.blocked_among(me, [e.user.id for e in page])
        return json_response(
            ContactList(
                [
                    ContactOut(
                        UserCardOut.of(onboarding.card(e.user, me, blocked=e.user.id in blocked)),
                        e.name,
                        e.created_at,
                    )
                    for e in page
                ],
                has_more=len(found) > query.limit,
            )
        )

    @router.route(
        "POST",
        "/contacts",
        summary="Add a user to your contacts (or rename one)",
        description="201 when added, 200 when it was there already (the name is updated).",
        tag="contacts",
        body=AddContactRequest,
        responses={201: ContactEnvelope, 200: ContactEnvelope},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def add_contact(claims: AccessClaims, body: AddContactRequest) -> Response:
        me = claims.user_id
        if body.user_id == me:
            raise BadRequest("You cannot add yourself.", field="user_id")
        name = body.name.strip()
        if "\x00" in name:
            raise BadRequest("The name must not contain NUL.", field="name")
        # NotFound from storage (no such user) answers 404 before anything is stored.
        created = await social.add_contact(me, body.user_id, name, onboarding.now_ms())
        entry = await social.get_contact(me, body.user_id)
        if entry is None:  # removed by a concurrent request of the same user
            raise NotFound("This user is not in your contacts.")
        blocked = bool(await social.blocked_among(me, [body.user_id]))
        out = ContactOut(
            UserCardOut.of(onboarding.card(entry.user, me, blocked=blocked)),
            entry.name,
            entry.created_at,
        )
        return json_response(ContactEnvelope(out), status=201 if created else 200)

    @router.route(
        "DELETE",
        "/contacts/<user_id>",
        summary="Remove a contact",
        tag="contacts",
        responses={204: None},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def remove_contact(claims: AccessClaims, user_id: str) -> Response:
        if not await social.remove_contact(claims.user_id, user_id):
            raise NotFound("This user is not in your contacts.")
        return empty_response()

    @router.route(
        "POST",
        "/contacts/discover",
        summary="Which of these phone-number hashes belong to users",
        tag="contacts",
        body=DiscoverRequest,
        responses={200: DiscoverResponse},
        errors=(ErrorCode.RATE_LIMITED,),
    )
    async def discover(claims: AccessClaims, body: DiscoverRequest) -> Response:
        hashes = list(dict.fromkeys(body.hashes))
        if len(hashes) > settings.discover_max_hashes:
            raise BadRequest(
                f"At most {settings.discover_max_hashes} hashes per request.", field="hashes"
            )
        me = claims.user_id
        await onboarding.limits.before_discover(me, len(hashes))
        found = await social.match_phone_hashes(me, hashes)
        blocked = await social.blocked_among(me, [c.id for c in found.values()])
        return json_response(
            DiscoverResponse(
                [
                    Match(
                        h,
                        UserCardOut.of(
                            onboarding.card(found[h], me, blocked=found[h].id in blocked)
                        ),
                    )
                    for h in hashes
                    if h in found
                ]
            )
        )

    # ----- blocks ------------------------------------------------------------------

    @router.route(
        "GET",
        "/blocks",
        summary="The users you blocked",
        tag="contacts",
        query=PageQuery,
        responses={200: UserList},
    )
    async def list_blocks(claims: AccessClaims, query: PageQuery) -> Response:
        me = claims.user_id
        found = await social.list_blocked(me, limit=query.limit + 1, offset=query.offset)
        return json_response(
            UserList(
                [
                    UserCardOut.of(onboarding.card(c, me, blocked=True))
                    for c in found[: query.limit]
                ],
                has_more=len(found) > query.limit,
            )
        )

    @router.route(
        "POST",
        "/blocks",
        summary="Block a user: no messages, calls or presence between you",
        tag="contacts",
        body=BlockRequest,
        responses={204: None},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def block(claims: AccessClaims, body: BlockRequest) -> Response:
        me = claims.user_id
        if body.user_id == me:
            raise BadRequest("You cannot block yourself.", field="user_id")
        if await social.block(me, body.user_id, onboarding.now_ms()):
            await onboarding.blocks_changed(me, body.user_id)
        return empty_response()

    @router.route(
        "DELETE",
        "/blocks/<user_id>",
        summary="Unblock a user",
        tag="contacts",
        responses={204: None},
        errors=(ErrorCode.NOT_FOUND,),
    )
    async def unblock(claims: AccessClaims, user_id: str) -> Response:
        if not await social.unblock(claims.user_id, user_id):
            raise NotFound("You have not blocked this user.")
        await onboarding.blocks_changed(claims.user_id, user_id)
        return empty_response()

    # ----- search ------------------------------------------------------------------

    @router.route(
        "GET",
        "/users/search",
        summary="Find users by username prefix or display name",
        description=(
            "Case-insensitive for ASCII letters. Username matches come first. "
            "People who blocked you are not shown."
        ),
        tag="contacts",
        query=SearchQuery,
        responses={200: UserList},
        errors=(ErrorCode.RATE_LIMITED,),
    )
    async def search(claims: AccessClaims, query: SearchQuery) -> Response:
        text = ascii_fold(query.q.strip())
        if not text or "\x00" in text:
            raise BadRequest("Give something to search for.", field="q")
        me = claims.user_id
        await onboarding.limits.before_search(me)
        found = await social.search_users(me, text, limit=query.limit + 1, offset=query.offset)
        page = found[: query.limit]
        blocked = await social.blocked_among(me, [c.id for c in page])
        return json_response(
            UserList(
                [UserCardOut.of(onboarding.card(c, me, blocked=c.id in blocked)) for c in page],
                has_more=len(found) > query.limit,
            )
        )
