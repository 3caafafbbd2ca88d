"""Files in AI projects, end to end: REST uploads, the socket's answers, the provider's request.

The provider is the local OpenAI-compatible server reached through the openai
SDK; what it received (``fake.requests``) shows which file chunks went into
the context, and in what order.
"""

from __future__ import annotations

from typing import Any

import httpx

from actors.ai_files import FILES_HEADER
from protocol.client import open_client
from protocol.harness.openai_local import FakeOpenAI
from realtime_server.node import Node
from tests.ai.conftest import AiNodeFactory
from tests.ai.file_samples import DOCX_TYPE, docx_bytes, new_preset, tiny_pdf, upload
from tests.ai.helpers import ask, new_conversation, read_answer
from tests.ai.test_ai_rest import parse_sse
from tests.e2e.helpers import Account, auth, register


def assert_error(r: httpx.Response, status: int, code: str, *words: str) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code, error
    for word in words:
        assert word in error["message"], error


def system_message(fake: FakeOpenAI) -> str:
    messages: list[dict[str, Any]] = fake.requests[-1]["messages"]
    assert messages[0]["role"] == "system", messages
    return str(messages[0]["content"])


async def file_names(http: httpx.AsyncClient, account: Account, preset: str) -> list[str]:
    r = await http.get(f"/ai/presets/{preset}/files", headers=auth(account))
    assert r.status_code == 200, r.text
    return [f["name"] for f in r.json()["files"]]


async def test_text_markdown_pdf_and_docx_are_uploaded_listed_read_and_removed(
    ai_node: Node, http: httpx.AsyncClient
):
    alice = await register(http, "alice")
    preset = await new_preset(http, alice)
    samples = [
        ("notes.txt", b"Plain notes about harbours.", "text/plain", "text/plain"),
        ("guide.md", b"# Guide\n\nMarkdown *about* ships.", "text/markdown", "text/markdown"),
        ("paper.pdf", tiny_pdf(["A PDF line about anchors."]), "application/pdf", None),
        ("memo.docx", docx_bytes(["A DOCX paragraph about sails."]), DOCX_TYPE, None),
    ]
    ids = []
    for name, data, declared, _ in samples:
        r = await upload(http, alice, preset, name, data, declared)
        assert r.status_code == 201, r.text
        got = r.json()["file"]
        assert got["name"] == name and got["size"] == len(data) and got["chunks"] == 1
        assert got["preset_id"] == preset
        ids.append(got["id"])
    r = await http.get(f"/ai/presets/{preset}/files", headers=auth(alice))
    listed = r.json()
    assert [(f["name"], f["content_type"]) for f in listed["files"]] == [
        ("notes.txt", "text/plain"),
        ("guide.md", "text/markdown"),
        ("paper.pdf", "application/pdf"),
        ("memo.docx", DOCX_TYPE),
    ]
    assert listed["limit"] == 20
    texts = []
    for file_id in ids:
        r = await http.get(f"/ai/presets/{preset}/files/{file_id}", headers=auth(alice))
        assert r.status_code == 200
        texts.append(r.json()["text"])
    assert texts == [
        "Plain notes about harbours.",
        "# Guide\n\nMarkdown *about* ships.",
        "A PDF line about anchors.",
        "A DOCX paragraph about sails.",
    ]

    r = await http.delete(f"/ai/presets/{preset}/files/{ids[2]}", headers=auth(alice))
    assert r.status_code == 204
    assert await file_names(http, alice, preset) == ["notes.txt", "guide.md", "memo.docx"]
    r = await http.get(f"/ai/presets/{preset}/files/{ids[2]}", headers=auth(alice))
    assert_error(r, 404, "not_found", "No such file")
    r = await http.delete(f"/ai/presets/{preset}/files/{ids[2]}", headers=auth(alice))
    assert_error(r, 404, "not_found")
    # Deleting the project deletes its files.
    assert (await http.delete(f"/ai/presets/{preset}", headers=auth(alice))).status_code == 204
    r = await http.get(f"/ai/presets/{preset}/files/{ids[0]}", headers=auth(alice))
    assert_error(r, 404, "not_found", "No such preset")


SPICES = "\n\n".join(
    [
        "Zanzibar cloves: Zanzibar grows the finest cloves, and Zanzibar cloves dry in the sun.",
        "Nutmeg comes from Grenada, an island in the Caribbean with volcanic soil.",
        "Cloves also grow in Madagascar, which now harvests more than anyone else.",
        "Cinnamon is the inner bark of a tree from Sri Lanka; it pairs well with cloves.",
    ]
)
WEATHER = "Tomorrow brings rain over the coast and a strong wind from the north."


