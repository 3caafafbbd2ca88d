"""The one error mapping: any exception -> (status, {"error": {code, message, field?}})."""

from __future__ import annotations

import msgspec
import pytest
from werkzeug.exceptions import MethodNotAllowed, NotFound, RequestEntityTooLarge

from bridge import errors
from bridge.errors import (
    STATUS,
    BadRequest,
    InvalidCredentials,
    TokenExpired,
    TokenReused,
    default_message,
)
from bridge.http.errors import classify
from bridge.routes.schemas import RegisterRequest
from storage.errors import Conflict, MigrationError, StoreError
from storage.errors import NotFound as StoreNotFound


@pytest.mark.parametrize(
    ("exc", "status", "code", "field"),
    [
        (BadRequest("x", field="members"), 400, "invalid", "members"),
        (TokenExpired(), 401, "token_expired", None),
        (TokenReused(), 401, "token_reused", None),
        (InvalidCredentials(), 401, "invalid_credentials", None),
        (errors.NotFound(), 404, "not_found", None),
        (Conflict("email"), 409, "conflict", "email"),
        (Conflict("username"), 409, "conflict", "username"),
        (StoreNotFound("gone"), 404, "not_found", None),
        (StoreError("connection reset"), 503, "unavailable", None),
        (MigrationError("0002 failed"), 503, "unavailable", None),
        (msgspec.DecodeError("truncated"), 400, "bad_json", None),
        (NotFound(), 404, "not_found", None),
        (RequestEntityTooLarge(), 413, "payload_too_large", None),
        (KeyError("oops"), 500, "internal", None),
    ],
)
def test_each_error_has_one_status_and_code(
    exc: Exception, status: int, code: str, field: str | None
) -> None:
    got_status, detail, _ = classify(exc)
    assert (got_status, detail.code, detail.field) == (status, code, field)
    assert detail.message


def test_a_validation_error_names_the_field_at_fault() -> None:
    cases = {
        b'{"email": 1, "username": "ada", "password": "12345678"}': "email",
        b'{"email": "a@b.c", "password": "12345678"}': "username",
        b'{"email": "a@b.c", "username": "ada", "password": "12345678", "x": 1}': "x",
    }
    for body, field in cases.items():
        with pytest.raises(msgspec.ValidationError) as caught:
            msgspec.json.decode(body, type=RegisterRequest)
        assert classify(caught.value)[1].field == field


def test_internal_errors_say_nothing_about_themselves() -> None:
    _, detail, _ = classify(RuntimeError("password=hunter2"))
    assert "hunter2" not in detail.message
    _, detail, _ = classify(StoreError("postgres://user:secret@db"))
    assert "secret" not in detail.message


def test_a_wrong_method_tells_which_are_allowed() -> None:
    status, _, headers = classify(MethodNotAllowed(valid_methods=["PATCH", "GET"]))
    assert (status, headers["Allow"]) == (405, "GET, PATCH")


def test_every_mapped_code_has_a_message() -> None:
    for code in STATUS:
        assert default_message(code)
