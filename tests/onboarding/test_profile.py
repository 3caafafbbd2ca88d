"""Item 5: display name, username, bio, avatar, privacy, and the public profile view."""

from __future__ import annotations

import io
import struct
import zlib

import httpx
import pytest
from PIL import Image

from realtime_server.node import Node
from tests.onboarding.conftest import Api, Person, Start, assert_error
from tests.onboarding.outside import Outside

FR, FR2 = "+33612345678", "+33612345600"


def image_bytes(fmt: str, size: tuple[int, int], mode: str = "RGB", **save: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (200, 30, 30, 128) if mode == "RGBA" else (200, 30, 30)).save(
        out, fmt, **save
    )
    return out.getvalue()


def jpeg_with_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Inc."  # Make
    exif[0x0112] = 6  # Orientation: rotate 90 degrees to show upright
    return image_bytes("JPEG", (1200, 800), exif=exif.tobytes())


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge image (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


async def put_avatar(api: Api, person: Person, data: bytes, ctype: str = "image/png"):
    return await api.http.put(
        "/me/avatar", content=data, headers={**person.headers, "Content-Type": ctype}
    )


async def profile_of(api: Api, viewer: Person, user: Person) -> dict[str, object]:
    r = await api.http.get(f"/users/{user.id}/profile", headers=viewer.headers)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


async def test_name_username_and_bio_change_together(api: Api) -> None:
    ada = await api.phone_user(FR, "ada")
    r = await api.http.patch(
        "/me/profile",
        json={"display_name": "Ada L.", "username": "Ada_Lovelace", "bio": "Analytical engines"},
        headers=ada.headers,
    )
    assert r.status_code == 200, r.text
    me = r.json()
    assert (me["display_name"], me["username"], me["bio"]) == (
        "Ada L.",
        "Ada_Lovelace",
        "Analytical engines",
    )
    assert (await api.http.get("/me/profile", headers=ada.headers)).json() == me


async def test_usernames_that_collide_by_case_are_refused_and_nothing_changes(api: Api) -> None:
    await api.password_user("grace")
    ada = await api.phone_user(FR, "ada")
    r = await api.http.patch(
        "/me/profile", json={"username": "GRACE", "bio": "new bio"}, headers=ada.headers
    )
    assert_error(r, 409, "conflict", "username")
    me = (await api.http.get("/me/profile", headers=ada.headers)).json()
    assert (me["username"], me["bio"]) == ("ada", "")  # the bio did not change either


@pytest.mark.parametrize(
    "name",
    [
        "аda",  # Cyrillic а
        "ａｄａ",  # full-width
        "ada\u200b",  # zero-width space
        "ad a",
        "ad@a",
        "ab",
        "a" * 33,
    ],
)
async def test_confusable_and_malformed_usernames_are_refused(api: Api, name: str) -> None:
    ada = await api.phone_user(FR, "ada")
    r = await api.http.patch("/me/profile", json={"username": name}, headers=ada.headers)
    error = assert_error(r, 400, "invalid", "username")
    if not name.isascii():
        assert "look" in error["message"]
    r = await api.http.post(
        "/me/complete-profile", json={"display_name": "X", "username": name}, headers=ada.headers
    )
    assert r.status_code in (400, 409)


async def test_complete_profile_refuses_taken_names_and_leaves_the_profile_incomplete(
    api: Api,
) -> None:
    grace = await api.password_user("grace")
    # Her address is proven: only a proven address is a claim (issue 12).
    assert (await api.http.post("/me/email/verify", headers=grace.headers)).status_code == 202
    code = api.world.last_code("grace@example.com")
    r = await api.http.post("/me/email/verify/confirm", json={"code": code}, headers=grace.headers)
    assert r.json()["email_verified"] is True
    person, _ = await api.phone_sign_in(FR)
    r = await api.http.post(
        "/me/complete-profile",
        json={"display_name": "G", "username": "Grace"},
        headers=person.headers,
    )
    assert_error(r, 409, "conflict", "username")
    r = await api.http.post(
        "/me/complete-profile",
        json={"display_name": "G", "username": "gracie", "email": "GRACE@example.com"},
        headers=person.headers,
    )
    assert_error(r, 409, "conflict", "email")
    me = (await api.http.get("/me/profile", headers=person.headers)).json()
    assert (me["profile_complete"], me["username"], me["email"]) == (False, None, None)
    r = await api.http.post(
        "/me/complete-profile",
        json={"display_name": "G", "username": "gracie"},
        headers=person.headers,
    )
    assert r.status_code == 200
    r = await api.http.post(
        "/me/complete-profile",
        json={"display_name": "G", "username": "gracie2"},
        headers=person.headers,
    )
    assert_error(r, 409, "conflict")


async def test_an_avatar_is_validated_resized_and_stripped(api: Api) -> None:
    ada = await api.phone_user(FR, "ada")
    r = await put_avatar(api, ada, jpeg_with_exif(), "application/octet-stream")
    assert r.status_code == 200, r.text
    url = r.json()["avatar_url"]
    assert url.startswith(f"/users/{ada.id}/avatar?v=")
    got = await api.http.get(url, headers=ada.headers)
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    stored = Image.open(io.BytesIO(got.content))
    assert stored.format == "JPEG" and stored.size == (512, 512)
    assert not stored.getexif()  # camera make and orientation are gone
    # Caching: the same ETag answers 304 without the bytes.
    again = await api.http.get(url, headers={**ada.headers, "If-None-Match": got.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""


async def test_a_transparent_png_and_a_small_image_are_accepted(api: Api) -> None:
    ada = await api.phone_user(FR, "ada")
    r = await put_avatar(api, ada, image_bytes("PNG", (100, 60), "RGBA"))
    assert r.status_code == 200, r.text
    got = await api.http.get(r.json()["avatar_url"], headers=ada.headers)
    assert Image.open(io.BytesIO(got.content)).size == (60, 60)  # square, never upscaled


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "image_invalid"),
        (b"just some text, not a picture", 415, "unsupported_media_type"),
        (b"%PDF-1.4\n1 0 obj\n", 415, "unsupported_media_type"),
        (image_bytes("PNG", (300, 300))[:200], 400, "image_invalid"),  # truncated
        (png_claiming(30_000, 30_000), 400, "image_invalid"),  # 900 megapixels claimed
        (image_bytes("BMP", (10, 10)), 415, "unsupported_media_type"),
    ],
    ids=["empty", "text", "pdf", "truncated", "bomb", "bmp"],
)
async def test_bad_avatars_are_refused_and_the_old_one_stays(
    api: Api, data: bytes, status: int, code: str
) -> None:
    ada = await api.phone_user(FR, "ada")
    first = (await put_avatar(api, ada, image_bytes("PNG", (64, 64)))).json()["avatar_url"]
    assert_error(await put_avatar(api, ada, data), status, code)
    me = (await api.http.get("/me/profile", headers=ada.headers)).json()
    assert me["avatar_url"] == first


