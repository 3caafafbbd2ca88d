"""AI over REST: settings, presets, folders, favourites, export, models, SSE; regen and edit."""

from __future__ import annotations

import json

import httpx
import trio

from protocol.client import open_client
from protocol.frames_ai import AiDone, AiEdit, AiEditData, AiRegen, AiRegenData
from protocol.harness.openai_local import DEFAULT_REPLY, FakeOpenAI
from realtime_server.node import Node
from tests.ai.conftest import ai_service
from tests.ai.helpers import ask, new_conversation, read_answer
from tests.e2e.helpers import auth, register


async def test_conversations_are_organised_in_folders_with_favourites_renames_and_deletes(
    ai_node: Node, http: httpx.AsyncClient
):
    alice = await register(http, "alice")
    bob = await register(http, "bob")
    h = auth(alice)
    r = await http.post("/ai/folders", json={"name": "Work"}, headers=h)
    assert r.status_code == 201
    folder = r.json()["folder"]["id"]
    first = await new_conversation(http, alice, title="Plans", folder_id=folder)
    second = await new_conversation(http, alice, title="Jokes")

    r = await http.patch(
        f"/ai/conversations/{second}", json={"favourite": True, "title": "Good jokes"}, headers=h
    )
    assert r.status_code == 200
    assert r.json()["conversation"]["favourite"] is True
    assert r.json()["conversation"]["title"] == "Good jokes"

    r = await http.get("/ai/conversations", params={"folder": folder}, headers=h)
    assert [c["id"] for c in r.json()["conversations"]] == [first]
    r = await http.get("/ai/conversations", params={"favourite": "true"}, headers=h)
    assert [c["id"] for c in r.json()["conversations"]] == [second]
    r = await http.get("/ai/conversations", headers=h)
    assert {c["id"] for c in r.json()["conversations"]} == {first, second}

    # Someone else's ids are not found, whatever the route.
    for method, path in [
        ("GET", f"/ai/conversations/{first}"),
        ("DELETE", f"/ai/conversations/{first}"),
        ("GET", f"/ai/conversations/{first}/export"),
        ("DELETE", f"/ai/folders/{folder}"),
    ]:
        r = await http.request(method, path, headers=auth(bob))
        assert r.status_code == 404, (method, path)
    r = await http.patch(f"/ai/conversations/{second}", json={"folder_id": "nope"}, headers=h)
    assert r.status_code == 404

    r = await http.patch(f"/ai/folders/{folder}", json={"name": "Job"}, headers=h)
    assert r.json()["folder"]["name"] == "Job"
    r = await http.delete(f"/ai/folders/{folder}", headers=h)
    assert r.status_code == 204
    r = await http.get(f"/ai/conversations/{first}", headers=h)
    assert r.json()["conversation"]["folder_id"] is None

    r = await http.delete(f"/ai/conversations/{first}", headers=h)
    assert r.status_code == 204
    assert (await http.get(f"/ai/conversations/{first}", headers=h)).status_code == 404
    assert (await http.get(f"/rooms/{first}/messages", headers=h)).status_code == 404
    r = await http.patch(f"/ai/conversations/{second}", json={"bogus": 1}, headers=h)
    assert r.status_code == 400


