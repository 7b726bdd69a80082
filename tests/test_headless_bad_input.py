"""Bad input for the headless Identity API (SPEC §3): every operation gets wrong content types,
missing, unknown and wrong-typed fields, huge values, NUL characters, bodies that are not UTF-8 or
not JSON. Each is a 400 in the ``validation`` shape (``code``, ``message``, and ``fields`` naming
the field where there is one), never a 500, and a refused request writes nothing: no interaction,
one-time code or token is created or changed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from oauth2_provider.models import AccessToken

from authenticators.models import OneTimeCode
from experience.models import Interaction
from identity.models import ApplicationSettings
from tests.helpers import HUGE, NUL, PASSWORD, code_in_mail, make_application

LOGIN_BY_PASSWORD = "/api/authorization/login-by-password"
CHECK_CODE = "/api/authorization/check-code"
SEND_CODE = "/api/authorization/send-code"
LOGIN = "/api/authorization/login"
OPERATIONS = [LOGIN_BY_PASSWORD, CHECK_CODE, SEND_CODE, LOGIN]

# Each operation's string fields and their longest accepted lengths (a value one longer is refused).
STRING_FIELDS: dict[str, dict[str, int]] = {
    LOGIN_BY_PASSWORD: {"client_id": 255, "client_secret": 255, "email": 254, "password": 4096},
    CHECK_CODE: {"client_id": 255, "client_secret": 255, "data_2fa": 128, "code": 64},
    SEND_CODE: {"client_id": 255, "client_secret": 255, "email": 254},
    LOGIN: {"client_id": 255, "client_secret": 255, "code_id": 64, "code": 16},
}
REQUIRED: dict[str, list[str]] = {
    LOGIN_BY_PASSWORD: ["client_id", "email", "password"],
    CHECK_CODE: ["data_2fa", "code"],
    SEND_CODE: ["client_id"],
    LOGIN: ["code_id", "code"],
}
WRONG_TYPES: list[Any] = [7, 1.5, True, None, [], ["x"], {"a": "b"}, {"nested": {"deeper": ["x"]}}]
RAW_BODIES: dict[str, tuple[str, bytes | str]] = {
    "invalid json": ("application/json", b'{"client_id": '),
    "trailing garbage": ("application/json", b'{"client_id": "a"} x'),
    "nan": ("application/json", b'{"client_id": NaN}'),
    "array": ("application/json", b'[{"client_id": "a"}]'),
    "string": ("application/json", b'"client_id"'),
    "number": ("application/json", b"42"),
    "null": ("application/json", b"null"),
    "not utf-8": ("application/json", b'\xff\xfe{"client_id": "a"}'),
    "latin-1 declared": ("application/json; charset=iso-8859-1", '{"email": "\u00e9"}'),  # the test client encodes it as declared
    "lone surrogate": ("application/json", b'{"client_id": "\\ud800"}'),
    "deep": ("application/json", b"[" * 5000 + b"]" * 5000),
    "huge": ("application/json", json.dumps({"client_id": "a", "password": HUGE}).encode()),
}
MEDIA_TYPES: dict[str, tuple[str | None, Any]] = {
    "form-urlencoded": ("application/x-www-form-urlencoded", "client_id=a&email=alice%40example.com&password=x"),
    "multipart": (None, {"client_id": "a", "email": "alice@example.com", "password": "x"}),  # the client's default
    "text/plain": ("text/plain", '{"client_id": "a", "email": "alice@example.com"}'),
    "xml": ("application/xml", "<client_id>a</client_id>"),
    "none": ("", '{"client_id": "a", "email": "alice@example.com"}'),
}


@pytest.fixture
def app(db: Any, settings: Any) -> Any:
    settings.PORTCULLIS_API_RATE_LIMIT = 10_000  # these tests send more than 30 requests to one endpoint
    app = make_application(name="Shop")
    ApplicationSettings.objects.filter(application=app.application).update(headless_api=True)
    return app


@pytest.fixture
def valid(client: Any, totp_user: Any, app: Any, mail_code: Any, mailoutbox: Any) -> dict[str, dict[str, Any]]:
    """A well-formed body of each operation, with a live data_2fa and code_id (a refused request
    must leave both as they were)."""
    auth = {"client_id": app.client_id, "client_secret": app.client_secret}
    started = post(client, LOGIN_BY_PASSWORD, {**auth, "email": "alice@example.com", "password": PASSWORD})
    assert started.status_code == 200 and "data_2fa" in started.json(), started.content
    sent = post(client, SEND_CODE, {**auth, "email": "alice@example.com"})
    assert sent.status_code == 200, sent.content
    return {
        LOGIN_BY_PASSWORD: {**auth, "email": "alice@example.com", "password": PASSWORD},
        CHECK_CODE: {**auth, "data_2fa": started.json()["data_2fa"], "code": "123456"},
        SEND_CODE: {**auth, "email": "bob@example.com"},
        LOGIN: {**auth, "code_id": sent.json()["code_id"], "code": code_in_mail(mailoutbox[-1])},
    }


def post(client: Any, path: str, body: Any, **headers: Any) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json", **headers)


def snapshot() -> tuple[Any, ...]:
    """Everything a request could write: interactions, one-time codes, tokens."""
    interactions = sorted((row.uid, json.dumps(row.state, sort_keys=True), row.completed_at, row.expires_at)
                          for row in Interaction.objects.all())
    codes = sorted(tuple(str(value) for value in row) for row in OneTimeCode.objects.values_list())
    return tuple(interactions), tuple(codes), AccessToken.objects.count()


def validation(response: Any, where: Any) -> dict[str, Any]:
    """The refusal in SPEC's ``validation`` shape; its object."""
    assert response.status_code == 400, (where, response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), where
    body = response.json()
    assert isinstance(body, dict) and list(body) == ["validation"], (where, body)
    detail = body["validation"]
    assert isinstance(detail["code"], str) and isinstance(detail["message"], str) and detail["message"], where
    return dict(detail)


