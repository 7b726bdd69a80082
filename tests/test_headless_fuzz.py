"""The headless Identity API (SPEC §3) fuzzed from its own OpenAPI schema (schemathesis, in-process
over WSGI): no 500, and every answer is one the schema documents for the operation (status, content
type, body). Generated bodies are mixed with ones that carry a real application and real-looking
credentials, so the fuzz reaches past client authentication (200, 400, 403, 404 and 429 as well as 401).
And every documented answer of the four operations shows an example."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import schemathesis
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from experience import risk
from tests.helpers import PASSWORD, ClientApp, code_in_mail, make_application, open_connection

SCHEMA_URL = "/api/schema/?format=json"
LOGIN_BY_PASSWORD = "/api/authorization/login-by-password"
SEND_CODE = "/api/authorization/send-code"
LOGIN = "/api/authorization/login"
CHECK_CODE = "/api/authorization/check-code"
OPERATIONS = (LOGIN_BY_PASSWORD, SEND_CODE, LOGIN, CHECK_CODE)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
EXAMPLES_PER_OPERATION = 40
RATE_WINDOW = 33  # the cache (rate limits, captcha risk) is cleared every this many cases: a few 429s, then more
EMAILS = ["alice@example.com", "Alice@Example.com", "nobody@example.com", "alice@example.org", "not-an-e-mail"]
AUTHENTICATORS = [None, "password", "email-code", "no-such-method"]


@pytest.fixture
def apps(db: Any) -> dict[str, ClientApp]:
    """A public and a confidential headless app, and a first-party app not allowed the headless API."""
    return {"public": make_application(public=True, name="Fuzz SPA", headless=True),
            "confidential": make_application(name="Fuzz shop", headless=True),
            "not_headless": make_application(public=True, name="Not headless")}


@pytest.fixture
def schema(db: Any) -> Any:
    """The schema as the app serves it, its operations called in-process over WSGI (config.wsgi's
    application, without its deploy checks)."""
    with open_connection():
        return schemathesis.openapi.from_wsgi(SCHEMA_URL, get_wsgi_application())


def real_code_id(apps: dict[str, ClientApp], mailoutbox: list[Any]) -> tuple[str, str]:
    """A code_id and its code that the public app really obtained for alice."""
    response = Client().post(SEND_CODE, json.dumps({"client_id": apps["public"].client_id,
                                                    "email": "alice@example.com"}), content_type="application/json")
    assert response.status_code == 200, response.content
    cache.clear()  # the address's cool-down and the rate limit: the fuzz starts afresh
    return response.json()["code_id"], code_in_mail(mailoutbox[-1])


def realistic(path: str, apps: dict[str, ClientApp], code: tuple[str, str]) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies a real client could send to ``path``: a real client_id (with its secret or a wrong one),
    real-looking e-mails, the right password or a wrong one, a real code_id."""
    client = st.sampled_from(list(apps.values())).flatmap(lambda app: st.sampled_from([
        {"client_id": app.client_id},
        {"client_id": app.client_id, "client_secret": app.client_secret or "x"},
        {"client_id": app.client_id, "client_secret": "wrong"},
    ]))
    if path == LOGIN_BY_PASSWORD:
        fields = st.fixed_dictionaries({"email": st.sampled_from(EMAILS),
                                        "password": st.sampled_from([PASSWORD, "wrong password", ""])})
    elif path == SEND_CODE:
        fields = st.one_of(st.fixed_dictionaries({"email": st.sampled_from(EMAILS) | st.emails()}),
                           st.fixed_dictionaries({"phone_number": st.sampled_from(["+15551234567", "12"])}),
                           st.fixed_dictionaries({"data_2fa": st.text(min_size=1, max_size=20)}))
    elif path == LOGIN:
        fields = st.fixed_dictionaries({"code_id": st.sampled_from([code[0], "unknown"]),
                                        "code": st.sampled_from([code[1], "000000", "x"])})
    else:
        fields = st.fixed_dictionaries({"data_2fa": st.sampled_from(["unknown", "4kqvN"]),
                                        "code": st.sampled_from(["123456", ""]),
                                        "method": st.sampled_from(["totp", "backup_code", "email_code"])})
    return st.builds(lambda one, other: {**one, **other}, client, fields)