async def test_the_chunks_most_relevant_to_the_question_come_first_within_the_budget(
    ai_node_factory: AiNodeFactory, fake: FakeOpenAI
):
    # Each paragraph is a chunk; the files' budget holds the header and two chunks
    # (three match the question).
    async with ai_node_factory(ai_file_chunk_tokens=30, ai_files_context_tokens=130) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            alice = await register(http, "alice")
            preset = await new_preset(http, alice, system_prompt="Answer briefly.")
            spices = (await upload(http, alice, preset, "spices.md", SPICES.encode())).json()
            weather = (await upload(http, alice, preset, "weather.txt", WEATHER.encode())).json()
            assert spices["file"]["chunks"] == 4 and weather["file"]["chunks"] == 1
            room = await new_conversation(http, alice, preset_id=preset)
            plain = await new_conversation(http, alice)
            async with open_client(node.ws_url, alice.access_token) as client:
                await ask(client, room, "Where do the finest cloves grow, in Zanzibar?")
                answer = await read_answer(client)

                system = system_message(fake)
                assert system.startswith(f"Answer briefly.\n\n{FILES_HEADER}\n\n")
                best = system.index("[file: spices.md, part 1]\nZanzibar cloves")
                second = system.index("[file: spices.md, part 3]\nCloves also grow")
                assert best < second
                assert "Nutmeg" not in system and "Cinnamon" not in system
                assert "weather.txt" not in system
                files = [{"id": spices["file"]["id"], "name": "spices.md"}]
                assert answer.start is not None and answer.end is not None
                assert [f.name for f in answer.start.d.files or []] == ["spices.md"]
                assert answer.end.d.files == answer.start.d.files

                # No word of the question is in the files: their opening chunks
                # are used, each file in turn, so the files are never ignored.
                await ask(client, room, "Summarise please")
                summary = await read_answer(client)
                system = system_message(fake)
                assert "[file: spices.md, part 1]" in system
                assert "[file: weather.txt, part 1]" in system
                assert [f.name for f in summary.end.d.files or []] == [  # type: ignore[union-attr]
                    "spices.md",
                    "weather.txt",
                ]

                # Search syntax in a question is only text.
                await ask(client, room, 'rain* OR "NEAR(wind)" -coast')
                await read_answer(client)
                assert "[file: weather.txt, part 1]" in system_message(fake)

                # A conversation outside the project gets no files.
                await ask(client, plain, "Where do cloves grow?")
                outside = await read_answer(client)
                assert FILES_HEADER not in str(fake.requests[-1]["messages"])
                assert outside.start is not None and outside.start.d.files is None

            # Over SSE the same frames carry the same files.
            r = await http.post(
                f"/ai/conversations/{room}/stream",
                json={"cid": "sse-1", "text": "Will there be rain and wind?"},
                headers=auth(alice),
            )
            events = dict(parse_sse(r.text))
            weather_ref = [{"id": weather["file"]["id"], "name": "weather.txt"}]
            assert events["ai.start"]["files"] == events["ai.done"]["files"] == weather_ref

            # The stored answer keeps its citation, also after the file is removed.
            r = await http.delete(
                f"/ai/presets/{preset}/files/{spices['file']['id']}", headers=auth(alice)
            )
            assert r.status_code == 204
            r = await http.get(f"/ai/conversations/{room}/messages", headers=auth(alice))
            assistant = [m for m in r.json()["messages"] if m["role"] == "assistant"]
            assert assistant[0]["files"] == files
            r = await http.get(
                f"/ai/conversations/{room}/export",
                params={"format": "markdown"},
                headers=auth(alice),
            )
            assert "Files: spices.md" in r.text


