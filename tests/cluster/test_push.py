"""Pushes to phones across nodes (issue 13 with issue 15, part 3): "offline"
means offline on EVERY node. A callee whose app is connected to another node
than the caller's is rung over the socket there, never woken by a VoIP push.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from protocol import frames_calls as fc
from protocol.client import Client, open_client
from tests.calls.helpers import expect, start
from tests.cluster.conftest import LocalCluster
from tests.cluster.test_users import ask
from tests.e2e.helpers import Account, create_group, register
from tests.push.google import Google, open_google
from tests.push.test_offline_push import fcm_token, with_token


@pytest.fixture
async def google() -> AsyncIterator[Google]:
    async with open_google() as g:
        yield g


async def until_online(watcher: Client, who: Account) -> None:
    """The watcher's node sees ``who`` online (connected to another node)."""
    with trio.fail_after(5):
        while not (await ask(watcher, who))[who.id][0]:  # noqa: ASYNC110 - another node decides
            await trio.sleep(0.02)


async def test_a_callee_connected_to_another_node_gets_no_voip_push_an_offline_one_does(
    local_cluster: LocalCluster, google: Google, tmp_path: Path
) -> None:
    push = {
        "fcm_service_account": str(google.service_account(tmp_path / "firebase.json")),
        "fcm_url": google.url,
        "push_backoff": 0.01,
    }
    async with (
        local_cluster(2, **push) as (_, (a, b)),
        httpx.AsyncClient(base_url=a.http_url, timeout=10) as http,
    ):
        ada, bob, cy = [await register(http, n) for n in ("ada", "bob", "cyd")]
        room = await create_group(http, ada, bob, cy)
        await with_token(http, bob)
        await with_token(http, cy)
        async with (
            open_client(a.ws_url, ada.access_token) as caller,
            open_client(b.ws_url, bob.access_token) as callee,
        ):
            await until_online(caller, bob)
            call = await start(caller, room)
            await expect(callee, fc.CallRing)  # bob rings on his socket, on node B
            ring = await google.next_message()
            assert (ring["token"], ring["data"]["call"]) == (fcm_token(cy), call.id)
            # Only cy, who is connected nowhere, was woken by a push.
            await trio.sleep(0.5)
            assert [m["token"] for m in google.messages] == [fcm_token(cy)]