async def test_a_preset_is_applied_and_its_settings_reach_the_provider(
    ai_node: Node, http: httpx.AsyncClient, fake: FakeOpenAI
):
    alice = await register(http, "alice")
    h = auth(alice)
    r = await http.post(
        "/ai/presets",
        json={
            "name": "Pirate",
            "model": "test-model",
            "system_prompt": "Talk like a pirate.",
            "temperature": 0.2,
            "max_tokens": 64,
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    preset = r.json()["preset"]["id"]
    room = await new_conversation(http, alice, preset_id=preset)
    r = await http.get(f"/ai/conversations/{room}", headers=h)
    conv = r.json()["conversation"]
    assert (conv["system_prompt"], conv["temperature"], conv["max_tokens"]) == (
        "Talk like a pirate.",
        0.2,
        64,
    )
    other = await new_conversation(http, alice)
    r = await http.patch(f"/ai/conversations/{other}", json={"preset_id": preset}, headers=h)
    assert r.json()["conversation"]["preset_id"] == preset
    async with open_client(ai_node.ws_url, alice.access_token) as client:
        await ask(client, other, "Ahoy?")
        await read_answer(client)
    sent = fake.requests[-1]
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 64
    assert sent["messages"][0] == {"role": "system", "content": "Talk like a pirate."}
    r = await http.get("/ai/presets", headers=h)
    assert [p["name"] for p in r.json()["presets"]] == ["Pirate"]
    assert (await http.delete(f"/ai/presets/{preset}", headers=h)).status_code == 204


async def test_models_list_what_the_plan_allows(ai_node_factory, fake: FakeOpenAI):
    async with ai_node_factory(plan_free_models="test-model") as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            alice = await register(http, "alice")
            r = await http.get("/ai/models", headers=auth(alice))
            assert r.json()["models"] == [
                {"id": "test-model", "provider": "local", "offline": False},
                {"id": "offline", "provider": "offline", "offline": True},
            ]
            r = await http.post("/ai/conversations", json={"model": "stall"}, headers=auth(alice))
            assert r.status_code == 403
            assert r.json()["error"]["code"] == "ai_model_not_allowed"


async def test_export_as_json_and_markdown(ai_node: Node, http: httpx.AsyncClient):
    alice = await register(http, "alice")
    room = await new_conversation(http, alice, title="Export me", system_prompt="Be kind.")
    async with open_client(ai_node.ws_url, alice.access_token) as client:
        await ask(client, room, "Hi model")
        await read_answer(client)
    r = await http.get(f"/ai/conversations/{room}/export", headers=auth(alice))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert "attachment" in r.headers["content-disposition"]
    body = r.json()
    assert body["conversation"]["title"] == "Export me"
    assert [(m["role"], m["text"]) for m in body["messages"]] == [
        ("user", "Hi model"),
        ("assistant", DEFAULT_REPLY),
    ]
    assert body["messages"][1]["model"] == "test-model"
    r = await http.get(
        f"/ai/conversations/{room}/export", params={"format": "markdown"}, headers=auth(alice)
    )
    assert r.headers["content-type"].startswith("text/markdown")
    assert r.text == (
        "# Export me\n\n- Model: `test-model`\n- System prompt: Be kind.\n\n"
        f"## You\n\nHi model\n\n## Assistant · test-model\n\n{DEFAULT_REPLY}\n"
    )
    r = await http.get(
        f"/ai/conversations/{room}/export", params={"format": "pdf"}, headers=auth(alice)
    )
    assert r.status_code == 400


def parse_sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_sse_streams_the_answer_with_the_same_persistence(
    ai_node: Node, http: httpx.AsyncClient
):
    alice = await register(http, "alice")
    room = await new_conversation(http, alice)
    async with http.stream(
        "POST",
        f"/ai/conversations/{room}/stream",
        json={"cid": "sse-1", "text": "Stream please"},
        headers=auth(alice),
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = (await r.aread()).decode()
    events = parse_sse(text)
    names = [e for e, _ in events]
    assert names[:2] == ["ai.ask", "ai.start"] and names[-1] == "ai.done"
    assert set(names[2:-1]) == {"ai.delta"}
    deltas = [d for e, d in events if e == "ai.delta"]
    assert [d["i"] for d in deltas] == list(range(len(deltas)))
    assert "".join(d["text"] for d in deltas) == DEFAULT_REPLY
    assert events[0][1]["text"] == "Stream please"
    done = events[-1][1]
    assert done["status"] == "done" and done["msg"]["text"] == DEFAULT_REPLY
    r = await http.get(f"/ai/conversations/{room}/messages", headers=auth(alice))
    assert [m["text"] for m in r.json()["messages"]] == ["Stream please", DEFAULT_REPLY]
    # Resending the same cid returns the stored prompt and starts nothing.
    r = await http.post(
        f"/ai/conversations/{room}/stream",
        json={"cid": "sse-1", "text": "Stream please"},
        headers=auth(alice),
    )
    assert [e for e, _ in parse_sse(r.text)] == ["ai.ask"]
    assert len(ai_service(ai_node).streams) == 0


async def test_regenerate_and_edit_replace_the_later_branch_in_the_visible_history(
    ai_node: Node, http: httpx.AsyncClient, fake: FakeOpenAI
):
    alice = await register(http, "alice")
    room = await new_conversation(http, alice)
    h = auth(alice)
    async with open_client(ai_node.ws_url, alice.access_token) as client:
        first = await ask(client, room, "First question")
        await read_answer(client)
        fake.reply = "A second try."
        await client.request(AiRegen(id=0, d=AiRegenData(room=room)))
        again = await read_answer(client)
        assert isinstance(again.end, AiDone) and again.text == "A second try."
        r = await http.get(f"/ai/conversations/{room}/messages", headers=h)
        assert [m["text"] for m in r.json()["messages"]] == ["First question", "A second try."]
        # The regenerated answer was asked with the same context, not the hidden answer.
        assert fake.requests[-1]["messages"] == [{"role": "user", "content": "First question"}]

        fake.reply = "Edited answer."
        reply = await client.request(
            AiEdit(id=0, d=AiEditData(room=room, seq=first.seq, cid="e1", text="Better question"))
        )
        edited = await read_answer(client)
        assert edited.text == "Edited answer."
    assert reply.d is not None and reply.d.text == "Better question"
    r = await http.get(f"/ai/conversations/{room}/messages", headers=h)
    assert [m["text"] for m in r.json()["messages"]] == ["Better question", "Edited answer."]
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "Better question"}]
    # The raw room history keeps everything, in seq order.
    r = await http.get(f"/rooms/{room}/messages", headers=h)
    assert len(r.json()["messages"]) == 5


async def test_usage_is_counted_per_day_and_month(ai_node: Node, http: httpx.AsyncClient):
    alice = await register(http, "alice")
    room = await new_conversation(http, alice)
    async with open_client(ai_node.ws_url, alice.access_token) as client:
        await ask(client, room, "count me")
        answer = await read_answer(client)
    assert isinstance(answer.end, AiDone)
    r = await http.get("/ai/usage", headers=auth(alice))
    body = r.json()
    assert body["used"] == 1 and body["limit"] == 100 and body["resets_at"] > 0
    assert body["day"]["messages"] == 1 and body["month"]["messages"] == 1
    tokens = answer.end.d.usage
    for period in ("day", "month"):
        assert body[period]["completion_tokens"] == tokens.completion
        assert body[period]["prompt_tokens"] == tokens.prompt


async def test_a_disconnected_sse_client_does_not_stop_the_answer(
    ai_node: Node, http: httpx.AsyncClient, fake: FakeOpenAI
):
    fake.delay = 0.02
    alice = await register(http, "alice")
    room = await new_conversation(http, alice)
    # A raw socket, so the test controls exactly when the client goes away.
    body = json.dumps({"cid": "sse-2", "text": "Go"}).encode()
    head = (
        f"POST /ai/conversations/{room}/stream HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {alice.access_token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    stream = await trio.open_tcp_stream("127.0.0.1", ai_node.port)
    await stream.send_all(head + body)
    seen = b""
    with trio.fail_after(5):
        while b"event: ai.delta" not in seen:
            seen += await stream.receive_some(65536)
    await stream.aclose()
    with trio.fail_after(5):
        while True:
            r = await http.get(f"/ai/conversations/{room}/messages", headers=auth(alice))
            if len(r.json()["messages"]) == 2:
                break
            await trio.sleep(0.05)
    assert r.json()["messages"][1]["text"] == DEFAULT_REPLY
