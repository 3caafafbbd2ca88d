"""The web app at /app in Chromium: two people chat, call, and talk to the AI.

Each test starts a real node (tests/web/live.py) and drives the app in
separate browser contexts, one per person, exactly as two browsers would.
"""

from __future__ import annotations

import http.server
import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.web.live import AI_REPLY, LiveNode

PASSWORD = "correct horse battery"


@contextmanager
def person(browser: Browser, live: LiveNode, name: str) -> Iterator[Page]:
    """A browser context of its own, signed up as ``name``, connected."""
    context: BrowserContext = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{live.url}/app")
        page.get_by_test_id("username").fill(name)
        page.get_by_test_id("email").fill(f"{name}@example.test")
        page.get_by_test_id("password").fill(PASSWORD)
        page.get_by_test_id("sign-up").click()
        expect(page.get_by_test_id("connection")).to_have_text("online")
        yield page
        assert not errors, errors
    finally:
        context.close()


def open_chat(page: Page, with_user: str) -> None:
    page.get_by_test_id("new-chat-user").fill(with_user)
    page.get_by_test_id("new-chat").click()
    expect(page.get_by_test_id("room-title")).to_have_text(with_user)


def send(page: Page, text: str) -> None:
    page.get_by_test_id("composer").fill(text)
    page.get_by_test_id("send").click()


def test_two_people_chat_with_receipts_typing_reactions_edits_and_images(
    browser: Browser, live: LiveNode
) -> None:
    with person(browser, live, "ada") as ada, person(browser, live, "bob") as bob:
        open_chat(ada, "bob")
        send(ada, "Hello Bob")
        first = ada.locator("[data-testid=message][data-seq='1']")
        expect(first).to_contain_text("Hello Bob")
        expect(first.get_by_test_id("receipt")).to_have_text(re.compile("sent|delivered"))

        # Bob's list shows the new room with one unread message; opening it reads it.
        room = bob.get_by_test_id("room").filter(has_text="ada")
        expect(room.get_by_test_id("unread")).to_have_text("1")
        expect(first.get_by_test_id("receipt")).to_have_text("delivered")
        room.click()
        expect(bob.get_by_test_id("message").filter(has_text="Hello Bob")).to_be_visible()
        expect(first.get_by_test_id("receipt")).to_have_text("read")
        expect(room.get_by_test_id("unread")).to_have_count(0)
        expect(ada.get_by_test_id("presence")).to_have_text("online")

        # Typing shows on the other side, and ends when the message goes.
        bob.get_by_test_id("composer").press_sequentially("Hi A")
        expect(ada.get_by_test_id("typing")).to_have_text("bob is typing…")
        bob.get_by_test_id("composer").fill("")
        expect(ada.get_by_test_id("typing")).to_have_text("")

        # A reply carries a preview of what it answers.
        bob_first = bob.locator("[data-testid=message][data-seq='1']")
        bob_first.hover()
        bob_first.get_by_test_id("reply").click()
        send(bob, "Hi Ada")
        answer = ada.get_by_test_id("message").filter(has_text="Hi Ada")
        expect(answer).to_contain_text("ada: Hello Bob")

        # Reactions, edits and deletes reach the other side live.
        answer.hover()
        answer.get_by_test_id("react").click()
        expect(
            bob.get_by_test_id("message").filter(has_text="Hi Ada").get_by_test_id("reactions")
        ).to_have_text("👍 1")
        first.hover()
        first.get_by_test_id("edit").click()
        send(ada, "Hello Bob, edited")
        edited = bob.locator("[data-testid=message][data-seq='1']")
        expect(edited).to_contain_text("Hello Bob, edited")
        expect(edited.get_by_test_id("edited")).to_be_visible()
        send(ada, "a mistake")
        mistake = ada.get_by_test_id("message").filter(has_text="a mistake")
        expect(bob.get_by_test_id("message").filter(has_text="a mistake")).to_be_visible()
        mistake.hover()
        mistake.get_by_test_id("delete").click()
        expect(bob.get_by_test_id("message").filter(has_text="a mistake")).to_have_count(0)
        tombstone = bob.get_by_test_id("message").filter(has_text="This message was deleted")
        expect(tombstone).to_be_visible()

        # An image goes up over REST and arrives as an image message.
        png = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 40, 40)).save(png, format="PNG")
        ada.get_by_test_id("image-input").set_input_files(
            {"name": "red.png", "mimeType": "image/png", "buffer": png.getvalue()}
        )
        image = bob.get_by_test_id("image")
        expect(image).to_have_attribute("src", re.compile("^blob:"))
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")


