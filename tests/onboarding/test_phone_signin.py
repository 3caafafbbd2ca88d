"""Item 1: phone sign-in by SMS code, through the local Twilio server."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from protocol.client import open_client
from realtime_server.base.clock import ManualClock
from realtime_server.node import Node
from storage.base import Store
from tests.onboarding.conftest import Api, Start, assert_error
from tests.onboarding.outside import TWILIO_FROM, TWILIO_SID, Outside

FR = "+33612345678"


async def stored_code_rows(store: Store) -> list[tuple[str, str, str]]:
    """(purpose, target, code_hash) of every stored code, read straight from the table."""
    rows = await store.db.fetch("SELECT purpose, target, code_hash FROM otp_codes")
    return [tuple(r) for r in rows]


async def test_a_new_number_goes_from_code_request_to_an_authenticated_socket(
    onode: Node, api: Api, outside: Outside
) -> None:
    r = await api.ask_code("+33 6 12 34 56 78")
    assert r.status_code == 202, r.text
    assert r.json() == {"expires_in": 300, "phone": FR}  # no code in the answer
    [sms] = outside.sms
    assert (sms.to, sms.sender, sms.auth) == (FR, TWILIO_FROM, TWILIO_SID)
    code = outside.last_code(FR)
    assert len(code) == 6 and code.isdigit()

    r = await api.verify(FR, code, device="pixel")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] is True and body["profile_complete"] is False
    user = body["user"]
    assert (user["phone"], user["username"], user["email"], user["has_password"]) == (
        FR,
        None,
        None,
        False,
    )
    headers = {"Authorization": f"Bearer {body['access_token']}"}

    r = await api.http.post(
        "/me/complete-profile",
        json={"display_name": "Ada Lovelace", "username": "ada_l", "email": "ada@example.com"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    me = r.json()
    assert (me["username"], me["display_name"], me["email"], me["email_verified"]) == (
        "ada_l",
        "Ada Lovelace",
        "ada@example.com",
        False,
    )
    assert me["profile_complete"] is True

    async with open_client(onode.ws_url, body["access_token"], device="pixel") as client:
        assert client.welcome.user == user["id"]
        assert await client.ping() > 0


async def test_a_known_number_signs_in_to_the_same_account(api: Api) -> None:
    first, created = await api.phone_sign_in(FR, device="phone")
    again, created_again = await api.phone_sign_in(FR, device="tablet")
    assert created and not created_again
    assert again.id == first.id


async def test_national_formats_with_a_region_reach_the_same_account(
    api: Api, outside: Outside
) -> None:
    person, _ = await api.phone_sign_in(FR)
    r = await api.ask_code("06 12-34.56 78", region="FR")
    assert r.status_code == 202, r.text
    assert r.json()["phone"] == FR
    r = await api.verify("0612345678", outside.last_code(FR), region="fr")
    assert r.status_code == 200, r.text
    assert r.json()["user"]["id"] == person.id and r.json()["created"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "not a number"}, "phone"),
        ({"phone": "0612345678"}, "phone"),  # national format, no region
        ({"phone": "+33 1 23"}, "phone"),  # too short to exist
        ({"phone": "+33712345678"}, "phone"),  # right length, unassigned range
        ({"phone": "+999123456789"}, "phone"),  # no such country code
        ({"phone": "0612345678", "region": "F1"}, "region"),
    ],
)
async def test_malformed_numbers_are_refused_and_nothing_is_sent(
    api: Api, outside: Outside, body: dict[str, str], field: str
) -> None:
    r = await api.http.post("/auth/phone/code", json=body)
    assert_error(r, 400, "invalid_phone", field)
    assert outside.sms == []


async def test_oversized_and_mistyped_bodies_are_invalid(api: Api, outside: Outside) -> None:
    assert_error(await api.ask_code("+3" + "3" * 60), 400, "invalid", "phone")
    r = await api.http.post("/auth/phone/code", json={"phone": 33612345678})
    assert_error(r, 400, "invalid", "phone")
    r = await api.http.post("/auth/phone/code", json={"phone": FR, "extra": 1})
    assert_error(r, 400, "invalid", "extra")
    assert outside.sms == []


async def test_a_wrong_code_tells_the_tries_left_and_the_code_dies_after_the_last(
    start: Start, outside: Outside
) -> None:
    async with start(otp_max_attempts=3) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            api = Api(http, outside)
            await api.ask_code(FR)
            right = outside.last_code(FR)
            wrong = "000000" if right != "000000" else "111111"
            r = await api.verify(FR, wrong)
            assert "2 tries left" in assert_error(r, 400, "code_invalid", "code")["message"]
            assert_error(await api.verify(FR, wrong), 400, "code_invalid", "code")
            r = await api.verify(FR, wrong)
            assert "last try" in assert_error(r, 400, "code_invalid", "code")["message"]
            # Dead: even the right code no longer works, and no account was made.
            assert_error(await api.verify(FR, right), 400, "code_expired", "code")
            assert await stored_code_rows(node.store) == []


async def test_a_code_works_once(api: Api, outside: Outside) -> None:
    await api.ask_code(FR)
    code = outside.last_code(FR)
    assert (await api.verify(FR, code)).status_code == 201
    assert_error(await api.verify(FR, code), 400, "code_expired", "code")


async def test_a_new_code_replaces_the_previous_one(api: Api, outside: Outside) -> None:
    await api.ask_code(FR)
    old = outside.last_code(FR)
    await api.ask_code(FR)
    new = outside.last_code(FR)
    if old != new:
        assert_error(await api.verify(FR, old), 400, "code_invalid", "code")
    assert (await api.verify(FR, new)).status_code == 201


async def test_an_expired_code_is_refused(start: Start, outside: Outside) -> None:
    clock = ManualClock()
    async with start(otp_ttl=1, clock=clock) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            api = Api(http, outside)
            await api.ask_code(FR)
            clock.advance(1100)
            assert_error(await api.verify(FR, outside.last_code(FR)), 400, "code_expired", "code")


async def test_malformed_codes_are_refused_without_spending_a_try(
    api: Api, outside: Outside
) -> None:
    await api.ask_code(FR)
    for bad in ("12345", "1234567", "12a456", "١٢٣٤٥٦"):  # the last: Arabic-Indic digits
        assert_error(await api.verify(FR, bad), 400, "code_invalid", "code")
    assert (await api.verify(FR, outside.last_code(FR))).status_code == 201


async def test_codes_are_stored_only_as_keyed_hashes(onode: Node, api: Api, outside: Outside):
    await api.ask_code(FR)
    code = outside.last_code(FR)
    [(purpose, target, code_hash)] = await stored_code_rows(onode.store)
    assert (purpose, target) == ("signin", FR)
    assert code not in code_hash and len(code_hash) == 64
    assert code_hash != hashlib.sha256(code.encode()).hexdigest()


async def test_dev_echo_returns_the_code_only_when_enabled(start: Start) -> None:
    async with start(sms_provider="console", otp_dev_echo=True) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            r = await http.post("/auth/phone/code", json={"phone": FR})
            code = r.json()["code"]
            r = await http.post("/auth/phone/verify", json={"phone": FR, "code": code})
            assert r.status_code == 201, r.text
    async with start(sms_provider="console") as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            r = await http.post("/auth/phone/code", json={"phone": "+447911123456"})
            assert r.status_code == 202 and "code" not in r.json()


async def test_a_refusing_sms_provider_answers_502_and_leaves_no_code(
    onode: Node, api: Api, outside: Outside
) -> None:
    outside.sms_failure = (400, {"code": 21610, "message": "Unsubscribed recipient", "status": 400})
    assert_error(await api.ask_code(FR), 502, "delivery_failed")
    assert await stored_code_rows(onode.store) == []
    outside.sms_failure = None
    assert (await api.ask_code(FR)).status_code == 202


async def test_wrong_twilio_credentials_fail_delivery_not_the_server(
    start: Start, outside: Outside
) -> None:
    async with start(twilio_auth_token="wrong") as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            r = await http.post("/auth/phone/code", json={"phone": FR})
            assert_error(r, 502, "delivery_failed")
    assert outside.sms == []


async def test_twilio_without_secrets_is_not_configured(start: Start) -> None:
    async with start(twilio_account_sid="") as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            r = await http.post("/auth/phone/code", json={"phone": FR})
            assert "TWILIO_ACCOUNT_SID" in assert_error(r, 503, "not_configured")["message"]


async def test_a_messaging_service_sid_is_sent_as_such(start: Start, outside: Outside) -> None:
    service = "MG" + "1" * 32
    async with start(twilio_from=service) as node:
        async with httpx.AsyncClient(base_url=node.http_url) as http:
            assert (await http.post("/auth/phone/code", json={"phone": FR})).status_code == 202
    assert outside.sms[0].sender == service
