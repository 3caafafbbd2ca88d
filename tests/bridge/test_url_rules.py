"""Apps share compiled URL builders (bridge/http/url_rules.py), never the rules bound to them."""

from __future__ import annotations

from quart import Response
from quart_trio import QuartTrio

from bridge.http.url_rules import SharedBuilderRule


def _app(name: str) -> QuartTrio:
    app = QuartTrio(name, static_folder=None)
    app.url_rule_class = SharedBuilderRule

    async def view(**_: object) -> Response:
        return Response("")

    app.add_url_rule("/rooms/<int:room_id>/messages/<cid>", "messages", view)
    app.add_url_rule("/pages/<int:page>", "page", view, defaults={"page": 1})
    return app


def test_two_apps_build_their_urls_with_one_compiled_builder() -> None:
    first, second = _app("first"), _app("second")
    a = next(first.url_map.iter_rules("messages"))
    b = next(second.url_map.iter_rules("messages"))
    assert a is not b and a.map is first.url_map and b.map is second.url_map
    assert a._build.__func__ is b._build.__func__  # type: ignore[attr-defined]
    for app in (first, second):
        urls = app.url_map.bind("localhost")
        assert urls.build("messages", {"room_id": 7, "cid": "a b"}) == "/rooms/7/messages/a%20b"
        with_query = urls.build("messages", {"room_id": 7, "cid": "c", "q": 1})
        assert with_query == "/rooms/7/messages/c?q=1"


def test_a_rule_with_defaults_is_compiled_for_itself_and_resolves_them() -> None:
    first, second = _app("first"), _app("second")
    a = next(first.url_map.iter_rules("page"))
    b = next(second.url_map.iter_rules("page"))
    assert a._build.__func__ is not b._build.__func__  # type: ignore[attr-defined]
    assert first.url_map.bind("localhost").build("page", {}) == "/pages/1"
