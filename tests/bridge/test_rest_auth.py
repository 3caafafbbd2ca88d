"""Sign-up, sign-in, refresh-token rotation with reuse detection, sign-out."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from bridge.accounts.tokens import hash_refresh_token
from storage.base import RefreshToken, now_ms
from storage.onboarding import onboarding_store

if TYPE_CHECKING:
    from tests.bridge.rest_client import Rest

PASSWORD = "correct horse battery"


async def test_register_answers_the_user_and_a_token_pair(rest: Rest) -> None:
    with trio.fail_after(10):
        response = await rest.http.post(
            "/auth/register",
            json={"email": "ada@example.com", "username": "ada", "password": PASSWORD},
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"user", "access_token", "refresh_token", "token_type", "expires_in"}
    user = body["user"]
    assert set(user) == {"id", "email", "username", "display_name", "created_at"}
    assert user["id"].startswith("u_")
    assert (user["email"], user["username"], user["display_name"]) == (
        "ada@example.com",
        "ada",
        "ada",  # display_name defaults to the username
    )
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == rest.services.settings.access_token_ttl
    claims = rest.services.tokens.verify_access(body["access_token"])
    assert claims.user_id == user["id"]


async def test_register_keeps_the_display_name_given(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("grace", display_name="Grace Hopper", device="laptop")
        me = await rest.http.get("/me", headers=account.headers)
    assert me.json()["display_name"] == "Grace Hopper"


async def test_the_password_is_stored_hashed(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada")
        stored = await rest.store.get_user(account.id)
    assert stored is not None
    assert PASSWORD not in stored.password_hash
    assert stored.password_hash.startswith("$argon2id$")


async def test_a_verified_email_is_a_conflict_whatever_its_case(rest: Rest) -> None:
    # An unverified one is no claim and is taken (tests/onboarding/test_email_claims.py).
    with trio.fail_after(10):
        ada = await rest.register("ada", email="ada@example.com")
        accounts = onboarding_store(rest.services.store)
        assert await accounts.mark_email_verified(ada.id, "ada@example.com", now_ms())
        response = await rest.http.post(
            "/auth/register",
            json={"email": "ADA@Example.com", "username": "other", "password": PASSWORD},
        )
    rest.assert_error(response, 409, "conflict", field="email")


async def test_a_taken_username_is_a_conflict_whatever_its_case(rest: Rest) -> None:
    with trio.fail_after(10):
        await rest.register("ada")
        response = await rest.http.post(
            "/auth/register",
            json={"email": "other@example.com", "username": "ADA", "password": PASSWORD},
        )
    rest.assert_error(response, 409, "conflict", field="username")


async def test_register_refuses_fields_outside_the_rules(rest: Rest) -> None:
    valid = {"email": "ada@example.com", "username": "ada", "password": PASSWORD}
    cases: list[tuple[dict[str, object], str]] = [
        ({"username": "ab"}, "username"),  # too short
        ({"username": "a" * 33}, "username"),  # too long
        ({"username": "ada lovelace"}, "username"),  # space is not in [A-Za-z0-9_.]
        ({"username": "ädä"}, "username"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 257}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"display_name": ""}, "display_name"),
        ({"display_name": "   "}, "display_name"),
        ({"display_name": "x" * 65}, "display_name"),
        ({"device": ""}, "device"),
        ({"username": 42}, "username"),
        ({"admin": True}, "admin"),  # unknown fields are refused, not ignored
    ]
    with trio.fail_after(10):
        for change, field in cases:
            response = await rest.http.post("/auth/register", json={**valid, **change})
            rest.assert_error(response, 400, "invalid", field=field)
        for missing in valid:
            body = {k: v for k, v in valid.items() if k != missing}
            response = await rest.http.post("/auth/register", json=body)
            rest.assert_error(response, 400, "invalid", field=missing)


async def test_login_by_username_or_email_in_any_case(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada", email="ada@example.com")
        for login in ("ada", "ADA", "ada@example.com", "Ada@Example.COM"):
            response = await rest.http.post(
                "/auth/login", json={"login": login, "password": PASSWORD}
            )
            assert response.status_code == 200, response.text
            assert response.json()["user"]["id"] == account.id
            assert response.json()["token_type"] == "Bearer"


async def test_wrong_password_and_unknown_user_get_the_same_answer(rest: Rest) -> None:
    with trio.fail_after(10):
        await rest.register("ada")
        wrong_password = await rest.http.post(
            "/auth/login", json={"login": "ada", "password": "not the password"}
        )
        unknown_user = await rest.http.post(
            "/auth/login", json={"login": "nobody", "password": PASSWORD}
        )
    first = rest.assert_error(wrong_password, 401, "invalid_credentials")
    second = rest.assert_error(unknown_user, 401, "invalid_credentials")
    assert first == second


async def test_each_login_is_its_own_session(rest: Rest) -> None:
    with trio.fail_after(10):
        await rest.register("ada")
        phone = await rest.http.post(
            "/auth/login", json={"login": "ada", "password": PASSWORD, "device": "phone"}
        )
        laptop = await rest.http.post(
            "/auth/login", json={"login": "ada", "password": PASSWORD, "device": "laptop"}
        )
    tokens = rest.services.tokens
    phone_session = tokens.verify_access(phone.json()["access_token"]).session_id
    laptop_session = tokens.verify_access(laptop.json()["access_token"]).session_id
    assert phone_session != laptop_session


async def test_refresh_rotates_the_pair_within_the_session(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada")
        response = await rest.http.post(
            "/auth/refresh", json={"refresh_token": account.refresh_token}
        )
        assert response.status_code == 200, response.text
        pair = response.json()
        assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
        assert pair["refresh_token"] != account.refresh_token
        me = await rest.http.get("/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 200
    tokens = rest.services.tokens
    before = tokens.verify_access(account.access_token)
    after = tokens.verify_access(pair["access_token"])
    assert after.session_id == before.session_id


async def test_reusing_a_refresh_token_signs_the_whole_session_out(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada")
        rotated = await rest.http.post(
            "/auth/refresh", json={"refresh_token": account.refresh_token}
        )
        successor = rotated.json()["refresh_token"]
        # The old token comes back: someone kept a copy.
        replay = await rest.http.post(
            "/auth/refresh", json={"refresh_token": account.refresh_token}
        )
        rest.assert_error(replay, 401, "token_reused")
        # The legitimate holder's newer token died with the family.
        after = await rest.http.post("/auth/refresh", json={"refresh_token": successor})
        rest.assert_error(after, 401, "token_reused")


async def test_reuse_in_one_session_leaves_other_sessions_alone(rest: Rest) -> None:
    with trio.fail_after(10):
        phone = await rest.register("ada", device="phone")
        laptop = await rest.http.post(
            "/auth/login", json={"login": "ada", "password": PASSWORD, "device": "laptop"}
        )
        await rest.http.post("/auth/refresh", json={"refresh_token": phone.refresh_token})
        await rest.http.post("/auth/refresh", json={"refresh_token": phone.refresh_token})
        response = await rest.http.post(
            "/auth/refresh", json={"refresh_token": laptop.json()["refresh_token"]}
        )
    assert response.status_code == 200, response.text


async def test_an_unknown_refresh_token_is_unauthorized(rest: Rest) -> None:
    with trio.fail_after(10):
        response = await rest.http.post("/auth/refresh", json={"refresh_token": "made-up"})
    rest.assert_error(response, 401, "unauthorized")


async def test_an_expired_refresh_token_is_token_expired(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada")
        now = now_ms()
        await rest.store.add_refresh_token(
            RefreshToken(
                token_hash=hash_refresh_token("an-old-token"),
                user_id=account.id,
                family_id="s_old",
                device="default",
                created_at=now - 10_000,
                expires_at=now - 1,
            )
        )
        response = await rest.http.post("/auth/refresh", json={"refresh_token": "an-old-token"})
    rest.assert_error(response, 401, "token_expired")


async def test_logout_revokes_the_session(rest: Rest) -> None:
    with trio.fail_after(10):
        account = await rest.register("ada")
        rotated = await rest.http.post(
            "/auth/refresh", json={"refresh_token": account.refresh_token}
        )
        current = rotated.json()["refresh_token"]
        response = await rest.http.post("/auth/logout", json={"refresh_token": current})
        assert response.status_code == 204
        assert response.content == b""
        after = await rest.http.post("/auth/refresh", json={"refresh_token": current})
    assert after.status_code == 401


async def test_logout_leaves_other_devices_signed_in(rest: Rest) -> None:
    with trio.fail_after(10):
        phone = await rest.register("ada", device="phone")
        laptop = await rest.http.post(
            "/auth/login", json={"login": "ada", "password": PASSWORD, "device": "laptop"}
        )
        await rest.http.post("/auth/logout", json={"refresh_token": phone.refresh_token})
        response = await rest.http.post(
            "/auth/refresh", json={"refresh_token": laptop.json()["refresh_token"]}
        )
    assert response.status_code == 200


async def test_logout_of_an_unknown_token_is_still_204(rest: Rest) -> None:
    with trio.fail_after(10):
        response = await rest.http.post("/auth/logout", json={"refresh_token": "whatever"})
    assert response.status_code == 204
