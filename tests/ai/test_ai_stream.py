"""AI answers streamed over real sockets, from the local OpenAI-compatible server."""

from __future__ import annotations

import httpx
import pytest
import trio

from protocol import frames
from protocol.client import ServerError, open_client
from protocol.frames_ai import AiAttach, AiAttachData, AiDone, AiStop, AiStopData
from protocol.harness.openai_local import DEFAULT_REPLY, FakeOpenAI
from realtime_server.node import Node
from tests.ai.conftest import ai_service
from tests.ai.helpers import Answer, ask, new_conversation, read_answer, stop
from tests.e2e.helpers import auth, create_group, login, register


async def test_a_streamed_answer_arrives_in_order_and_is_in_the_history(
    ai_node: Node, http: httpx.AsyncClient, fake: FakeOpenAI
):
    alice = await register(http, "alice")
    room = await new_conversation(http, alice, system_prompt="Be brief.")
    async with open_client(ai_node.ws_url, alice.access_token) as client:
        prompt = await ask(client, room, "What is trio?")
        assert (prompt.seq, prompt.sender, prompt.text) == (1, alice.id, "What is trio?")
        answer = await read_answer(client)

    assert answer.start is not None and answer.start.d.q == 1
    assert answer.indexes == list(range(len(answer.deltas))) and len(answer.deltas) > 5
    assert answer.text == DEFAULT_REPLY
    assert isinstance(answer.end, AiDone) and answer.end.d.status == "done"
    stored = answer.end.d.msg
    assert stored is not None and stored.text == DEFAULT_REPLY and stored.kind == "ai"
    assert stored.sender == "ai:test-model" and stored.seq == 2
    assert answer.end.d.usage.completion == len(answer.deltas)
    # The provider got the system prompt and the question, through the openai SDK.
    sent = fake.requests[-1]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is trio?"},
    ]

    r = await http.get(f"/ai/conversations/{room}/messages", headers=auth(alice))
    history = r.json()["messages"]
    assert [(m["role"], m["text"]) for m in history] == [
        ("user", "What is trio?"),
        ("assistant", DEFAULT_REPLY),
    ]
    assert history[1]["status"] == "done" and history[1]["completion_tokens"] > 0
    r = await http.get(f"/rooms/{room}/messages", headers=auth(alice))
    assert [m["seq"] for m in r.json()["messages"]] == [1, 2]
    # The first exchange named the conversation.
    r = await http.get(f"/ai/conversations/{room}", headers=auth(alice))
    assert r.json()["conversation"]["title"] == "What is trio?"
    assert len(ai_service(ai_node).streams) == 0


async def test_a_second_device_reattaches_and_gets_the_rest_without_gaps_or_duplicates(
    ai_node: Node, http: httpx.AsyncClient, fake: FakeOpenAI
):
    fake.delay = 0.03
    alice = await register(http, "alice", device="phone")
    laptop = await login(http, alice, device="laptop")
    room = await new_conversation(http, alice)
    async with open_client(ai_node.ws_url, alice.access_token) as phone:
        await ask(phone, room, "Tell me a story")
        seen = await read_answer(phone, until_deltas=3)
    # The phone is gone mid-answer; the generation goes on.
    assert seen.end is None
    async with open_client(ai_node.ws_url, laptop) as second:
        reply = await second.request(
            AiAttach(id=0, d=AiAttachData(room=room, from_=len(seen.deltas)))
        )
        assert isinstance(reply, frames.Ok)
        rest = await read_answer(second, Answer())
    indexes = seen.indexes + rest.indexes
    assert indexes == list(range(len(indexes)))
    assert seen.text + rest.text == DEFAULT_REPLY
    assert rest.start is not None and rest.start.d.gen == seen.gen
    assert isinstance(rest.end, AiDone) and rest.end.d.msg is not None
    assert rest.end.d.msg.text == DEFAULT_REPLY


async def test_stop_closes_the_upstream_request_and_keeps_the_partial_answer(
    ai_node: Node, http: httpx.AsyncClient, fake: FakeOpenAI
):
    alice = await register(http, "alice")
    room = await new_conversation(http, alice, model="stall")
    async with open_client(ai_node.ws_url, alice.access_token) as client:
        await ask(client, room, "Go on forever")
        answer = await read_answer(client, until_deltas=1)
        await stop(client, answer.gen)
        with trio.fail_after(5):
            await fake.disconnected[f"chatcmpl-{len(fake.requests)}"].wait()
        await read_answer(client, answer)
        # A second stop of the same generation is harmless.
        await stop(client, answer.gen)
    assert isinstance(answer.end, AiDone) and answer.end.d.status == "stopped"
    assert answer.end.d.msg is not None and answer.end.d.msg.text == "Hello "
    r = await http.get(f"/ai/conversations/{room}/messages", headers=auth(alice))
    assert r.json()["messages"][-1]["status"] == "stopped"
    assert len(ai_service(ai_node).streams) == 0


