"""Image and video stories: uploaded through the media path, readable by the
audience, and their blobs deleted when the story expires or is deleted."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import trio
from PIL import Image

from protocol.client import open_client
from protocol.frames import Ok, Send, SendData
from realtime_server.base.clock import ManualClock
from realtime_server.node import Node
from tests.e2e.helpers import Account, auth
from tests.stories.helpers import (
    DAY_MS,
    add_contacts,
    direct_room,
    error,
    people,
    post_story,
)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (30, 120, 200)).save(out, "PNG")
    return out.getvalue()


def stored_blobs(node: Node) -> set[str]:
    root = Path(node.settings.data_dir) / "media"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


async def upload(http: httpx.AsyncClient, who: Account, data: bytes) -> str:
    r = await http.post("/media", files={"file": ("photo.png", data)}, headers=auth(who))
    assert r.status_code == 201, r.text
    media_id: str = r.json()["media"]["id"]
    return media_id


async def until_gone(node: Node, media_id: str) -> None:
    """The sweeper runs in the node's background: wait until it deleted the blobs."""
    with trio.fail_after(5):
        while any(name.startswith(media_id) for name in stored_blobs(node)):  # noqa: ASYNC110 - files another task deletes
            await trio.sleep(0.01)


async def test_an_image_story_is_readable_by_its_audience_and_its_blobs_go_when_it_expires(
    node: Node, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    ada, bob, stranger = await people(http, 3)
    await add_contacts(http, ada, bob)
    data = png()
    media_id = await upload(http, ada, data)
    story = await post_story(http, ada, kind="image", media=media_id, text="sky", bg="", font="")
    assert (story["kind"], story["media"], story["text"]) == ("image", media_id, "sky")
    r = await http.get(f"/stories/{story['id']}/media", headers=auth(bob))
    assert (r.status_code, r.content, r.headers["content-type"]) == (200, data, "image/png")
    r = await http.get(f"/stories/{story['id']}/media", headers=auth(stranger))
    assert r.status_code == 404
    assert {media_id, f"{media_id}_t"} <= stored_blobs(node)

    clock.advance(DAY_MS)
    await until_gone(node, media_id)
    r = await http.get(f"/media/{media_id}/info", headers=auth(ada))
    assert r.status_code == 404  # the upload itself is gone


async def test_deleting_a_story_early_deletes_its_upload(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob = await people(http, 2)
    await add_contacts(http, ada, bob)
    alone = await upload(http, ada, png())
    story = await post_story(http, ada, kind="image", media=alone, bg="", font="")
    r = await http.delete(f"/stories/{story['id']}", headers=auth(ada))
    assert r.status_code == 204
    assert not any(name.startswith(alone) for name in stored_blobs(node))


async def test_an_upload_also_sent_in_a_chat_outlives_its_story(
    node: Node, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    ada, bob = await people(http, 2)
    await add_contacts(http, ada, bob)
    shared, alone = await upload(http, ada, png()), await upload(http, ada, png())
    for media_id in (shared, alone):
        await post_story(http, ada, kind="image", media=media_id, bg="", font="")
    room = await direct_room(http, ada, bob)
    async with open_client(node.ws_url, ada.access_token) as a:
        sent = await a.request(
            Send(id=0, d=SendData(room=room, cid="c1", kind="image", media=shared))
        )
        assert isinstance(sent, Ok), sent
    clock.advance(DAY_MS)
    await until_gone(node, alone)  # the sweep of both stories is over
    r = await http.get(f"/media/{shared}", headers=auth(bob))
    assert r.status_code == 200  # the chat still has it
    assert shared in stored_blobs(node)


async def test_an_upload_of_another_kind_or_someone_elses_is_refused(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob = await people(http, 2)
    image = await upload(http, ada, png())
    r = await http.post("/stories", json={"kind": "video", "media": image}, headers=auth(ada))
    assert error(r) == (400, "invalid", "media")
    r = await http.post("/stories", json={"kind": "image", "media": image}, headers=auth(bob))
    assert error(r) == (400, "invalid", "media")
