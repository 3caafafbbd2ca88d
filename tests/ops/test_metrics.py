"""/metrics, scraped from a real node after real traffic over the socket and REST.

The registry is per process, so every check compares two scrapes around the
traffic it makes (other tests in the same process moved the counters too).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from actors.runtime import Actor, ActorRef
from protocol import frames
from protocol import frames_calls as fc
from protocol.client import ServerError, open_client
from protocol.errors import CloseCode
from protocol.harness.server import pg_execute
from realtime_server.node import Node
from tests.ai.helpers import ask, new_conversation, read_answer
from tests.calls.helpers import decline, direct_room, expect, expect_state, start
from tests.e2e.conftest import NodeFactory
from tests.e2e.helpers import auth, create_group, register
from tests.e2e.rawws import hello, open_raw

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: httpx.AsyncClient) -> Samples:
    r = await http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples) -> Callable[..., float]:
    def d(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    return d


async def wait_until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    with trio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - server-side fact, nothing to wait on
            await trio.sleep(0.01)


async def test_chat_traffic_shows_up_in_every_messaging_series(
    node: Node, http: httpx.AsyncClient
) -> None:
    alice, bob, carol = [await register(http) for _ in range(3)]
    room = await create_group(http, alice, bob, carol)
    before = await scrape(http)
    async with (
        open_client(node.ws_url, alice.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, carol.access_token) as c,
    ):
        for i in range(5):
            await a.send_message(room, f"hello {i}")  # returns on the ack
        for client in (b, c):
            got = 0
            while got < 5:
                if isinstance(await client.next_push(timeout=5), frames.MsgNew):
                    got += 1
        during = await scrape(http)
    await wait_until(lambda: node.gateway.connections == 0)
    after = await scrape(http)

    d = delta(before, during)
    assert d("realtime_connections_opened_total") == 3
    assert value(during, "realtime_connections") == 3
    assert value(during, "realtime_sessions") == 3
    assert d("realtime_frames_in_total", type="hello") == 3
    assert d("realtime_frames_in_total", type="msg.send") == 5
    assert d("realtime_frames_out_total", type="welcome") == 3
    assert d("realtime_acks_total") == 5
    assert d("realtime_frames_out_total", type="ok") == 5
    assert d("realtime_ack_latency_seconds_count") == 5
    assert d("realtime_ack_latency_seconds_sum") > 0
    # Bob and Carol each got five; Alice's own came back as acks instead.
    assert d("realtime_fanout_messages_total") == 5
    assert d("realtime_fanout_deliveries_total") == 10
    assert d("realtime_frames_out_total", type="msg.new") == 10
    assert 1 <= d("realtime_fanout_batches_total") <= 5
    assert d("realtime_writer_batch_rows_sum") == 5
    assert 1 <= d("realtime_writer_commit_seconds_count") <= 5
    assert value(during, "realtime_actors", kind="room") >= 1
    assert value(during, "realtime_actor_inbox_depth", kind="room") >= 0
    assert value(during, "realtime_writer_queued_jobs") == 0
    # REST: the registrations, by route template and status.
    assert value(during, "realtime_http_requests_total",
                 method="POST", route="/auth/register", status="201") >= 3  # fmt: skip
    assert value(during, "realtime_http_request_seconds_count", route="/auth/register") >= 3
    # Closing: three normal closes, nobody connected any more.
    closes = delta(during, after)
    assert closes("realtime_ws_closes_total", code=str(int(CloseCode.NORMAL))) == 3
    assert value(after, "realtime_connections") == 0
    assert value(after, "realtime_sessions") == 0


async def test_unknown_paths_share_one_route_label(http: httpx.AsyncClient) -> None:
    before = await scrape(http)
    for i in range(3):
        assert (await http.get(f"/no/such/path/{i}")).status_code == 404
    d = delta(before, await scrape(http))
    assert d("realtime_http_requests_total", method="GET", route="<unmatched>", status="404") == 3


async def test_a_slow_consumer_close_and_its_dropped_bytes_are_counted(
    node_factory: NodeFactory,
) -> None:
    async with node_factory(outbound_queue_bytes=64 * 1024) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice, bob = await register(http), await register(http)
            room = await create_group(http, alice, bob)
            before = await scrape(http)
            async with (
                open_raw(node.port, rcvbuf=4096) as stalled,
                open_client(node.ws_url, alice.access_token) as a,
            ):
                await stalled.send_frame(hello(bob.access_token))
                assert isinstance(await stalled.receive_frame(), frames.Welcome)
                sent = 0
                # Bob's socket stopped reading. Cut off = told to go: his close
                # frame may wait CLOSE_TIMEOUT for a reader (issue 12, item 22).
                while any(s.close_code is None for s in node.hub.sessions_of(bob.id)):
                    await a.send_message(room, "y" * 2000)
                    sent += 1
                    assert sent < 2000, "the stalled session was never cut off"
            d = delta(before, await scrape(http))
    assert d("realtime_slow_consumer_closes_total") == 1
    assert d("realtime_ws_closes_total", code=str(int(CloseCode.SLOW_CONSUMER))) == 1
    assert d("realtime_outbound_dropped_bytes_total") > 0


class _Fragile(Actor):
    """A test actor kind: crashes on "boom", answers anything else."""

    async def handle_call(self, msg: object) -> object:
        if msg == "boom":
            raise RuntimeError("boom (a test crash)")
        return msg


async def test_actor_crashes_and_restarts_are_counted_by_kind(
    node: Node, http: httpx.AsyncClient
) -> None:
    node.system.register("fragile", lambda key, ref: _Fragile(key, ref))
    ref: ActorRef = node.system.ref("fragile", "one")
    before = await scrape(http)
    assert await ref.ask("hi") == "hi"
    alive = await scrape(http)
    assert value(alive, "realtime_actors", kind="fragile") == 1
    try:
        await ref.ask("boom")
    except Exception:  # ActorCrashed: the asker hears of the crash
        pass
    assert await ref.ask("still there?") == "still there?"
    d = delta(before, await scrape(http))
    assert d("realtime_actor_crashes_total", kind="fragile") == 1
    assert d("realtime_actor_restarts_total", kind="fragile") == 1
    assert d("realtime_actors_started_total") >= 1


async def test_an_ai_generation_counts_once_with_its_deltas(node_factory: NodeFactory) -> None:
    async with node_factory(ai_offline_delay=0.001) as node:  # the built-in offline model
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            alice = await register(http)
            room = await new_conversation(http, alice)
            before = await scrape(http)
            async with open_client(node.ws_url, alice.access_token) as client:
                await ask(client, room, "count my deltas")
                answer = await read_answer(client)
            d = delta(before, await scrape(http))
    assert d("realtime_ai_generations_total", outcome="done") == 1
    assert d("realtime_ai_deltas_total") == len(answer.deltas) > 0
    assert d("realtime_frames_in_total", type="ai.ask") == 1


async def test_a_rest_storage_failure_is_counted(node: Node, http: httpx.AsyncClient) -> None:
    alice = await register(http)
    before = await scrape(http)
    await node.store.aclose()  # the database goes away under the node
    r = await http.get("/rooms", headers=auth(alice))
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
    d = delta(before, await scrape(http))
    assert d("realtime_storage_errors_total", where="rest") == 1


async def test_a_declined_call_counts_as_started_and_ended_declined(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob = await register(http), await register(http)
    room = await direct_room(http, ada, bob)
    before = await scrape(http)
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        call = await start(a, room)
        await expect_state(a, "started")
        await expect(b, fc.CallRing)
        await decline(b, call.id)
        await expect_state(a, "ended")
    d = delta(before, await scrape(http))
    assert d("realtime_calls_started_total") == 1
    assert d("realtime_calls_ended_total", outcome="declined") == 1


def _refuse_message_inserts(database_url: str) -> None:
    """Make the database itself fail every message insert (reads keep working)."""
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON messages"
                " BEGIN INSERT INTO no_such_table VALUES (1); END"
            )
        return
    pg_execute(
        database_url,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'disk says no'; END $$;"
        " CREATE TRIGGER refuse BEFORE INSERT ON messages"
        " FOR EACH ROW EXECUTE FUNCTION refuse();",
    )


async def test_a_message_batch_the_database_refuses_is_a_writer_storage_error(
    node: Node, http: httpx.AsyncClient
) -> None:
    alice, bob = await register(http), await register(http)
    room = await create_group(http, alice, bob)
    async with open_client(node.ws_url, alice.access_token) as a:
        await a.send_message(room, "stored")
        await trio.to_thread.run_sync(_refuse_message_inserts, node.settings.database_url)
        before = await scrape(http)
        with pytest.raises(ServerError) as refused:
            await a.send_message(room, "refused")
        assert refused.value.code == "unavailable"
        d = delta(before, await scrape(http))
    assert d("realtime_storage_errors_total", where="writer") == 1
    assert d("realtime_acks_total") == 0
