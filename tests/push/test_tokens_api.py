"""Registering push tokens over REST, and signing out taking them away."""

from __future__ import annotations

import httpx

from realtime_server.node import Node
from storage.push_tokens import push_token_store
from tests.e2e.helpers import auth, register

FCM_TOKEN = "fcm-device-token:APA91b" + "x" * 40
APNS_TOKEN = "ab" * 32


async def test_a_device_registers_its_token_and_signing_out_removes_it(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada = await register(http, "ada")
    body = {"token": FCM_TOKEN, "provider": "fcm", "app_id": "com.example.chat"}
    r = await http.put("/me/push-token", json=body, headers=auth(ada))
    assert r.status_code == 204, r.text
    r = await http.put(
        "/me/push-token",
        json={"token": APNS_TOKEN, "provider": "apns", "app_id": "com.example.Chat"},
        headers=auth(ada),
    )
    assert r.status_code == 204, r.text
    push = push_token_store(node.store)
    assert {t.provider for t in await push.tokens_of(ada.id)} == {"fcm", "apns"}

    r = await http.post("/auth/logout", json={"refresh_token": ada.refresh_token})
    assert r.status_code == 204
    assert await push.tokens_of(ada.id) == []


async def test_bad_tokens_are_refused_and_only_my_own_token_can_be_removed(
    node: Node, http: httpx.AsyncClient
) -> None:
    ada, bob = await register(http, "ada"), await register(http, "bob")
    bad = [
        {"token": "short", "provider": "fcm", "app_id": "com.example.chat"},
        {"token": "zz" * 32, "provider": "apns", "app_id": "com.example.chat"},
        {"token": FCM_TOKEN, "provider": "webpush", "app_id": "com.example.chat"},
        {"token": FCM_TOKEN, "provider": "fcm", "app_id": "no spaces"},
    ]
    for body in bad:
        r = await http.put("/me/push-token", json=body, headers=auth(ada))
        assert r.status_code == 400, (body, r.text)
    body = {"token": FCM_TOKEN, "provider": "fcm", "app_id": "com.example.chat"}
    assert (await http.put("/me/push-token", json=body, headers=auth(ada))).status_code == 204
    r = await http.delete(f"/me/push-token/{FCM_TOKEN}", headers=auth(bob))
    assert r.status_code == 404
    r = await http.delete(f"/me/push-token/{FCM_TOKEN}", headers=auth(ada))
    assert r.status_code == 204
    assert await push_token_store(node.store).tokens_of(ada.id) == []


async def test_the_preview_setting_is_mine_and_on_by_default(http: httpx.AsyncClient) -> None:
    ada = await register(http, "ada")
    assert (await http.get("/me/push-settings", headers=auth(ada))).json() == {"show_preview": True}
    r = await http.put("/me/push-settings", json={"show_preview": False}, headers=auth(ada))
    assert r.status_code == 200 and r.json() == {"show_preview": False}
    assert (await http.get("/me/push-settings", headers=auth(ada))).json() == {
        "show_preview": False
    }
    r = await http.put("/me/push-settings", json={"show_preview": "no"}, headers=auth(ada))
    assert r.status_code == 400
