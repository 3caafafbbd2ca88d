"""Media uploads over real HTTP, on SQLite and PostgreSQL: type from content, limits, privacy."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import h11
import httpx
import pytest
import trio
from PIL import Image

from bridge.http.uploads import MULTIPART_OVERHEAD
from protocol.client import ServerError, open_client
from protocol.frames import MsgNew, Ok, Send, SendData
from realtime_server.node import Node
from storage.media import attach_media
from tests.conftest import NodeFactory
from tests.e2e.helpers import auth, create_group, register
from tests.rich.live import next_of

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def png(width: int = 640, height: int = 480) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def stored_blobs(node: Node) -> list[Path]:
    root = Path(node.settings.data_dir) / "media"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def upload(
    http: httpx.AsyncClient, account, data: bytes, name: str = "f", ctype: str | None = None
) -> httpx.Response:
    part = (name, data, ctype) if ctype else (name, data)
    return await http.post("/media", files={"file": part}, headers=auth(account))


async def test_an_image_gets_its_sniffed_type_dimensions_and_a_thumbnail(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada = await register(http)
    data = png(640, 480)
    r = await upload(http, ada, data, name="holiday.txt", ctype="application/octet-stream")
    assert r.status_code == 201, r.text
    media = r.json()["media"]
    assert media["content_type"] == "image/png"  # from the bytes, not the name
    assert (media["width"], media["height"], media["thumbnail"]) == (640, 480, True)
    assert media["size"] == len(data) and media["filename"] == "holiday.txt"

    got = await http.get(f"/media/{media['id']}", headers=auth(ada))
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"

    thumb = await http.get(f"/media/{media['id']}/thumbnail", headers=auth(ada))
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as img:
        assert img.format == "JPEG" and max(img.size) == 320 and img.size == (320, 240)


async def test_the_type_comes_from_the_content_not_the_file_name(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada = await register(http)
    r = await upload(http, ada, PDF, name="photo.png", ctype="application/octet-stream")
    assert r.status_code == 201, r.text
    media = r.json()["media"]
    assert media["content_type"] == "application/pdf"
    assert media["thumbnail"] is False and media["width"] is None
    got = await http.get(f"/media/{media['id']}", headers=auth(ada))
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"].startswith("attachment")
    assert (await http.get(f"/media/{media['id']}/thumbnail", headers=auth(ada))).status_code == 404


async def test_uploads_that_lie_about_their_type_are_refused_and_nothing_is_stored(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada = await register(http)
    cases = [
        # Not a type we accept at all, whatever it claims to be.
        (b"<script>alert(1)</script>", "evil.png", "image/png", "unsupported_media_type"),
        (b"MZ\x90\x00 a windows program", "cat.jpg", None, "unsupported_media_type"),
        # The bytes say PNG, the client says JPEG.
        (png(), "x.jpg", "image/jpeg", "media_type_mismatch"),
        # A PNG signature glued onto garbage is not an image.
        (b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50, "x.png", "image/png", "media_type_mismatch"),
    ]
    for data, name, ctype, code in cases:
        r = await upload(http, ada, data, name=name, ctype=ctype)
        assert r.status_code == 415, (name, r.text)
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["field"] == "file"
    assert stored_blobs(node) == []
    # The same user's next honest upload works.
    assert (await upload(http, ada, png(10, 10), ctype="image/png")).status_code == 201


async def test_oversize_uploads_are_refused_with_413_and_nothing_is_stored(
    node_factory: NodeFactory,
) -> None:
    async with node_factory(max_upload_bytes=2000) as node:

        def fresh() -> httpx.AsyncClient:
            # A refused body is left unread: that connection is not reused.
            return httpx.AsyncClient(base_url=node.http_url, timeout=10)

        async with fresh() as http:
            ada = await register(http)
        # Over the file limit, within the multipart allowance.
        async with fresh() as http:
            r = await upload(http, ada, PDF + b"x" * 3000)
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "payload_too_large"
        # Far over: refused by Content-Length before the body is read. (Raw
        # HTTP: the server answers while the client is still sending.)
        status = await raw_post(node, "/media", ada.access_token, b"x" * 200_000, MULTIPART)
        assert status == 413
        assert stored_blobs(node) == []
        # JSON routes keep their own (smaller) limit: uploads are no back door.
        big = b'{"display_name": "' + b"x" * node.settings.max_request_bytes + b'"}'
        status = await raw_post(node, "/me", ada.access_token, big, "application/json", "PATCH")
        assert status == 413
        async with fresh() as http:
            assert (await upload(http, ada, PDF)).status_code == 201


async def test_a_chunked_upload_is_cut_off_at_the_limit_without_reading_it_all(
    node_factory: NodeFactory,
) -> None:
    # Raw h11: a client streaming an endless body with no Content-Length is
    # answered 413 once it crosses the upload limit.
    async with node_factory(max_upload_bytes=4096) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            ada = await register(http)
        client = h11.Connection(h11.CLIENT)
        boundary = "b0undary"
        request = h11.Request(
            method="POST",
            target="/media",
            headers=[
                ("Host", node.settings.host),
                ("Transfer-Encoding", "chunked"),
                ("Authorization", f"Bearer {ada.access_token}"),
                ("Content-Type", f"multipart/form-data; boundary={boundary}"),
            ],
        )
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode() + PDF
        limit = 4096 + MULTIPART_OVERHEAD
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream(node.settings.host, node.port)
            async with stream:
                await stream.send_all(client.send(request) or b"")
                await stream.send_all(client.send(h11.Data(data=head)) or b"")
                # Just past the limit, then silence: no end of message is ever
                # sent, so an answer proves the server stopped at the limit.
                for _ in range(limit // 8192 + 2):
                    await stream.send_all(client.send(h11.Data(data=b"x" * 8192)) or b"")
                status = await read_status(client, stream)
        assert status == 413
        assert stored_blobs(node) == []


MULTIPART = "multipart/form-data; boundary=b0undary"


async def raw_post(
    node: Node, target: str, token: str, body: bytes, ctype: str, method: str = "POST"
) -> int:
    """Send with a Content-Length, as much as the server will still take; the status."""
    client = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method=method,
        target=target,
        headers=[
            ("Host", node.settings.host),
            ("Content-Length", str(len(body))),
            ("Authorization", f"Bearer {token}"),
            ("Content-Type", ctype),
        ],
    )
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(node.settings.host, node.port)
        async with stream:
            await stream.send_all(client.send(request) or b"")
            with contextlib.suppress(trio.BrokenResourceError):
                await stream.send_all(client.send(h11.Data(data=body)) or b"")
            return await read_status(client, stream)


async def read_status(client: h11.Connection, stream: trio.SocketStream) -> int:
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            client.receive_data(await stream.receive_some())
        elif isinstance(event, h11.Response):
            return int(event.status_code)


async def test_a_malformed_upload_request_gets_invalid(node: Node, http: httpx.AsyncClient) -> None:
    ada = await register(http)
    r = await http.post("/media", json={"file": "abc"}, headers=auth(ada))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid"
    r = await http.post("/media", files={"other": ("a", PDF)}, headers=auth(ada))
    assert r.status_code == 400 and r.json()["error"]["field"] == "file"
    r = await upload(http, ada, b"")
    assert r.status_code == 400
    r = await http.post("/media", files={"file": ("a", PDF)})
    assert r.status_code == 401


async def test_uploads_are_private_to_the_uploader_until_sent_in_a_room(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob, eve = await register(http), await register(http), await register(http)
    room = await create_group(http, ada, bob)
    eves_room = await create_group(http, eve, bob)
    media_id = (await upload(http, ada, png(20, 20), ctype="image/png")).json()["media"]["id"]
    paths = (f"/media/{media_id}", f"/media/{media_id}/thumbnail", f"/media/{media_id}/info")
    for who in (bob, eve):
        for path in paths:
            r = await http.get(path, headers=auth(who))
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
        open_client(node.ws_url, eve.access_token) as e,
    ):
        # Someone else's upload cannot be sent anywhere, even by guessing its id.
        with pytest.raises(ServerError) as err:
            await e.request(
                Send(id=0, d=SendData(room=eves_room, cid="c1", kind="image", media=media_id))
            )
        assert err.value.code == "not_found"
        sent = await a.request(
            Send(id=0, d=SendData(room=room, cid="c2", kind="image", media=media_id))
        )
        assert isinstance(sent, Ok) and sent.d is not None and sent.d.media == media_id
        assert (await next_of(b, MsgNew)).d.media == media_id
    # Sent in the room: its members may read it now...
    for path in paths:
        assert (await http.get(path, headers=auth(bob))).status_code == 200
    # ...and nobody else, whatever rooms they share with members.
    for path in paths:
        assert (await http.get(path, headers=auth(eve))).status_code == 404
    assert (await http.get("/media/f_nope", headers=auth(eve))).status_code == 404


async def test_attaching_an_upload_to_a_room_is_idempotent(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob = await register(http), await register(http)
    room = await create_group(http, ada, bob)
    media_id = (await upload(http, ada, PDF)).json()["media"]["id"]
    for _ in range(2):  # e.g. the same file sent twice
        await attach_media(node.store, media_id, room)
    assert (await http.get(f"/media/{media_id}", headers=auth(bob))).content == PDF


async def test_a_sideways_phone_photo_is_measured_and_thumbnailed_upright(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada = await register(http)
    img = Image.new("RGB", (400, 200), (0, 90, 200))
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees to display", as phones write it
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif.tobytes())
    media = (await upload(http, ada, out.getvalue(), ctype="image/jpeg")).json()["media"]
    assert (media["width"], media["height"]) == (200, 400)
    thumb = await http.get(f"/media/{media['id']}/thumbnail", headers=auth(ada))
    with Image.open(io.BytesIO(thumb.content)) as small:
        assert small.size == (160, 320)


# Real files' first bytes: sniffing reads the magic number, nothing else.
OGG = b"OggS\x00\x02" + b"\x00" * 40 + b"OpusHead"
WEBM = b"\x1aE\xdf\xa3\x9fB\x86\x81\x01" + b"\x00" * 40
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 40
M4A = b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00M4A mp42isom" + b"\x00" * 40


async def test_a_media_message_must_carry_an_upload_of_its_kind(
    node: Node, http: httpx.AsyncClient
) -> None:
    """Issue 12: a PNG is not a voice note or a video; a document may be anything."""
    ada, bob = await register(http), await register(http)
    room = await create_group(http, ada, bob)
    ids = {}
    for name, data in {"png": png(8, 8), "pdf": PDF, "ogg": OGG, "webm": WEBM, "mp4": MP4}.items():
        r = await upload(http, ada, data)
        assert r.status_code == 201, r.text
        ids[name] = r.json()["media"]["id"]
    ids["m4a"] = (await upload(http, ada, M4A)).json()["media"]["id"]
    refused = [
        ("audio", "png"),
        ("video", "png"),
        ("image", "pdf"),
        ("image", "mp4"),
        ("video", "ogg"),
        ("video", "m4a"),
        ("audio", "pdf"),
    ]
    accepted = [
        ("image", "png"),
        ("audio", "ogg"),
        ("audio", "m4a"),
        ("audio", "webm"),  # a browser's voice note is WebM/Opus
        ("video", "webm"),
        ("video", "mp4"),
        ("document", "png"),
        ("document", "pdf"),
    ]
    async with (
        open_client(node.ws_url, ada.access_token) as a,
        open_client(node.ws_url, bob.access_token) as b,
    ):
        for i, (kind, name) in enumerate(refused):
            with pytest.raises(ServerError) as err:
                await a.request(
                    Send(id=0, d=SendData(room=room, cid=f"r{i}", kind=kind, media=ids[name]))
                )
            assert err.value.code == "media_kind_mismatch", (kind, name)
            assert kind in err.value.msg
        for i, (kind, name) in enumerate(accepted):
            sent = await a.request(
                Send(id=0, d=SendData(room=room, cid=f"a{i}", kind=kind, media=ids[name]))
            )
            assert isinstance(sent, Ok) and sent.d is not None
            got = (await next_of(b, MsgNew)).d
            assert (got.kind, got.media) == (kind, ids[name])
    r = await http.get(f"/rooms/{room}/messages", headers=auth(bob))
    assert [(m["kind"], m["media"]) for m in r.json()["messages"]] == [
        (kind, ids[name]) for kind, name in accepted
    ]