def named(response: Any, field: str, where: Any) -> None:
    detail = validation(response, where)
    assert detail["code"] == "invalid", (where, detail)
    # the field itself, or for a nested object its fields by their path (captcha.id)
    mine = [name for name in detail["fields"] if name == field or name.startswith(f"{field}.")]
    assert mine, (where, detail)
    assert all(isinstance(message, str) for name in mine for message in detail["fields"][name]), (where, detail)


# -- bodies that are not a JSON object --------------------------------------------------------------------
@pytest.mark.parametrize("path", OPERATIONS)
def test_a_body_of_another_media_type_is_unsupported_and_writes_nothing(client, valid, path):
    before = snapshot()
    for label, (content_type, body) in MEDIA_TYPES.items():
        if content_type is None:
            response = client.post(path, body)
        else:
            response = client.post(path, body, content_type=content_type)
        assert validation(response, (path, label))["code"] == "unsupported_media_type", (path, label)
    assert snapshot() == before


@pytest.mark.parametrize("path", OPERATIONS)
def test_a_body_that_is_not_a_json_object_is_malformed_and_writes_nothing(client, valid, path):
    before = snapshot()
    for label, (content_type, raw) in RAW_BODIES.items():
        response = client.post(path, raw, content_type=content_type)
        code = validation(response, (path, label))["code"]
        expected = {"body_too_large"} if label == "huge" else {"malformed_body"}
        if label == "latin-1 declared":  # read as declared, or refused: never a 500, never a sign-in
            expected = {"malformed_body", "invalid", "unsupported_media_type"}
        assert code in expected, (path, label, code)
    assert snapshot() == before


@pytest.mark.parametrize("path", OPERATIONS)
def test_an_empty_body_names_the_missing_fields(client, valid, path):
    before = snapshot()
    response = client.post(path, b"", content_type="application/json")
    detail = validation(response, path)
    assert detail["code"] == "invalid"
    for field in REQUIRED[path]:
        assert field in detail["fields"], (path, field, detail)
    assert snapshot() == before


# -- fields ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", OPERATIONS)
def test_each_missing_field_is_named(client, valid, path):
    before = snapshot()
    for field in REQUIRED[path]:
        body = {key: value for key, value in valid[path].items() if key != field}
        named(post(client, path, body), field, (path, field))
    if path == SEND_CODE:  # no address at all: exactly one of email, phone_number, data_2fa is needed
        body = {key: value for key, value in valid[path].items() if key != "email"}
        named(post(client, path, body), "non_field_errors", path)
    assert snapshot() == before


@pytest.mark.parametrize("path", OPERATIONS)
def test_an_unknown_field_is_named(client, valid, path):
    before = snapshot()
    for extra in ("identifier", "is_admin", "redirect_uri", "x" * 300, NUL):
        response = post(client, path, {**valid[path], extra: "1"})
        detail = validation(response, (path, extra[:20]))
        assert detail["code"] == "invalid"
        assert extra[:64] in detail["fields"], (path, extra[:20], detail)
    assert snapshot() == before


@pytest.mark.parametrize("path", OPERATIONS)
def test_a_field_of_the_wrong_json_type_is_named(client, valid, path):
    before = snapshot()
    for field in STRING_FIELDS[path]:
        for value in WRONG_TYPES:
            response = post(client, path, {**valid[path], field: value})
            if value is None and field in ("client_id", "client_secret") and response.status_code == 401:
                continue  # an absent credential: the client is not authenticated (never a 500)
            named(response, field, (path, field, value))
    if path in (LOGIN_BY_PASSWORD, SEND_CODE):
        for captcha in ("abc", 1, ["x"], {"id": 1, "answer": None}, {"id": "a", "answer": "b", "extra": "c"},
                        {"id": {"x": 1}, "answer": ["y"]}):
            named(post(client, path, {**valid[path], "captcha": captcha}), "captcha", (path, captcha))
    if path == CHECK_CODE:
        for method in ("sms", 1, ["totp"], None):
            named(post(client, path, {**valid[path], "method": method}), "method", (path, method))
    assert snapshot() == before


@pytest.mark.parametrize("path", OPERATIONS)
def test_a_value_too_long_or_with_a_nul_is_named(client, valid, path):
    before = snapshot()
    for field, longest in STRING_FIELDS[path].items():
        for value in ("x" * (longest + 1), "a" + NUL + "b", NUL):
            named(post(client, path, {**valid[path], field: value}), field, (path, field, value[:10]))
    assert snapshot() == before


@pytest.mark.parametrize("path", OPERATIONS)
def test_a_huge_value_in_any_field_is_refused_as_too_large(client, valid, path):
    before = snapshot()
    for field in [*STRING_FIELDS[path], "captcha", "unknown"]:
        response = post(client, path, {**valid[path], field: HUGE})
        assert validation(response, (path, field))["code"] == "body_too_large", (path, field)
    assert snapshot() == before


def test_a_valid_body_still_works_after_all_that(client, valid):
    """The refusals above spent nothing: the same live code signs in."""
    for path in OPERATIONS:
        post(client, path, {**valid[path], "unknown": "x"})
    response = post(client, LOGIN, valid[LOGIN])
    assert response.status_code == 200, response.content
    assert Client().post(CHECK_CODE, b"\xff", content_type="application/json").status_code == 400