async def test_the_offline_model_streams_word_by_word_without_any_key(
    node_factory, fake: FakeOpenAI
):
    async with node_factory(ai_offline_delay=0.001) as node:  # no AI_PROVIDERS at all
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            alice = await register(http, "alice")
            r = await http.get("/ai/models", headers=auth(alice))
            assert r.json() == {
                "models": [{"id": "offline", "provider": "offline", "offline": True}],
                "default": "offline",
            }
            room = await new_conversation(http, alice)
            async with open_client(node.ws_url, alice.access_token) as client:
                await ask(client, room, "hello there offline model")
                answer = await read_answer(client)
    assert isinstance(answer.end, AiDone) and len(answer.deltas) > 10
    assert answer.text.startswith("This answer comes from the built-in offline model")
    assert answer.end.d.msg is not None and answer.end.d.msg.sender == "ai:offline"
    assert fake.requests == []


async def test_an_ai_answer_in_a_group_room_reaches_every_member(
    ai_node: Node, http: httpx.AsyncClient
):
    alice = await register(http, "alice")
    bob = await register(http, "bob")
    room = await create_group(http, alice, bob)
    async with (
        open_client(ai_node.ws_url, alice.access_token) as a,
        open_client(ai_node.ws_url, bob.access_token) as b,
    ):
        await a.send_message(room, "hi bob")
        await ask(a, room, "@ai summarise please")
        seen_a, seen_b = await read_answer(a), await read_answer(b)
    assert seen_a.text == seen_b.text == DEFAULT_REPLY
    assert seen_a.indexes == seen_b.indexes
    assert isinstance(seen_b.end, AiDone) and seen_b.end.d.msg is not None
    # Both saw the stored answer as a normal message too.
    assert any(m.sender == "ai:test-model" for m in seen_b.messages)


async def test_a_member_removed_mid_answer_gets_nothing_more_of_it(
    ai_node: Node, http: httpx.AsyncClient, fake: FakeOpenAI
):
    """Access follows the room (issue 12): the fan-out is to members, not to
    whoever was one when the answer started; attach and stop check them too."""
    alice, bob, cy = [await register(http) for _ in range(3)]
    room = await create_group(http, alice, bob, cy)
    async with (
        open_client(ai_node.ws_url, alice.access_token) as a,
        open_client(ai_node.ws_url, bob.access_token) as b,
        open_client(ai_node.ws_url, cy.access_token) as c,
    ):
        await ask(a, room, "@ai go on forever", model="stall")
        seen = {k: await read_answer(k, until_deltas=1) for k in (a, b, c)}
        gen = seen[a].gen
        r = await http.delete(f"/rooms/{room}/members/{cy.id}", headers=auth(alice))
        assert r.status_code == 200, r.text
        for refused in (
            AiAttach(id=0, d=AiAttachData(room=room, gen=gen)),
            AiStop(id=0, d=AiStopData(gen=gen)),
        ):
            with pytest.raises(ServerError) as caught:
                await c.request(refused)
            assert caught.value.code in {"not_found", "not_member"}, caught.value
        await stop(a, gen)
        done_a, done_b = await read_answer(a, seen[a]), await read_answer(b, seen[b])
        assert isinstance(done_a.end, AiDone) and isinstance(done_b.end, AiDone)
        # cy saw her removal notice, and not a frame of the answer after it.
        with pytest.raises(trio.TooSlowError):
            await read_answer(c, seen[c], timeout=0.5)
        assert seen[c].end is None and len(seen[c].deltas) == 1
        assert all(m.sender != "ai:stall" for m in seen[c].messages)


async def test_the_asker_gets_its_prompt_in_the_ok_and_as_msg_new(
    ai_node: Node, http: httpx.AsyncClient
):
    """As docs/protocol.md says (issue 12): unlike msg.send, the asking session also
    gets a msg.new for its own prompt, which it dedupes by (room, seq)."""
    alice = await register(http)
    room = await new_conversation(http, alice)
    async with open_client(ai_node.ws_url, alice.access_token) as client:
        prompt = await ask(client, room, "Is the prompt echoed?")
        answer = await read_answer(client)
    pushed = [m for m in answer.messages if m.seq == prompt.seq]
    assert pushed == [prompt]
    assert isinstance(answer.end, AiDone) and answer.end.d.msg is not None
    assert [m.seq for m in answer.messages] == [prompt.seq, answer.end.d.msg.seq]
