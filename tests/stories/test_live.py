"""Live story frames over real sockets: a new story to its audience, a view and
a reaction to the author, a deletion to the audience; reactions and replies."""

from __future__ import annotations

import httpx

from protocol.client import open_client
from protocol.frames import MsgNew
from protocol.frames_notify import NotifyNew
from protocol.frames_stories import StoryGone, StoryNew, StoryReacted, StoryViewed
from realtime_server.node import Node
from tests.e2e.helpers import auth
from tests.notifications.helpers import next_of, no_push_of
from tests.stories.helpers import add_contacts, people, post_story


async def test_a_new_story_reaches_the_audiences_devices_and_nobody_elses(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob, cem = await people(http, 3)
    await add_contacts(http, ada, bob, cem)
    async with (
        open_client(node.ws_url, bob.access_token, device="phone") as phone,
        open_client(node.ws_url, bob.access_token, device="laptop") as laptop,
        open_client(node.ws_url, cem.access_token) as left_out,
    ):
        story = await post_story(http, ada, privacy="except", users=[cem.id], text="hi all")
        for device in (phone, laptop):
            new = (await next_of(device, StoryNew)).d
            assert (new.id, new.author, new.text, new.bg) == (
                story["id"],
                ada.id,
                "hi all",
                "#1e88e5",
            )
        await no_push_of(left_out, StoryNew, wait=0.2)
        r = await http.delete(f"/stories/{story['id']}", headers=auth(ada))
        assert r.status_code == 204
        assert (await next_of(phone, StoryGone)).d == story["id"]


async def test_a_view_and_a_reaction_reach_the_author_and_show_in_the_viewers(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob = await people(http, 2)
    await add_contacts(http, ada, bob)
    story = await post_story(http, ada)
    async with open_client(node.ws_url, ada.access_token) as author:
        await http.post(f"/stories/{story['id']}/view", headers=auth(bob))
        viewed = (await next_of(author, StoryViewed)).d
        assert (viewed.story, viewed.viewer) == (story["id"], bob.id)
        await http.post(f"/stories/{story['id']}/view", headers=auth(bob))
        await no_push_of(author, StoryViewed, wait=0.2)  # a second view is not news
        r = await http.post(
            f"/stories/{story['id']}/reaction", json={"emoji": "🔥"}, headers=auth(bob)
        )
        assert (r.status_code, r.json()["story"]["reaction"]) == (200, "🔥")
        reacted = (await next_of(author, StoryReacted)).d
        assert (reacted.story, reacted.viewer, reacted.emoji) == (story["id"], bob.id, "🔥")
    r = await http.post(f"/stories/{story['id']}/reaction", json={"emoji": "😂"}, headers=auth(bob))
    r = await http.get(f"/stories/{story['id']}/viewers", headers=auth(ada))
    body = r.json()
    assert [(v["user"], v["reaction"]) for v in body["viewers"]] == [(bob.id, "😂")]
    assert body["reactions"] == {"😂": 1}


async def test_a_reply_is_a_message_in_the_direct_room_quoting_the_story(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob = await people(http, 2)
    await add_contacts(http, ada, bob)
    story = await post_story(http, ada, text="Off to the mountains")
    async with open_client(node.ws_url, ada.access_token) as author:
        r = await http.post(
            f"/stories/{story['id']}/reply", json={"text": "Have fun!"}, headers=auth(bob)
        )
        assert r.status_code == 201, r.text
        message = r.json()["message"]
        assert (message["sender"], message["text"]) == (bob.id, "Have fun!")
        assert message["story"] == {
            "id": story["id"],
            "author": ada.id,
            "kind": "text",
            "text": "Off to the mountains",
        }
        live = (await next_of(author, MsgNew)).d
        assert live.story is not None
        assert (live.room, live.seq, live.story.id) == (message["room"], 1, story["id"])
        note = (await next_of(author, NotifyNew)).d
        assert (note.kind, note.ref.room, note.ref.user) == ("story.reply", message["room"], bob.id)
    r = await http.post("/rooms", json={"kind": "direct", "user_id": ada.id}, headers=auth(bob))
    assert r.json()["room"]["id"] == message["room"]  # the one direct room of the two
