"""Item 4: change password, forgot password (email or SMS code), reset."""

from __future__ import annotations

import httpx

from protocol.client import open_client
from protocol.errors import CloseCode
from realtime_server.node import Node
from tests.onboarding.conftest import Api, Person, assert_error
from tests.onboarding.outside import Outside

FR = "+33612345678"
PASSWORD = "correct horse battery"


async def login(api: Api, login: str, password: str, device: str = "d") -> httpx.Response:
    return await api.http.post(
        "/auth/login", json={"login": login, "password": password, "device": device}
    )


async def as_person(response: httpx.Response, username: str) -> Person:
    assert response.status_code == 200, response.text
    body = response.json()
    return Person(
        body["user"]["id"], body["access_token"], body["refresh_token"], username=username
    )


async def test_changing_the_password_needs_the_current_one_and_signs_out_other_devices(
    onode: Node, api: Api
) -> None:
    laptop = await api.password_user("ada", device="laptop")
    phone = await as_person(await login(api, "ada", PASSWORD, "phone"), "ada")
    async with open_client(onode.ws_url, phone.access_token, device="phone") as phone_socket:
        r = await api.http.post(
            "/me/password", json={"new_password": "a new long secret"}, headers=laptop.headers
        )
        assert_error(r, 400, "invalid", "current_password")
        r = await api.http.post(
            "/me/password",
            json={"current_password": "wrong guess", "new_password": "a new long secret"},
            headers=laptop.headers,
        )
        assert_error(r, 403, "wrong_password", "current_password")
        r = await api.http.post(
            "/me/password",
            json={"current_password": PASSWORD, "new_password": "a new long secret"},
            headers=laptop.headers,
        )
        assert r.status_code == 204, r.text
        closed = await phone_socket.wait_closed()
        assert closed.code == CloseCode.SESSION_REVOKED
    # The other device is out: its refresh token and its access token both fail.
    r = await api.http.post("/auth/refresh", json={"refresh_token": phone.refresh_token})
    assert r.status_code == 401
    assert_error(await api.http.get("/me", headers=phone.headers), 401, "unauthorized")
    # This device stays in; the old password no longer works, the new one does.
    assert (await api.http.get("/me/profile", headers=laptop.headers)).status_code == 200
    r = await api.http.post("/auth/refresh", json={"refresh_token": laptop.refresh_token})
    assert r.status_code == 200
    assert_error(await login(api, "ada", PASSWORD), 401, "invalid_credentials")
    assert (await login(api, "ada", "a new long secret")).status_code == 200


async def test_a_phone_account_sets_its_first_password_without_a_current_one(api: Api) -> None:
    ada = await api.phone_user(FR, "ada")
    assert_error(await login(api, "ada", "anything at all"), 401, "invalid_credentials")
    r = await api.http.post(
        "/me/password", json={"new_password": "first password"}, headers=ada.headers
    )
    assert r.status_code == 204, r.text
    assert (await login(api, "ada", "first password")).status_code == 200
    me = await api.http.get("/me/profile", headers=ada.headers)
    assert me.json()["has_password"] is True


async def test_a_too_short_new_password_is_refused_and_nothing_changes(api: Api) -> None:
    ada = await api.password_user("ada")
    r = await api.http.post(
        "/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=ada.headers,
    )
    assert_error(r, 400, "invalid", "new_password")
    assert (await login(api, "ada", PASSWORD)).status_code == 200


async def test_forgot_password_by_email_sends_a_code_that_resets_and_signs_out_everywhere(
    onode: Node, api: Api, outside: Outside
) -> None:
    ada = await api.password_user("ada")
    async with open_client(onode.ws_url, ada.access_token) as socket:
        r = await api.http.post("/auth/password/forgot", json={"email": "Ada@Example.com"})
        assert r.status_code == 202, r.text
        [mail] = outside.mail
        assert (mail.to, mail.sender) == ("Ada@Example.com", "no-reply@chat.example")
        assert "reset" in mail.subject
        code = outside.last_code("Ada@Example.com")
        r = await api.http.post(
            "/auth/password/reset",
            json={"email": "ada@example.com", "code": code, "new_password": "brand new secret"},
        )
        assert r.status_code == 204, r.text
        assert (await socket.wait_closed()).code == CloseCode.SESSION_REVOKED
    assert_error(await api.http.get("/me", headers=ada.headers), 401, "unauthorized")
    assert (await login(api, "ada", "brand new secret")).status_code == 200
    # Answering a code sent to the email proves the email.
    fresh = await as_person(await login(api, "ada", "brand new secret"), "ada")
    me = await api.http.get("/me/profile", headers=fresh.headers)
    assert me.json()["email_verified"] is True


async def test_forgot_password_by_sms_resets_a_phone_account(api: Api, outside: Outside) -> None:
    await api.phone_user(FR, "ada")
    r = await api.http.post(
        "/auth/password/forgot", json={"phone": "06 12 34 56 78", "region": "FR"}
    )
    assert r.status_code == 202, r.text
    r = await api.http.post(
        "/auth/password/reset",
        json={"phone": FR, "code": outside.last_code(FR), "new_password": "phone person pw"},
    )
    assert r.status_code == 204, r.text
    assert (await login(api, "ada", "phone person pw")).status_code == 200


async def test_forgot_password_answers_alike_for_unknown_accounts_and_sends_nothing(
    api: Api, outside: Outside
) -> None:
    await api.password_user("ada")
    known = await api.http.post("/auth/password/forgot", json={"email": "ada@example.com"})
    unknown = await api.http.post("/auth/password/forgot", json={"email": "nobody@example.com"})
    unknown_phone = await api.http.post("/auth/password/forgot", json={"phone": FR})
    assert known.status_code == unknown.status_code == unknown_phone.status_code == 202
    assert known.json() == unknown.json() == unknown_phone.json()
    assert [m.to for m in outside.mail] == ["ada@example.com"]
    assert outside.sms == []
    r = await api.http.post(
        "/auth/password/reset",
        json={"email": "nobody@example.com", "code": "123456", "new_password": "whatever pw"},
    )
    assert_error(r, 400, "code_expired", "code")


async def test_a_wrong_reset_code_changes_nothing(api: Api, outside: Outside) -> None:
    ada = await api.password_user("ada")
    await api.http.post("/auth/password/forgot", json={"email": "ada@example.com"})
    right = outside.last_code("ada@example.com")
    wrong = "000000" if right != "000000" else "111111"
    r = await api.http.post(
        "/auth/password/reset",
        json={"email": "ada@example.com", "code": wrong, "new_password": "attacker pw!"},
    )
    assert_error(r, 400, "code_invalid", "code")
    assert (await login(api, "ada", PASSWORD)).status_code == 200
    assert (await api.http.get("/me", headers=ada.headers)).status_code == 200


async def test_a_reset_names_exactly_one_of_email_or_phone(api: Api) -> None:
    for body in ({}, {"email": "ada@example.com", "phone": FR}):
        r = await api.http.post("/auth/password/forgot", json=body)
        assert_error(r, 400, "invalid")
    r = await api.http.post("/auth/password/forgot", json={"phone": "12"})
    assert_error(r, 400, "invalid_phone", "phone")


async def test_a_failing_mail_provider_answers_502(api: Api, outside: Outside) -> None:
    await api.password_user("ada")
    outside.mail_failure = (500, {"errors": [{"message": "internal"}]})
    r = await api.http.post("/auth/password/forgot", json={"email": "ada@example.com"})
    assert_error(r, 502, "delivery_failed")
