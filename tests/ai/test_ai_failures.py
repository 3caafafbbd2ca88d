"""Bad input and failure: every case ends in a documented frame, nothing leaks."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import trio

from protocol.client import ServerError, open_client
from protocol.frames_ai import AiAsk, AiAskData, AiDone, AiError, AiStop, AiStopData
from protocol.harness.openai_local import DEFAULT_REPLY, FakeOpenAI
from realtime_server.node import Node
from tests.ai.conftest import AiNodeFactory, ai_service
from tests.ai.helpers import ask, new_conversation, read_answer
from tests.e2e.helpers import auth, register


async def ask_refused(client, room: str, text: str, model: str | None = None) -> ServerError:
    with pytest.raises(ServerError) as caught:
        await client.request(
            AiAsk(id=0, d=AiAskData(room=room, cid=uuid.uuid4().hex, text=text, model=model))
        )
    return caught.value


async def visible_texts(http: httpx.AsyncClient, account, room: str) -> list[str]:
    r = await http.get(f"/ai/conversations/{room}/messages", headers=auth(account))
    return [m["text"] for m in r.json()["messages"]]


async def usage(http: httpx.AsyncClient, account) -> dict:
    r = await http.get("/ai/usage", headers=auth(account))
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize(
    ("model", "code", "kept"),
    [
        ("fail-500", "ai_provider_error", ""),
        ("malformed", "ai_provider_error", "Hello "),
        ("truncated", "ai_provider_error", "Hello there! "),
        ("reset", "ai_provider_error", "Hello there! "),
    ],
)
async def test_a_failing_provider_ends_in_ai_error_and_keeps_only_what_arrived(
    ai_node: Node, http: httpx.AsyncClient, model: str, code: str, kept: str
):
    alice = await register(http, "alice")
    room = await new_conversation(http, alice, model=model)
    async with open_client(ai_node.ws_url, alice.access_token) as client:
        await ask(client, room, "Hi")
        answer = await read_answer(client)
    assert isinstance(answer.end, AiError), answer.end
    assert answer.end.d.code == code and answer.text == kept
    if kept:
        assert answer.end.d.msg is not None and answer.end.d.msg.text == kept
        assert await visible_texts(http, alice, room) == ["Hi", kept]
        assert (await usage(http, alice))["used"] == 1
    else:
        # Nothing arrived: nothing stored, and the AI message is given back.
        assert answer.end.d.msg is None
        assert await visible_texts(http, alice, room) == ["Hi"]
        assert (await usage(http, alice))["used"] == 0
    assert len(ai_service(ai_node).streams) == 0


async def test_an_unreachable_provider_ends_in_ai_error(
    ai_node_factory: AiNodeFactory, fake: FakeOpenAI
):
    with trio.socket.socket() as probe:  # a port nobody listens on
        await probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    down = json.dumps(
        {"down": {"base_url": f"http://127.0.0.1:{dead}/v1", "api_key": "k", "models": ["m"]}}
    )
    async with ai_node_factory(ai_providers=down, ai_default_model="m") as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http, "alice")
            room = await new_conversation(http, alice)
            async with open_client(node.ws_url, alice.access_token) as client:
                await ask(client, room, "anyone there?")
                answer = await read_answer(client)
    assert isinstance(answer.end, AiError) and answer.end.d.code == "ai_provider_error"
    assert "unreachable" in answer.end.d.text


@pytest.mark.parametrize("model", ["silent", "stall"])
async def test_a_slow_provider_times_out_and_its_request_is_closed(
    ai_node_factory: AiNodeFactory, fake: FakeOpenAI, model: str
):
    # The first-token deadline starts before the request is sent, so it also
    # covers connecting: 0.3 s let a loaded CI host time out before the fake
    # provider had even seen the request (stop 23's CI failed so). 1.5 s still
    # tests the timeout and leaves the connect room on two busy cores.
    async with ai_node_factory(ai_first_token_timeout=1.5, ai_idle_timeout=1.5) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http, "alice")
            room = await new_conversation(http, alice, model=model)
            async with open_client(node.ws_url, alice.access_token) as client:
                await ask(client, room, "hello?")
                answer = await read_answer(client)
            with trio.fail_after(5):
                await fake.disconnected[f"chatcmpl-{len(fake.requests)}"].wait()
            assert isinstance(answer.end, AiError)
            assert answer.end.d.code == "ai_provider_timeout"
            assert len(ai_service(node).streams) == 0


async def test_the_first_token_timeout_covers_a_provider_that_never_answers_at_all(
    ai_node_factory: AiNodeFactory, fake: FakeOpenAI
):
    """Issue 12: a provider that takes the request and sends not even headers fails
    after AI_FIRST_TOKEN_TIMEOUT, not AI_REQUEST_TIMEOUT; its request is closed and
    the AI message given back."""
    async with ai_node_factory(
        # 1.5 s, not less: the deadline covers connecting (see the test above).
        ai_first_token_timeout=1.5,
        ai_request_timeout=30.0,
        ai_max_retries=0,
    ) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http, "alice")
            room = await new_conversation(http, alice, model="mute")
            async with open_client(node.ws_url, alice.access_token) as client:
                asked = trio.current_time()
                await ask(client, room, "hello?")
                answer = await read_answer(client, timeout=10)
                took = trio.current_time() - asked
            with trio.fail_after(5):
                await fake.disconnected[f"chatcmpl-{len(fake.requests)}"].wait()
            assert isinstance(answer.end, AiError), answer.end
            assert answer.end.d.code == "ai_provider_timeout"
            assert "1.5s" in answer.end.d.text
            assert 1.5 <= took < 8, took
            assert (answer.text, answer.end.d.msg) == ("", None)
            assert (await usage(http, alice))["used"] == 0
            assert len(ai_service(node).streams) == 0


async def test_unknown_model_too_long_prompt_and_strangers_are_refused_before_anything(
    ai_node: Node, http: httpx.AsyncClient, fake: FakeOpenAI
):
    alice = await register(http, "alice")
    mallory = await register(http, "mallory")
    room = await new_conversation(http, alice)
    async with (
        open_client(ai_node.ws_url, alice.access_token) as client,
        open_client(ai_node.ws_url, mallory.access_token) as other,
    ):
        assert (await ask_refused(client, room, "hi", model="gpt-99")).code == "ai_unknown_model"
        too_long = "x" * (ai_node.settings.ai_max_prompt_chars + 1)
        assert (await ask_refused(client, room, too_long)).code == "message_too_long"
        assert (await ask_refused(client, room, "   ")).code == "invalid"
        assert (await ask_refused(other, room, "let me in")).code == "not_member"
    assert fake.requests == []
    assert await visible_texts(http, alice, room) == []
    assert (await usage(http, alice))["used"] == 0
    r = await http.post("/ai/conversations", json={"model": "gpt-99"}, headers=auth(alice))
    assert r.status_code == 400 and r.json()["error"]["code"] == "ai_unknown_model"


async def test_the_quota_refuses_before_the_provider_is_called_and_says_when_it_resets(
    ai_node_factory: AiNodeFactory, fake: FakeOpenAI
):
    async with ai_node_factory(plan_free_ai_monthly=2) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http, "alice")
            room = await new_conversation(http, alice)
            async with open_client(node.ws_url, alice.access_token) as client:
                for question in ("one", "two"):
                    await ask(client, room, question)
                    assert isinstance((await read_answer(client)).end, AiDone)
                refused = await ask_refused(client, room, "three")
            assert refused.code == "ai_quota_exceeded"
            assert "2 of 2 used" in refused.msg and "resets at" in refused.msg
            assert len(fake.requests) == 2
            assert await visible_texts(http, alice, room) == ["one", DEFAULT_REPLY] * 1 + [
                "two",
                DEFAULT_REPLY,
            ]
            r = await http.post(
                f"/ai/conversations/{room}/stream",
                json={"cid": "c3", "text": "three"},
                headers=auth(alice),
            )
            assert r.status_code == 429 and r.json()["error"]["code"] == "ai_quota_exceeded"
            assert (await usage(http, alice))["used"] == 2


async def test_concurrent_asks_at_the_limit_cannot_both_pass(
    ai_node_factory: AiNodeFactory, fake: FakeOpenAI
):
    async with ai_node_factory(plan_free_ai_monthly=1) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http, "alice")
            rooms = [await new_conversation(http, alice) for _ in range(2)]
            results: list[str] = []
            async with open_client(node.ws_url, alice.access_token) as client:

                async def one(room: str) -> None:
                    try:
                        await ask(client, room, "race")
                        results.append("ok")
                    except ServerError as exc:
                        results.append(exc.code)

                async with trio.open_nursery() as nursery:
                    for room in rooms:
                        nursery.start_soon(one, room)
                await read_answer(client)
    assert sorted(results) == ["ai_quota_exceeded", "ok"]
    assert len(fake.requests) == 1


async def test_one_answer_at_a_time_per_room_and_other_rooms_are_unaffected(
    ai_node: Node, http: httpx.AsyncClient, fake: FakeOpenAI
):
    alice = await register(http, "alice")
    stalled = await new_conversation(http, alice, model="stall")
    healthy = await new_conversation(http, alice)
    async with open_client(ai_node.ws_url, alice.access_token) as client:
        await ask(client, stalled, "wait")
        first = await read_answer(client, until_deltas=1)
        assert (await ask_refused(client, stalled, "again")).code == "ai_busy"
        await ask(client, healthy, "meanwhile")
        # The stalled room's frames never mix into the healthy answer.
        other = await read_answer(client)
        assert other.text == DEFAULT_REPLY and other.start is not None
        assert other.start.d.room == healthy
        assert all(d.d.room == healthy for d in other.deltas)
        await client.request(AiStop(id=0, d=AiStopData(gen=first.gen)))
        assert isinstance((await read_answer(client)).end, AiDone)
    with pytest.raises(ServerError) as caught:
        async with open_client(ai_node.ws_url, alice.access_token) as client:
            await client.request(AiStop(id=0, d=AiStopData(gen="g_nonexistent")))
    assert caught.value.code == "not_found"
    assert len(ai_service(ai_node).streams) == 0


async def test_a_nul_in_any_stored_ai_text_is_invalid_on_every_backend(
    ai_node: Node, http: httpx.AsyncClient
):
    """Issue 12: PostgreSQL cannot store NUL and answered 503; both backends say 400."""
    alice = await register(http, "alice")
    h = auth(alice)
    room = await new_conversation(http, alice, title="fine")
    bad = [
        ("POST", "/ai/conversations", {"title": "a\x00"}),
        ("POST", "/ai/conversations", {"system_prompt": "be\x00nice"}),
        ("PATCH", f"/ai/conversations/{room}", {"title": "\x00"}),
        ("POST", "/ai/folders", {"name": "f\x00"}),
        ("POST", "/ai/presets", {"name": "p", "model": "test-model", "system_prompt": "\x00"}),
    ]
    for method, path, body in bad:
        r = await http.request(method, path, json=body, headers=h)
        assert r.status_code == 400, (path, body, r.text)
        assert r.json()["error"]["code"] == "invalid", (path, body, r.text)
    r = await http.get(f"/ai/conversations/{room}", headers=h)
    assert r.json()["conversation"]["title"] == "fine"
