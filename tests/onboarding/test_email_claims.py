"""Issue 12, item 5: an unverified email is no claim on the address.

The rule: an address belongs to the account that proved it (a code sent to
it, a reset by email, Google saying it is verified). Until then it is only
written down: whoever next signs up with it, sets it on a profile, or signs
in with Google on it takes it, and the account that had it unverified loses
it. A proven address is unique: taking it is 409.
"""

from __future__ import annotations

import httpx

from tests.onboarding.conftest import Api, Person, assert_error
from tests.onboarding.outside import GoogleUser, Outside
from tests.onboarding.test_google_signin import mobile_sign_in

ADA = "ada@example.com"
PASSWORD = "correct horse battery"


async def squatter(api: Api) -> Person:
    """A phone account that typed someone else's address into its profile."""
    person, _ = await api.phone_sign_in("+33612345678")
    r = await api.http.post(
        "/me/complete-profile",
        json={"display_name": "Mallory", "username": "mallory", "email": ADA},
        headers=person.headers,
    )
    assert r.status_code == 200 and r.json()["email"] == ADA, r.text
    return person


async def email_of(api: Api, person: Person) -> str | None:
    r = await api.http.get("/me/profile", headers=person.headers)
    assert r.status_code == 200, r.text
    found: str | None = r.json()["email"]
    return found


async def register(http: httpx.AsyncClient, email: str, username: str) -> httpx.Response:
    return await http.post(
        "/auth/register", json={"email": email, "username": username, "password": PASSWORD}
    )


async def test_the_owner_signs_up_with_an_address_another_account_only_typed(api: Api) -> None:
    mallory = await squatter(api)
    r = await register(api.http, "ADA@example.com", "ada")
    assert r.status_code == 201, r.text
    assert await email_of(api, mallory) is None
    r = await api.http.post("/auth/login", json={"login": ADA, "password": PASSWORD})
    assert r.status_code == 200 and r.json()["user"]["username"] == "ada"


async def test_the_owner_signs_in_with_google_on_an_address_another_account_only_typed(
    api: Api, outside: Outside
) -> None:
    mallory = await squatter(api)
    outside.user = GoogleUser(sub="g-ada", email=ADA)
    r = await mobile_sign_in(api, outside)
    assert r.status_code == 201, r.text
    assert r.json()["user"]["email"] == ADA and r.json()["user"]["email_verified"] is True
    assert await email_of(api, mallory) is None


async def test_a_proven_address_cannot_be_taken(api: Api, outside: Outside) -> None:
    ada = await api.password_user("ada")
    assert (await api.http.post("/me/email/verify", headers=ada.headers)).status_code == 202
    code = outside.last_code(ADA)
    r = await api.http.post("/me/email/verify/confirm", json={"code": code}, headers=ada.headers)
    assert r.json()["email_verified"] is True
    mallory, _ = await api.phone_sign_in("+33612345678")
    r = await api.http.post(
        "/me/complete-profile",
        json={"display_name": "Mallory", "username": "mallory", "email": ADA},
        headers=mallory.headers,
    )
    assert_error(r, 409, "conflict")
    r = await api.http.post(
        "/me/complete-profile",
        json={"display_name": "Mallory", "username": "mallory"},
        headers=mallory.headers,
    )
    assert r.status_code == 200, r.text
    assert_error(
        await api.http.patch("/me/profile", json={"email": ADA}, headers=mallory.headers),
        409,
        "conflict",
    )
    assert_error(await register(api.http, ADA, "mallory2"), 409, "conflict")
    assert await email_of(api, ada) == ADA


async def test_an_address_typed_twice_goes_to_the_last_and_proving_it_keeps_it(
    api: Api, outside: Outside
) -> None:
    first = await api.password_user("ada")  # ada@example.com, unverified
    second = await api.phone_user("+33612345679", "bob")
    r = await api.http.patch("/me/profile", json={"email": ADA}, headers=second.headers)
    assert r.status_code == 200 and r.json()["email"] == ADA, r.text
    assert await email_of(api, first) is None
    # The one holding it proves it; from then on it is theirs.
    assert (await api.http.post("/me/email/verify", headers=second.headers)).status_code == 202
    code = outside.last_code(ADA)
    r = await api.http.post("/me/email/verify/confirm", json={"code": code}, headers=second.headers)
    assert r.json()["email_verified"] is True
    r = await api.http.patch("/me/profile", json={"email": ADA}, headers=first.headers)
    assert_error(r, 409, "conflict")
