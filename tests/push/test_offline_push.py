"""New messages pushed to members with no online session, through a local FCM."""

from __future__ import annotations

import httpx
import trio

from protocol.client import open_client
from realtime_server.node import Node
from storage.push_tokens import push_token_store
from tests.e2e.helpers import Account, auth, create_group, register
from tests.push.apple import BUNDLE_ID, Apple
from tests.push.google import Google


def fcm_token(who: Account) -> str:
    return f"fcm:{who.username}:" + "x" * 32


async def with_token(api: httpx.AsyncClient, who: Account) -> None:
    body = {"token": fcm_token(who), "provider": "fcm", "app_id": "com.example.chat"}
    r = await api.put("/me/push-token", json=body, headers=auth(who))
    assert r.status_code == 204, r.text


async def test_offline_members_get_a_push_with_badge_unless_muted_and_preview_off_hides_text(
    push_node: Node, api: httpx.AsyncClient, google: Google
) -> None:
    ada, bob, cy, dee, eve = [await register(api, n) for n in ("ada", "bob", "cyd", "dee", "eve")]
    room = await create_group(api, ada, bob, cy, dee, eve, name="climbers")
    for who in (bob, cy, dee, eve):
        await with_token(api, who)
    r = await api.patch(f"/rooms/{room}/settings", json={"mute": "8h"}, headers=auth(dee))
    assert r.status_code == 200, r.text
    r = await api.put("/me/push-settings", json={"show_preview": False}, headers=auth(eve))
    assert r.status_code == 200
    async with (
        open_client(push_node.ws_url, ada.access_token) as ada_ws,
        open_client(push_node.ws_url, cy.access_token),  # cy is online: no push
    ):
        await ada_ws.send_message(room, "top rope at 6?")
        first = sorted([await google.next_message(), await google.next_message()], key=str)
        await ada_ws.send_message(room, "bring chalk")
        second = sorted([await google.next_message(), await google.next_message()], key=str)

    by_token = {m["token"]: m for m in first}
    assert set(by_token) == {fcm_token(bob), fcm_token(eve)}  # not the sender, cy or dee
    assert by_token[fcm_token(bob)]["notification"] == {
        "title": "ada in climbers",
        "body": "top rope at 6?",
    }
    assert by_token[fcm_token(eve)]["notification"] == {
        "title": "ada in climbers",
        "body": "New message",
    }
    assert by_token[fcm_token(bob)]["data"] == {"kind": "message", "room": room, "seq": "1"}
    assert by_token[fcm_token(bob)]["android"]["collapse_key"] == room
    badges = {m["token"]: m["android"]["notification"]["notification_count"] for m in second}
    assert badges == {fcm_token(bob): 2, fcm_token(eve): 2}  # the unread count
    assert google.attempts == 4 and google.exchanges == 1


async def test_a_stalled_provider_never_delays_an_ack(
    push_node: Node, api: httpx.AsyncClient, google: Google
) -> None:
    ada, bob = await register(api, "ada"), await register(api, "bob")
    room = await create_group(api, ada, bob)
    await with_token(api, bob)
    google.hold = trio.Event()
    async with open_client(push_node.ws_url, ada.access_token) as ada_ws:
        with trio.fail_after(2):
            for i in range(5):
                await ada_ws.send_message(room, f"m{i}")
        google.hold.set()
        texts = [(await google.next_message())["notification"]["body"] for _ in range(5)]
    assert sorted(texts) == [f"m{i}" for i in range(5)]  # each its own task: any order


async def test_dead_tokens_are_removed_and_unavailable_is_retried(
    push_node: Node, api: httpx.AsyncClient, google: Google
) -> None:
    ada, bob, cy = [await register(api, n) for n in ("ada", "bob", "cyd")]
    room = await create_group(api, ada, bob, cy)
    await with_token(api, bob)
    await with_token(api, cy)
    google.dead.add(fcm_token(bob))
    google.unavailable = 2  # the first two sends answer 503
    push = push_token_store(push_node.store)
    async with open_client(push_node.ws_url, ada.access_token) as ada_ws:
        await ada_ws.send_message(room, "anyone?")
        pushed = await google.next_message()
    assert pushed["token"] == fcm_token(cy)
    with trio.fail_after(5):
        # Removed by the node's push task after FCM's 404: no event to wait on here.
        while await push.tokens_of(bob.id):  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert [t.token for t in await push.tokens_of(cy.id)] == [fcm_token(cy)]
    assert google.attempts >= 4  # two refused with 503, bob's 404, cy's success


async def test_an_iphone_gets_its_push_from_apns_and_a_gone_one_loses_its_token(
    push_node: Node, api: httpx.AsyncClient, apple: Apple
) -> None:
    ada, bob, cyd = [await register(api, n) for n in ("ada", "bob", "cyd")]
    room = await create_group(api, ada, bob, cyd, name="climbers")
    tokens = {bob.id: "b0" * 32, cyd.id: "c0" * 32}
    for who in (bob, cyd):
        body = {"token": tokens[who.id], "provider": "apns", "app_id": BUNDLE_ID}
        assert (await api.put("/me/push-token", json=body, headers=auth(who))).status_code == 204
    apple.gone.add(tokens[cyd.id])
    async with open_client(push_node.ws_url, ada.access_token) as ada_ws:
        await ada_ws.send_message(room, "crux beta?")
        pushed = await apple.next_push()
    assert pushed.token == tokens[bob.id]
    assert pushed.headers["apns-push-type"] == "alert"
    assert pushed.headers["apns-collapse-id"] == room
    assert pushed.payload["aps"]["alert"] == {"title": "ada in climbers", "body": "crux beta?"}
    assert pushed.payload["aps"]["badge"] == 1
    push = push_token_store(push_node.store)
    with trio.fail_after(5):
        while await push.tokens_of(cyd.id):  # noqa: ASYNC110  (removed by the node's task)
            await trio.sleep(0.01)