async def test_only_the_owner_sees_uses_or_removes_a_projects_files(
    ai_node: Node, http: httpx.AsyncClient, fake: FakeOpenAI
):
    alice = await register(http, "alice")
    bob = await register(http, "bob")
    preset = await new_preset(http, alice)
    r = await upload(http, alice, preset, "secret.txt", b"The vault code is 4711.")
    file_id = r.json()["file"]["id"]
    bobs_preset = await new_preset(http, bob)

    for method, path in [
        ("GET", f"/ai/presets/{preset}/files"),
        ("GET", f"/ai/presets/{preset}/files/{file_id}"),
        ("DELETE", f"/ai/presets/{preset}/files/{file_id}"),
    ]:
        r = await http.request(method, path, headers=auth(bob))
        assert_error(r, 404, "not_found", "No such preset")
    r = await upload(http, bob, preset, "mine.txt", b"Bob's text.")
    assert_error(r, 404, "not_found", "No such preset")
    # Alice's file id through Bob's own project: still not found.
    for method in ("GET", "DELETE"):
        r = await http.request(
            method, f"/ai/presets/{bobs_preset}/files/{file_id}", headers=auth(bob)
        )
        assert_error(r, 404, "not_found", "No such file")
    # Bob cannot start a conversation of Alice's project either.
    r = await http.post("/ai/conversations", json={"preset_id": preset}, headers=auth(bob))
    assert_error(r, 404, "not_found")
    # Without a token: 401.
    r = await http.get(f"/ai/presets/{preset}/files")
    assert r.status_code == 401
    # Unknown ids.
    r = await http.get("/ai/presets/p_nope/files", headers=auth(alice))
    assert_error(r, 404, "not_found", "No such preset")
    r = await http.get(f"/ai/presets/{preset}/files/af_nope", headers=auth(alice))
    assert_error(r, 404, "not_found", "No such file")

    # Bob's conversation in his own project never sees Alice's file.
    room = await new_conversation(http, bob, preset_id=bobs_preset)
    async with open_client(ai_node.ws_url, bob.access_token) as client:
        await ask(client, room, "What is the vault code?")
        answer = await read_answer(client)
    assert "4711" not in str(fake.requests[-1]["messages"])
    assert answer.start is not None and answer.start.d.files is None
    assert await file_names(http, alice, preset) == ["secret.txt"]


async def test_bad_uploads_are_refused_with_clear_errors_and_nothing_is_stored(
    ai_node_factory: AiNodeFactory,
):
    async with ai_node_factory(
        ai_file_max_bytes=4000, ai_files_per_preset=2, ai_file_max_chars=1000
    ) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            alice = await register(http, "alice")
            preset = await new_preset(http, alice)

            async def refused(status: int, code: str, *words: str, **file: Any) -> None:
                r = await upload(http, alice, preset, **file)
                assert_error(r, status, code, *words)

            await refused(413, "payload_too_large", "4000 bytes", name="big.txt", data=b"x" * 4001)
            # Far over the limit: the body is cut off before it is read whole.
            await refused(413, "payload_too_large", name="huge.txt", data=b"x" * 200_000)
            await refused(
                413, "payload_too_large", "1000 characters", name="long.md", data=b"y " * 1000
            )
            await refused(
                415,
                "media_type_mismatch",
                "not a PDF",
                name="fake.pdf",
                data=b"I am text, not a PDF.",
            )
            await refused(
                415, "media_type_mismatch", name="memo.docx", data=tiny_pdf(["pdf inside"])
            )
            await refused(
                415,
                "unsupported_media_type",
                "text (UTF-8), Markdown, PDF and DOCX",
                name="photo.png",
                data=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            )
            await refused(
                415,
                "media_type_mismatch",
                "sent as image/png",
                name="notes",
                data=b"text",
                content_type="image/png",
            )
            await refused(400, "invalid", "damaged", name="broken.pdf", data=b"%PDF-1.7\ngarbage")
            await refused(400, "invalid", "no text", name="blank.pdf", data=tiny_pdf([]))
            await refused(400, "invalid", "empty", name="empty.txt", data=b"")
            r = await http.post(
                f"/ai/presets/{preset}/files", json={"file": "x"}, headers=auth(alice)
            )
            assert_error(r, 400, "invalid", "multipart/form-data")
            r = await http.post(
                f"/ai/presets/{preset}/files",
                files={"other": ("a.txt", b"x", "text/plain")},
                headers=auth(alice),
            )
            assert_error(r, 400, "invalid", "'file'")
            assert await file_names(http, alice, preset) == []

            for name in ("one.txt", "two.txt"):
                assert (await upload(http, alice, preset, name, b"fine")).status_code == 201
            await refused(409, "too_many_files", "2 files", name="three.txt", data=b"fine")
            assert await file_names(http, alice, preset) == ["one.txt", "two.txt"]


async def test_the_file_routes_are_in_the_openapi_document(http: httpx.AsyncClient):
    paths = (await http.get("/openapi.json")).json()["paths"]
    upload_op = paths["/ai/presets/{preset_id}/files"]["post"]
    assert "multipart/form-data" in upload_op["requestBody"]["content"]
    assert {"201", "404", "409", "413", "415"} <= set(upload_op["responses"])
    assert set(paths["/ai/presets/{preset_id}/files/{file_id}"]) == {"get", "delete"}
