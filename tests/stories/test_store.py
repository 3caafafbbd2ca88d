"""The story store's own rules, on both backends: the audience fixed at
posting, expiry by ``now``, and what the sweeper may forget."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from storage.base import Store, User, new_id
from storage.contacts import contacts_store
from storage.media import MediaInfo, media_store
from storage.stories import Story, story_store
from tests.storage.conftest import make_user

__all__ = ["make_user"]

MakeUser = Callable[[str], Awaitable[User]]
T0 = 1_700_000_000_000
DAY = 86_400_000


def story(author: User, privacy: str = "contacts", media: str | None = None) -> Story:
    return Story(
        id=new_id("s_"),
        author_id=author.id,
        kind="text" if media is None else "image",
        text="hi",
        bg="",
        font="",
        media_id=media,
        privacy=privacy,
        created_at=T0,
        expires_at=T0 + DAY,
    )


async def test_the_audience_is_the_contacts_less_the_listed_and_the_blocked(
    store: Store, make_user: MakeUser
) -> None:
    ada, bob, cem, dan = [await make_user(n) for n in ("ada", "bob", "cem", "dan")]
    social = contacts_store(store)
    for other in (bob, cem, dan):
        await social.add_contact(ada.id, other.id, "", T0)
    await social.block(dan.id, ada.id, T0)
    stories = story_store(store)
    assert await stories.post(story(ada), []) == sorted([bob.id, cem.id])
    assert await stories.post(story(ada, "except"), [cem.id]) == [bob.id]
    assert await stories.post(story(ada, "only"), [dan.id, ada.id]) == []


async def test_a_story_is_visible_until_its_expiry_only(store: Store, make_user: MakeUser) -> None:
    ada, bob = await make_user("ada"), await make_user("bob")
    await contacts_store(store).add_contact(ada.id, bob.id, "", T0)
    stories = story_store(store)
    s = story(ada)
    await stories.post(s, [])
    assert [x.id for x in await stories.feed(bob.id, T0 + DAY - 1)] == [s.id]
    assert await stories.feed(bob.id, T0 + DAY) == []
    assert await stories.live(s.id, bob.id, T0 + DAY) is None


async def test_the_sweeper_forgets_expired_stories_but_not_highlighted_ones_or_shared_uploads(
    store: Store, make_user: MakeUser
) -> None:
    (ada,) = [await make_user("ada")]
    media, stories = media_store(store), story_store(store)
    uploads = []
    for _ in range(3):
        mid = new_id("f_")
        await media.add_media(MediaInfo(mid, ada.id, "image/png", 1, "p.png", mid, None, 1, 1, T0))
        uploads.append(mid)
    gone, kept, shared = (story(ada, media=m) for m in uploads)
    # the same upload in a second story, a day later
    again = replace(story(ada, media=uploads[2]), expires_at=T0 + 2 * DAY)
    for s in (gone, kept, shared, again):
        await stories.post(s, [])
    await stories.add_highlight(ada.id, "h_1", "Keep", [kept.id], T0)
    assert await stories.next_expiry() == T0 + DAY
    assert await stories.forget_expired(T0 + DAY) == [uploads[0]]
    assert await stories.own(kept.id, ada.id) is not None
    assert await stories.own(shared.id, ada.id) is None
    assert await media.get_media(uploads[2]) is not None  # still used by ``again``
    assert await stories.next_expiry() == T0 + 2 * DAY