def known_answers(operation: Any, path: str, apps: dict[str, ClientApp], code: tuple[str, str], seen: Counter[int]) -> None:
    """The answers the fuzz must reach, called once each before it (the fuzz's own draws depend on the
    schema, so they may miss one): the app not allowed the headless API (403), an unknown
    X-Authenticator (404), and for the sign-in operations the right credentials (200). Each answer is
    validated against the schema like the fuzz's."""
    public = {"client_id": apps["public"].client_id}
    fields = {LOGIN_BY_PASSWORD: {"email": "alice@example.com", "password": PASSWORD},
              SEND_CODE: {"email": "alice@example.com"}, LOGIN: {"code_id": code[0], "code": code[1]},
              CHECK_CODE: {"data_2fa": "unknown", "code": "123456", "method": "totp"}}[path]
    calls = [({"client_id": apps["not_headless"].client_id, **fields}, {}),
             ({**public, **fields}, {"X-Authenticator": "no-such-method"})]
    if path != CHECK_CODE:
        calls.append(({**public, **fields}, {}))
    for body, headers in calls:
        with open_connection():
            response = operation.Case(body=body, headers=headers, media_type="application/json").call()
        seen[response.status_code] += 1
        operation.Case(body=body, headers=headers, media_type="application/json").validate_response(response, checks=CHECKS)
    cache.clear()  # the cool-downs and rate limits those calls counted: the fuzz starts afresh


def fuzz(operation: Any, bodies: st.SearchStrategy[dict[str, Any]], seen: Counter[int]) -> None:
    count = 0

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(), how=st.sampled_from(["realistic", "generated", "real client", "realistic"]),
           body=bodies, authenticator=st.sampled_from(AUTHENTICATORS))
    def run(case: Any, how: str, body: dict[str, Any], authenticator: str | None) -> None:
        nonlocal count
        count += 1
        if count % RATE_WINDOW == 0:
            cache.clear()
        if how == "real client" and isinstance(case.body, dict):
            case.body = {**case.body, "client_id": body["client_id"]}
        elif how == "realistic":
            case.body = body
            if "X-Authenticator" in (case.headers or {}) or authenticator is not None:
                case.headers = {**(case.headers or {}), **({"X-Authenticator": authenticator} if authenticator else {})}
        with open_connection():
            response = case.call()
        seen[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    run()


@pytest.mark.parametrize("path", OPERATIONS)
def test_the_fuzz_finds_no_500_and_no_answer_outside_the_schema(path, schema, apps, user, mail_code, mailoutbox,
                                                                monkeypatch):
    # The limit stays 30 per IP and endpoint, its window an hour: a busy machine's run crossing a
    # minute's boundary must not reset the count the 429s are counted on.
    monkeypatch.setattr(risk, "api_rate_window", lambda: 3600)
    seen: Counter[int] = Counter()
    code = real_code_id(apps, mailoutbox)
    known_answers(schema[path]["POST"], path, apps, code, seen)
    fuzz(schema[path]["POST"], realistic(path, apps, code), seen)
    assert sum(seen.values()) >= EXAMPLES_PER_OPERATION
    assert 500 not in seen
    # Not only the 401 path: past client authentication to the operation's own answers, the app not
    # allowed the headless API (403), and the rate limit (429).
    assert {400, 401, 403, 429} <= set(seen), seen
    if path != CHECK_CODE:  # check-code's 200 needs a live Data2fa and a TOTP: test_auth_api drives it
        assert 200 in seen, seen  # alice's password, a code sent, the real code_id
        assert 404 in seen, seen  # an unknown X-Authenticator


# -- the schema itself -------------------------------------------------------------------------------------
def test_every_answer_of_the_four_operations_is_documented_with_an_example(client, db):
    document = client.get(SCHEMA_URL).json()
    loaded = schemathesis.openapi.from_dict(document)
    results = list(loaded.get_all_operations())  # an operation it cannot read is an Err
    assert all(isinstance(result, Ok) for result in results), [result.err() for result in results
                                                               if not isinstance(result, Ok)]
    assert {result.ok().path for result in results if isinstance(result, Ok)} >= set(OPERATIONS)
    for path in OPERATIONS:
        responses = document["paths"][path]["post"]["responses"]
        expected = {"200", "400", "401", "403", "429"} | ({"404"} if path != CHECK_CODE else set())
        assert expected <= set(responses), (path, sorted(responses))
        for status, response in responses.items():
            media = response["content"]["application/json"]
            assert media.get("examples"), (path, status)
            for example in media["examples"].values():
                if status != "200":  # SPEC's error shape: one top-level key naming the kind
                    (kind, detail), = example["value"].items()
                    assert detail["code"] and detail["message"], (path, status, example)


def test_a_nested_field_error_is_named_by_its_path_in_specs_shape(client, apps):
    """The fuzz's first find: a captcha object's own field errors came back nested
    (``{"captcha": {"id": [...]}}``), outside SPEC's ``fields: {name: [message]}``."""
    body = {"client_id": apps["public"].client_id, "email": "alice@example.com", "password": PASSWORD,
            "captcha": {"id": 7, "answer": "x", "extra": True}}
    response = client.post(LOGIN_BY_PASSWORD, json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    fields = response.json()["validation"]["fields"]
    assert fields == {"captcha.extra": ["Unknown field."]}, fields
    assert all(isinstance(messages, list) and all(isinstance(m, str) for m in messages) for messages in fields.values())
