"""Item 8: my signed-in devices, and signing one out remotely (its socket closes at once)."""

from __future__ import annotations

import pytest
import trio

from protocol.client import HandshakeRejected, open_client
from protocol.errors import CloseCode
from realtime_server.node import Node
from tests.onboarding.conftest import Api, assert_error

FR = "+33612345678"


async def test_my_devices_are_listed_with_the_current_one_marked(api: Api) -> None:
    phone, _ = await api.phone_sign_in(FR, device="pixel")
    laptop, _ = await api.phone_sign_in(FR, device="laptop")
    r = await api.http.get("/me/sessions", headers=laptop.headers)
    assert r.status_code == 200, r.text
    sessions = r.json()["sessions"]
    assert [(s["device"], s["current"]) for s in sessions] == [("laptop", True), ("pixel", False)]
    assert all(s["signed_in_at"] <= s["last_active_at"] < s["expires_at"] for s in sessions)
    # A refresh keeps the session (same id), and makes it the most recently active.
    r = await api.http.post("/auth/refresh", json={"refresh_token": phone.refresh_token})
    assert r.status_code == 200
    after = (await api.http.get("/me/sessions", headers=laptop.headers)).json()["sessions"]
    assert [s["device"] for s in after] == ["pixel", "laptop"]
    assert {s["id"] for s in after} == {s["id"] for s in sessions}


async def test_signing_a_device_out_remotely_closes_its_socket_at_once(
    onode: Node, api: Api
) -> None:
    phone, _ = await api.phone_sign_in(FR, device="pixel")
    laptop, _ = await api.phone_sign_in(FR, device="laptop")
    sessions = (await api.http.get("/me/sessions", headers=laptop.headers)).json()["sessions"]
    pixel_id = next(s["id"] for s in sessions if s["device"] == "pixel")
    async with (
        open_client(onode.ws_url, phone.access_token, device="pixel") as pixel,
        open_client(onode.ws_url, laptop.access_token, device="laptop") as mine,
    ):
        r = await api.http.delete(f"/me/sessions/{pixel_id}", headers=laptop.headers)
        assert r.status_code == 204
        with trio.fail_after(2):
            closed = await pixel.wait_closed()
        assert closed.code == CloseCode.SESSION_REVOKED
        assert await mine.ping() > 0  # this device is untouched
    # The signed-out device can neither refresh, use its access token, nor reconnect.
    r = await api.http.post("/auth/refresh", json={"refresh_token": phone.refresh_token})
    assert r.status_code == 401
    assert_error(await api.http.get("/me/profile", headers=phone.headers), 401, "unauthorized")
    with pytest.raises(HandshakeRejected) as rejected:
        async with open_client(onode.ws_url, phone.access_token):
            pass
    assert rejected.value.code == CloseCode.UNAUTHORIZED
    sessions = (await api.http.get("/me/sessions", headers=laptop.headers)).json()["sessions"]
    assert [s["device"] for s in sessions] == ["laptop"]


async def test_only_my_own_active_sessions_can_be_signed_out(api: Api) -> None:
    ada, _ = await api.phone_sign_in(FR, device="pixel")
    bob, _ = await api.phone_sign_in("+33612345600", device="iphone")
    bobs = (await api.http.get("/me/sessions", headers=bob.headers)).json()["sessions"]
    r = await api.http.delete(f"/me/sessions/{bobs[0]['id']}", headers=ada.headers)
    assert_error(r, 404, "not_found")
    assert (await api.http.get("/me/profile", headers=bob.headers)).status_code == 200
    assert_error(
        await api.http.delete("/me/sessions/s_nope", headers=ada.headers), 404, "not_found"
    )


async def test_signing_out_every_other_device(onode: Node, api: Api) -> None:
    keep, _ = await api.phone_sign_in(FR, device="keep")
    others = [(await api.phone_sign_in(FR, device=f"d{i}"))[0] for i in range(2)]
    async with (
        open_client(onode.ws_url, others[0].access_token) as a,
        open_client(onode.ws_url, others[1].access_token) as b,
    ):
        assert (await api.http.delete("/me/sessions", headers=keep.headers)).status_code == 204
        with trio.fail_after(2):
            assert (await a.wait_closed()).code == CloseCode.SESSION_REVOKED
            assert (await b.wait_closed()).code == CloseCode.SESSION_REVOKED
    sessions = (await api.http.get("/me/sessions", headers=keep.headers)).json()["sessions"]
    assert [s["device"] for s in sessions] == ["keep"]