async def test_an_oversized_avatar_is_refused_before_it_is_read(
    start: Start, outside: Outside
) -> None:
    async with start(avatar_max_bytes=50_000) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            api = Api(http, outside)
            ada = await api.phone_user(FR, "ada")
            big = image_bytes("BMP", (200, 200))  # ~120 KB
            assert_error(await put_avatar(api, ada, big), 413, "payload_too_large")
            small = image_bytes("PNG", (200, 200))
            assert (await put_avatar(api, ada, small)).status_code == 200


async def test_avatars_bigger_than_the_json_body_limit_are_accepted(
    start: Start, outside: Outside
) -> None:
    async with start(max_request_bytes=16_384) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
            api = Api(http, outside)
            ada = await api.phone_user(FR, "ada")
            photo = image_bytes("PNG", (400, 400), compress_level=0)
            assert len(photo) > 16_384
            assert (await put_avatar(api, ada, photo)).status_code == 200


async def test_photo_privacy_decides_who_sees_the_avatar(api: Api) -> None:
    ada = await api.phone_user(FR, "ada")
    bob = await api.phone_user(FR2, "bob")
    stranger = await api.password_user("stranger")
    url = (await put_avatar(api, ada, image_bytes("PNG", (64, 64)))).json()["avatar_url"]
    assert (await profile_of(api, stranger, ada))["avatar_url"] == url

    r = await api.http.put("/me/privacy", json={"profile_photo": "contacts"}, headers=ada.headers)
    assert r.status_code == 200 and r.json()["profile_photo"] == "contacts"
    await api.http.post("/contacts", json={"user_id": bob.id}, headers=ada.headers)
    assert (await profile_of(api, bob, ada))["avatar_url"] == url
    assert "avatar_url" not in await profile_of(api, stranger, ada)
    assert_error(await api.http.get(url, headers=stranger.headers), 404, "not_found")
    assert (await api.http.get(url, headers=bob.headers)).status_code == 200

    await api.http.put("/me/privacy", json={"profile_photo": "nobody"}, headers=ada.headers)
    assert "avatar_url" not in await profile_of(api, bob, ada)
    assert (await api.http.get(url, headers=ada.headers)).status_code == 200  # always yourself


