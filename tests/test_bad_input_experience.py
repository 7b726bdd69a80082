"""Bad input for the sign-in experience's steps (issue 6, "Bad input"), in the manner of
tests/test_bad_input.py: every Experience API endpoint and every new hosted page gets malformed,
oversized and wrong-typed values, wrong content types and steps out of order. Never a 5xx; the API
answers in SPEC's error shape (one top-level key naming the kind, with a ``code`` and a
``message``); a refused step leaves the interaction exactly as it was."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from experience.models import Interaction
from tests.helpers import HUGE, NUL, PASSWORD, UNREADABLE_FORMS, authorize_params, sign_in_url_from, totp_now

pytestmark = pytest.mark.django_db
API = "/api/experience/"

# (method, path after the interaction's id); the body each endpoint expects, roughly.
ENDPOINTS: dict[str, tuple[str, dict[str, Any]]] = {
    "event": ("put", {"event": "sign_up"}),
    "password": ("post", {"identifier": "alice", "password": PASSWORD}),
    "code": ("post", {"email": "alice@example.com"}),
    "code/verify": ("post", {"code_id": "x" * 20, "code": "123456"}),
    "totp": ("post", {"code": "123456"}),
    "backup-code": ("post", {"code": "abcd-efgh-ijkl-mnop"}),
    "profile": ("post", {"password": "a long and unusual passphrase"}),
    "mfa/totp": ("post", {}),
    "mfa/totp/confirm": ("post", {"code": "123456"}),
    "mfa/backup-codes": ("post", {}),
    "submit": ("post", {}),
}
WRONG_TYPES = [1, 1.5, True, None, [], ["x"], {"a": 1}, NUL, "a" * 10_000, "\ud7ff" * 300]
RAW_BODIES = {
    "not-json": ("application/json", "{"),
    "array": ("application/json", "[]"),
    "string": ("application/json", '"alice"'),
    "nan": ("application/json", '{"code": NaN}'),
    "deep": ("application/json", "[" * 5000 + "]" * 5000),
    "lone-surrogate": ("application/json", '{"code": "\\ud800"}'),
    "not-utf8": ("application/json", b"\xff\xfe{}"),
    "huge": ("application/json", json.dumps({"padding": HUGE * 3})),
    "form": ("application/x-www-form-urlencoded", "code=123456&email=alice%40example.com"),
    "multipart": ("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=code\r\n\r\n1\r\n--x--\r\n"),
    "text": ("text/plain", '{"code": "123456"}'),
    "xml": ("application/xml", "<code>1</code>"),
}


class Api:
    def __init__(self) -> None:
        self.client = Client(enforce_csrf_checks=True, raise_request_exception=False)
        assert self.client.get(API + "config").status_code == 200

    def send(self, method: str, path: str, body: Any = None, *, raw: Any = None,
             content_type: str = "application/json") -> Any:
        data = raw if raw is not None else json.dumps({} if body is None else body)
        return getattr(self.client, method)(path, data, content_type=content_type,
                                            headers={"X-CSRFToken": self.client.cookies["csrftoken"].value})

    def start(self, event: str = "sign_in") -> str:
        response = self.send("post", API, {"event": event})
        assert response.status_code == 201, response.content
        return str(response.json()["id"])


def stored(uid: str) -> tuple[Any, ...]:
    row = Interaction.objects.get(uid=uid)
    return row.event, json.dumps(row.state, sort_keys=True), row.completed_at


def error_shape(response: Any, where: Any) -> str:
    assert 400 <= response.status_code < 500, (where, response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), where
    body = response.json()
    assert isinstance(body, dict) and len(body) == 1, (where, body)
    [(kind, detail)] = body.items()
    assert isinstance(detail.get("code"), str) and isinstance(detail.get("message"), str) and detail["message"], where
    return f"{kind}:{detail['code']}"


@pytest.fixture
def api(user: Any, mail_code: Any, second_factors: Any) -> Api:
    return Api()


# -- malformed, oversized, wrong types, wrong content types ----------------------------------------------
@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_every_endpoint_refuses_malformed_bodies_in_the_error_shape_and_changes_nothing(api, name):
    method, _body = ENDPOINTS[name]
    uid = api.start()
    before = stored(uid)
    for label, (content_type, raw) in RAW_BODIES.items():
        response = api.send(method, f"{API}{uid}/{name}", raw=raw, content_type=content_type)
        error_shape(response, (name, label))
        assert stored(uid) == before, (name, label)


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_every_endpoint_refuses_wrong_types_in_each_field_and_changes_nothing(api, name):
    method, body = ENDPOINTS[name]
    uid = api.start()
    before = stored(uid)
    fields = list(body) or ["code", "password", "captcha"]
    for field in fields:
        for value in WRONG_TYPES:
            response = api.send(method, f"{API}{uid}/{name}", {**body, field: value})
            assert response.status_code < 500, (name, field, value)
            if response.status_code >= 400:
                error_shape(response, (name, field, repr(value)[:40]))
                assert stored(uid) == before, (name, field, repr(value)[:40])
    for captcha in ("1234", ["x"], {"id": NUL, "answer": HUGE}, {"id": 1, "answer": None}):
        response = api.send(method, f"{API}{uid}/{name}", {**body, "captcha": captcha})
        assert response.status_code < 500, (name, captcha)


@pytest.mark.parametrize("name", ["", *ENDPOINTS])
def test_an_unknown_or_garbage_interaction_is_not_found_in_the_error_shape(api, name):
    method = ENDPOINTS[name][0] if name else "get"
    for uid in ("unknown-interaction", "%00", "x" * 5000, "%E2%80%AE", "%ff"):
        path = f"{API}{uid}/{name}" if name else f"{API}{uid}"
        response = api.send(method, path, ENDPOINTS.get(name, ("", {}))[1]) if name else api.client.get(path)
        assert response.status_code < 500, (name, uid)
        if response.status_code != 405:
            assert error_shape(response, (name, uid)) == "interaction:not_found"


# -- out of order -----------------------------------------------------------------------------------------
OUT_OF_ORDER = [
    # (event, endpoint, body, expected kind:code)
    ("sign_in", "code/verify", {"code_id": "not-a-code", "code": "123456"}, "key:invalid_code"),
    ("sign_in", "totp", {"code": "123456"}, "requirement:identify"),
    ("sign_in", "backup-code", {"code": "abcd-efgh-ijkl-mnop"}, "requirement:identify"),
    ("sign_in", "submit", {}, "requirement:identify"),
    ("sign_in", "mfa/totp/confirm", {"code": "123456"}, None),
    ("sign_in", "mfa/backup-codes", {}, None),
    ("sign_in", "profile", {"password": "a long and unusual passphrase"}, None),
    ("sign_up", "profile", {"password": "a long and unusual passphrase"}, None),
    ("forgot_password", "profile", {"password": "a long and unusual passphrase"}, None),
    ("sign_up", "password", {"identifier": "alice", "password": PASSWORD}, None),
]


@pytest.mark.parametrize(("event", "name", "body", "expected"), OUT_OF_ORDER,
                         ids=[f"{e}-{n}" for e, n, _b, _x in OUT_OF_ORDER])
def test_a_step_out_of_order_is_refused_and_changes_nothing(api, event, name, body, expected):
    uid = api.start(event)
    before = stored(uid)
    response = api.send(ENDPOINTS[name][0], f"{API}{uid}/{name}", body)
    answer = error_shape(response, name)
    if expected:
        assert answer == expected
    assert stored(uid) == before


def test_totp_confirm_without_start_after_the_password_is_refused(api, mfa_required):
    uid = api.start()
    assert api.send("post", f"{API}{uid}/password", {"identifier": "alice", "password": PASSWORD}).status_code == 200
    before = stored(uid)
    answer = error_shape(api.send("post", f"{API}{uid}/mfa/totp/confirm", {"code": totp_now()}), "confirm")
    assert answer.endswith(":enrolment_not_started")
    assert stored(uid) == before


def test_a_code_of_another_interaction_is_an_invalid_code_and_changes_nothing(api):
    first, second = api.start(), api.start()
    sent = api.send("post", f"{API}{first}/code", {"email": "alice@example.com"})
    assert sent.status_code == 200, sent.content
    before = stored(second)
    answer = error_shape(api.send("post", f"{API}{second}/code/verify",
                                  {"code_id": sent.json()["code_id"], "code": "123456"}), "other")
    assert answer == "key:invalid_code" and stored(second) == before


def test_another_browsers_interaction_cannot_be_driven(api):
    uid = api.start()
    before = stored(uid)
    intruder = Api()
    for name, (method, body) in ENDPOINTS.items():
        assert error_shape(intruder.send(method, f"{API}{uid}/{name}", body), name) == "interaction:not_found"
    assert stored(uid) == before


# -- the hosted pages -------------------------------------------------------------------------------------
PAGE_GARBAGE: list[dict[str, Any]] = [
    {},
    {"action": NUL},
    {"action": "verify", "code": HUGE},
    {"action": "send", "email": HUGE, "authenticator": "mail"},
    {"action": "send", "email": "a@b.c" + NUL, "authenticator": NUL},
    {"action": ["send", "verify"], "email": ["a@example.com", "b@example.com"]},
    {"authenticator": "password", "identifier": HUGE, "password": HUGE},
    {"code": ["1", "2"], "code_id": [NUL, HUGE]},
    {"password": HUGE, "password2": NUL, "username": HUGE, "name": NUL},
    {"factor": NUL, "action": "remove", "authenticator": "totp"},
    {"captcha_id": NUL, "captcha_answer": HUGE},
]
PAGES = ["sign-up", "forgot-password", "profile", "new-password", "second-factor", "mfa-enrol"]


def hosted(client: Client, app: Any) -> str:
    response = client.get("/oauth/authorize", authorize_params(app))
    return sign_in_url_from(response).rstrip("/").rsplit("/", 1)[1]


@pytest.mark.parametrize("stage", ["anonymous", "after the password"])
@pytest.mark.parametrize("page", PAGES)
def test_garbage_on_every_new_page_is_never_a_500_and_changes_nothing(confidential_app, totp_user, mail_code,
                                                                      stage, page):
    client = Client(raise_request_exception=False)
    uid = hosted(client, confidential_app)
    if stage == "after the password":
        sign_in = reverse("experience:sign-in", args=[uid])
        assert client.post(sign_in, {"identifier": "alice", "password": PASSWORD,
                                     "authenticator": "password"}).status_code == 303
    url = reverse(f"experience:{page}", args=[uid])
    assert client.get(url, {"authenticator": NUL, "change": HUGE}).status_code < 500
    client.get(url)  # a page may switch the event on GET (sign-up, forgot password): that is not garbage
    before = stored(uid)
    for data in PAGE_GARBAGE:
        for query in ("", "?authenticator=totp", "?authenticator=email-code", f"?authenticator={NUL}"):
            response = client.post(url + query, data)
            assert response.status_code < 500, (page, data, query, response.status_code)
            assert stored(uid) == before, (page, data, query)
    for content_type, body in UNREADABLE_FORMS.values():
        assert client.generic("POST", url, body, content_type=content_type).status_code == 400
    assert client.post(url, json.dumps({"code": "1"}), content_type="application/json").status_code < 500
    assert stored(uid) == before


@pytest.mark.parametrize("channel", ["email-code", "sms-code"])
def test_garbage_on_the_code_tabs_is_never_a_500_and_changes_nothing(confidential_app, user, mail_code, channel):
    client = Client(raise_request_exception=False)
    uid = hosted(client, confidential_app)
    url = reverse("experience:sign-in", args=[uid]) + f"?authenticator={channel}"
    client.get(url)
    before = stored(uid)
    for data in [*PAGE_GARBAGE, {"authenticator": channel, "action": "resend"},
                 {"authenticator": channel, "action": "verify", "code": "123456", "code_id": "nope"},
                 {"authenticator": channel, "action": "send", "phone_number": "+1" + "5" * 300}]:
        response = client.post(url, data)
        assert response.status_code < 500, (data, response.status_code)
        assert stored(uid) == before, data
    for content_type, body in UNREADABLE_FORMS.values():
        assert client.generic("POST", url, body, content_type=content_type).status_code == 400


@pytest.mark.parametrize("path", ["account-security", "account-totp", "account-confirm"])
def test_garbage_on_the_account_pages_is_never_a_500(flow, confidential_app, totp_user, path):
    flow.client.raise_request_exception = False
    anonymous = Client(raise_request_exception=False)
    url = reverse(f"experience:{path}")
    for client in (anonymous, flow.client):
        assert client.get(url, {"factor": NUL, "next": HUGE}).status_code < 500
        for data in PAGE_GARBAGE:
            assert client.post(url, data).status_code < 500, (path, data)
        for content_type, body in UNREADABLE_FORMS.values():
            assert client.generic("POST", url, body, content_type=content_type).status_code in (400, 302, 303)