def test_offline_person_comes_back_to_everything(browser: Browser, live: LiveNode) -> None:
    with person(browser, live, "cleo") as cleo, person(browser, live, "dan") as dan:
        open_chat(cleo, "dan")
        send(cleo, "before the tunnel")
        dan.get_by_test_id("room").filter(has_text="cleo").click()
        expect(dan.get_by_test_id("message").filter(has_text="before the tunnel")).to_be_visible()

        # Offline, the app notices the silence (its ping gets no pong) and keeps
        # trying; whatever happened to the old socket, the server holds the rest.
        dan.context.set_offline(True)
        expect(dan.get_by_test_id("connection")).not_to_have_text("online", timeout=15_000)
        for i in range(1, 4):
            send(cleo, f"while away {i}")
        first = cleo.get_by_test_id("message").filter(has_text="while away 1")
        expect(first.get_by_test_id("receipt")).to_have_text("sent")

        # Written offline: it waits in the client and goes once the socket is back.
        send(dan, "written in the tunnel")

        dan.context.set_offline(False)
        expect(dan.get_by_test_id("connection")).to_have_text("online", timeout=30_000)
        from_tunnel = cleo.get_by_test_id("message").filter(has_text="written in the tunnel")
        expect(from_tunnel).to_have_count(1)
        for i in range(1, 4):
            missed = dan.get_by_test_id("message").filter(has_text=f"while away {i}")
            expect(missed).to_have_count(1)
        expect(first.get_by_test_id("receipt")).to_have_text("read")
        expect(cleo.get_by_test_id("presence")).to_have_text("online")

        # History pages: a fresh load shows the latest 30, the rest on demand.
        for i in range(1, 31):
            send(cleo, f"bulk {i:02d}")
        expect(cleo.get_by_test_id("message").filter(has_text="bulk 30")).to_be_visible()
        dan.reload()
        dan.get_by_test_id("room").filter(has_text="cleo").click()
        expect(dan.get_by_test_id("message").filter(has_text="bulk 30")).to_be_visible()
        expect(dan.get_by_test_id("message")).to_have_count(30)
        dan.get_by_test_id("load-older").click()
        expect(dan.get_by_test_id("message").filter(has_text="before the tunnel")).to_have_count(1)
        expect(dan.get_by_test_id("load-older")).to_be_hidden()


def test_ai_answer_streams_and_can_be_stopped(browser: Browser, live: LiveNode) -> None:
    with person(browser, live, "eve") as eve:
        eve.get_by_test_id("new-ai").click()
        send(eve, "Tell me something")
        stream = eve.get_by_test_id("ai-stream")
        expect(stream).to_contain_text("word3")
        assert "word40" not in stream.inner_text()  # seen while it was still coming
        expect(stream).to_have_count(0, timeout=15_000)
        expect(eve.get_by_test_id("message").filter(has_text="word40")).to_have_count(1)
        assert AI_REPLY in eve.get_by_test_id("message").filter(has_text="word40").inner_text()

        send(eve, "Again, but I will stop you")
        expect(stream).to_contain_text("word2")
        eve.get_by_test_id("stop").click()
        expect(stream).to_have_count(0)
        expect(eve.get_by_test_id("stop")).to_be_hidden()
        answers = eve.get_by_test_id("message").filter(has_text="word1 word2")
        expect(answers).to_have_count(2)  # the full one, and the stopped one stored
        assert "word40" not in answers.nth(1).inner_text()


def test_call_between_two_contexts_connects(browser: Browser, live: LiveNode) -> None:
    with person(browser, live, "fay") as fay, person(browser, live, "gus") as gus:
        open_chat(fay, "gus")
        fay.get_by_test_id("call").click()
        expect(gus.get_by_test_id("incoming-call")).to_contain_text("fay is calling")
        gus.get_by_test_id("accept-call").click()
        expect(gus.get_by_test_id("call-status")).to_have_text("connected", timeout=20_000)
        expect(fay.get_by_test_id("call-status")).to_have_text("connected", timeout=20_000)
        fay.get_by_test_id("hangup").click()
        expect(gus.get_by_test_id("call-status")).to_have_text("call ended (answered)")


def test_a_page_on_another_origin_needs_cors_origins(browser: Browser, tmp_path: Path) -> None:
    with other_origin() as origin, LiveNode(tmp_path, cors_origins=origin) as live:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"{origin}/")
            ws_url = live.url.replace("http://", "ws://") + "/ws"
            got = page.evaluate(CROSS_ORIGIN_PROBE, [live.url, ws_url])
            assert got == {"status": 201, "user": "hal", "ws": "open"}, got
        finally:
            context.close()
    with other_origin() as origin, LiveNode(tmp_path / "2") as live:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"{origin}/")
            ws_url = live.url.replace("http://", "ws://") + "/ws"
            got = page.evaluate(CROSS_ORIGIN_PROBE, [live.url, ws_url])
            assert got["status"] == "blocked", got  # no CORS_ORIGINS: the browser refuses
        finally:
            context.close()
    with other_origin() as origin, LiveNode(tmp_path / "3", cors_origins="https://x.test") as live:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"{origin}/")
            ws_url = live.url.replace("http://", "ws://") + "/ws"
            got = page.evaluate(CROSS_ORIGIN_PROBE, [live.url, ws_url])
            assert got == {"status": "blocked", "ws": "refused"}, got
        finally:
            context.close()


# Sign up over REST with a JSON body (a preflighted request), then open /ws.
CROSS_ORIGIN_PROBE = """async ([api, wsUrl]) => {
  const out = {};
  try {
    const r = await fetch(api + "/auth/register", {
      method: "POST",
      headers: {"content-type": "application/json"},
      body: JSON.stringify({username: "hal", email: "hal@example.test",
                            password: "correct horse battery"}),
    });
    out.status = r.status;
    out.user = (await r.json()).user.username;
  } catch (e) {
    out.status = "blocked";
  }
  out.ws = await new Promise((resolve) => {
    const ws = new WebSocket(wsUrl);
    ws.onopen = () => { ws.close(); resolve("open"); };
    ws.onerror = () => resolve("refused");
  });
  return out;
}"""


@contextmanager
def other_origin() -> Iterator[str]:
    """An empty page served from another port: another origin than the node's."""

    class Blank(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>elsewhere</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Blank)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
