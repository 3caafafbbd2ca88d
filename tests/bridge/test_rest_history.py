"""History pages, read cursors and the room list's unread counts.

Messages are put in storage directly, as the WebSocket side would have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio

from protocol.frames import Message
from storage.base import StoredMessage, new_id, now_ms

if TYPE_CHECKING:
    from tests.bridge.rest_client import Account, Rest


async def post_messages(rest: Rest, room_id: str, sender: Account, count: int) -> None:
    last = await rest.store.last_seq(room_id)
    await rest.store.insert_messages(
        [
            StoredMessage(
                id=new_id("m_"),
                room_id=room_id,
                seq=seq,
                sender_id=sender.id,
                cid=f"c{seq}",
                text=f"message {seq}",
                created_at=now_ms(),
            )
            for seq in range(last + 1, last + count + 1)
        ]
    )


async def history(rest: Rest, account: Account, room_id: str, **query: Any) -> dict[str, Any]:
    response = await rest.http.get(
        f"/rooms/{room_id}/messages", params=query, headers=account.headers
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def seqs(page: dict[str, Any]) -> list[int]:
    return [m["seq"] for m in page["messages"]]


async def test_a_message_has_the_socket_field_names(rest: Rest) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        room_id = await rest.create_group(ada)
        await post_messages(rest, room_id, ada, 1)
        page = await history(rest, ada, room_id)
    (message,) = page["messages"]
    assert set(message) == set(Message.__struct_fields__)
    assert message["room"] == room_id
    assert message["sender"] == ada.id
    assert (message["seq"], message["cid"], message["text"], message["kind"]) == (
        1,
        "c1",
        "message 1",
        "text",
    )


@pytest.mark.parametrize(
    ("query", "expected", "has_more"),
    [
        ({}, list(range(1, 51)), False),  # the default page is the latest 50
        ({"limit": 3}, [48, 49, 50], True),
        ({"limit": 50}, list(range(1, 51)), False),
        ({"before": 8, "limit": 3}, [5, 6, 7], True),
        ({"before": 4, "limit": 3}, [1, 2, 3], False),
        ({"before": 3, "limit": 5}, [1, 2], False),
        ({"before": 1}, [], False),
        ({"after": 7, "limit": 2}, [8, 9], True),
        ({"after": 47, "limit": 3}, [48, 49, 50], False),
        ({"after": 48, "limit": 5}, [49, 50], False),
        ({"after": 50}, [], False),
        ({"after": 0, "limit": 1}, [1], True),
    ],
)
async def test_history_pages_come_in_ascending_seq(
    rest: Rest, query: dict[str, int], expected: list[int], has_more: bool
) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        room_id = await rest.create_group(ada)
        await post_messages(rest, room_id, ada, 50)
        page = await history(rest, ada, room_id, **query)
    assert seqs(page) == expected
    assert page["has_more"] is has_more


async def test_paging_back_with_before_walks_the_whole_room(rest: Rest) -> None:
    seen: list[int] = []
    with trio.fail_after(10):
        ada = await rest.register("ada")
        room_id = await rest.create_group(ada)
        await post_messages(rest, room_id, ada, 23)
        page = await history(rest, ada, room_id, limit=5)
        seen = seqs(page) + seen
        while page["has_more"]:
            page = await history(rest, ada, room_id, limit=5, before=seen[0])
            seen = seqs(page) + seen
    assert seen == list(range(1, 24))


async def test_an_empty_room_has_an_empty_history(rest: Rest) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        room_id = await rest.create_group(ada)
        page = await history(rest, ada, room_id)
    assert page == {"messages": [], "has_more": False}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"before": "-1"}, "before"),
        ({"before": ""}, "before"),
        ({"after": "1.5"}, "after"),
        ({"after": str(2**64)}, "after"),
        ({"before": "5", "after": "1"}, "after"),
    ],
)
async def test_history_queries_outside_the_rules_are_refused(
    rest: Rest, query: dict[str, str], field: str
) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        room_id = await rest.create_group(ada)
        response = await rest.http.get(
            f"/rooms/{room_id}/messages", params=query, headers=ada.headers
        )
    rest.assert_error(response, 400, "invalid", field=field)


async def test_message_text_is_returned_verbatim(rest: Rest) -> None:
    text = "'; DROP TABLE messages; -- \\x00 \U0001f600 <script>"
    with trio.fail_after(10):
        ada = await rest.register("ada")
        room_id = await rest.create_group(ada)
        await rest.store.insert_messages(
            [StoredMessage(new_id("m_"), room_id, 1, ada.id, "c1", text, now_ms())]
        )
        page = await history(rest, ada, room_id)
    assert page["messages"][0]["text"] == text


async def test_read_requests_outside_the_rules_are_refused(rest: Rest) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        room_id = await rest.create_group(ada)
        for body in ({"seq": -1}, {"seq": "3"}, {"seq": 1.5}, {}, {"seq": 2**63}):
            response = await rest.http.post(
                f"/rooms/{room_id}/read", json=body, headers=ada.headers
            )
            rest.assert_error(response, 400, "invalid", field="seq")


async def test_the_room_list_shows_last_message_and_unread_count(rest: Rest) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        bob = await rest.register("bob")
        room_id = await rest.create_group(ada, bob, name="Team")
        await post_messages(rest, room_id, ada, 7)
        # Moving the cursor over REST needs the room actor (tests/messaging/test_rest_read.py).
        await rest.store.set_read_seq(room_id, bob.id, 3)
        response = await rest.http.get("/rooms", headers=bob.headers)
    assert response.status_code == 200
    (entry,) = response.json()["rooms"]
    assert (entry["id"], entry["name"], entry["kind"]) == (room_id, "Team", "group")
    assert (entry["last_seq"], entry["read_seq"], entry["unread"]) == (7, 3, 4)
    assert entry["last_message"]["seq"] == 7
    assert entry["last_message"]["text"] == "message 7"
    assert {m["user_id"] for m in entry["members"]} == {ada.id, bob.id}


async def test_a_quiet_room_lists_no_last_message(rest: Rest) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        await rest.create_group(ada)
        response = await rest.http.get("/rooms", headers=ada.headers)
    (entry,) = response.json()["rooms"]
    assert entry["last_message"] is None
    assert (entry["last_seq"], entry["unread"]) == (0, 0)


async def test_the_room_list_pages_by_recent_activity(rest: Rest) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        rooms = [await rest.create_group(ada, name=f"g{i}") for i in range(3)]
        # Activity order: rooms[1] is the latest, then rooms[0]; rooms[2] is silent.
        await post_messages(rest, rooms[0], ada, 1)
        await trio.sleep(0.01)  # distinct created_at milliseconds
        await post_messages(rest, rooms[1], ada, 1)

        async def page(**query: int) -> list[str]:
            response = await rest.http.get("/rooms", params=query, headers=ada.headers)
            assert response.status_code == 200, response.text
            return [r["id"] for r in response.json()["rooms"]]

        everything = await page()
        assert everything[:2] == [rooms[1], rooms[0]]
        assert sorted(everything) == sorted(rooms)
        assert await page(limit=2) == everything[:2]
        assert await page(limit=2, offset=2) == everything[2:]
        bad = await rest.http.get("/rooms", params={"limit": 0}, headers=ada.headers)
        rest.assert_error(bad, 400, "invalid", field="limit")


async def test_rooms_of_others_are_not_listed(rest: Rest) -> None:
    with trio.fail_after(10):
        ada = await rest.register("ada")
        eve = await rest.register("eve")
        await rest.create_group(ada)
        response = await rest.http.get("/rooms", headers=eve.headers)
    assert response.json() == {"rooms": []}