async def test_privacy_settings_round_trip_and_last_seen_is_presence_s_setting(api: Api) -> None:
    ada = await api.phone_user(FR, "ada")
    r = await api.http.put(
        "/me/privacy",
        json={"last_seen": "nobody", "groups": "contacts"},
        headers=ada.headers,
    )
    assert r.json() == {"last_seen": "nobody", "profile_photo": "everyone", "groups": "contacts"}
    presence = await api.http.get("/me/presence", headers=ada.headers)
    assert presence.json()["visibility"] == "nobody"
    r = await api.http.put("/me/privacy", json={"groups": "anyone"}, headers=ada.headers)
    assert_error(r, 400, "invalid", "groups")


async def test_the_public_profile_shows_presence_only_as_allowed(onode: Node, api: Api) -> None:
    from protocol.client import open_client

    ada = await api.phone_user(FR, "ada")
    bob = await api.phone_user(FR2, "bob")
    await api.http.post("/contacts", json={"user_id": bob.id}, headers=ada.headers)
    await api.http.patch("/me/profile", json={"bio": "hello"}, headers=ada.headers)
    async with open_client(onode.ws_url, ada.access_token):
        seen = await profile_of(api, bob, ada)
        assert seen["online"] is True and seen["bio"] == "hello"
        await api.http.put("/me/privacy", json={"last_seen": "nobody"}, headers=ada.headers)
        hidden = await profile_of(api, bob, ada)
        assert "online" not in hidden and "last_seen" not in hidden


async def test_unknown_users_have_no_profile(api: Api) -> None:
    ada = await api.phone_user(FR, "ada")
    r = await api.http.get("/users/u_nobody/profile", headers=ada.headers)
    assert_error(r, 404, "not_found")
    assert_error(
        await api.http.get("/users/u_nobody/avatar", headers=ada.headers), 404, "not_found"
    )


async def test_who_can_add_me_to_groups_is_enforced_on_create_and_on_add(api: Api) -> None:
    ada = await api.phone_user(FR, "ada")
    bob = await api.phone_user(FR2, "bob")
    r = await api.http.put("/me/privacy", json={"groups": "contacts"}, headers=bob.headers)
    assert r.status_code == 200
    # Ada is not in Bob's contacts: she can neither create a group with him...
    r = await api.http.post(
        "/rooms", json={"kind": "group", "name": "g", "members": [bob.id]}, headers=ada.headers
    )
    assert_error(r, 403, "forbidden")
    assert (await api.http.get("/rooms", headers=bob.headers)).json()["rooms"] == []
    # ...nor add him to one she already has.
    r = await api.http.post(
        "/rooms", json={"kind": "group", "name": "g", "members": []}, headers=ada.headers
    )
    room = r.json()["room"]["id"]
    r = await api.http.post(
        f"/rooms/{room}/members", json={"user_ids": [bob.id]}, headers=ada.headers
    )
    assert_error(r, 403, "forbidden")
    # Once Bob has Ada as a contact, she may.
    await api.http.post("/contacts", json={"user_id": ada.id}, headers=bob.headers)
    r = await api.http.post(
        f"/rooms/{room}/members", json={"user_ids": [bob.id]}, headers=ada.headers
    )
    assert r.status_code == 200, r.text
