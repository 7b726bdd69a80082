"""SPEC §7: one log line per request with a request id, and never a secret, code, token or password
in any log line. The main flows run here with every record captured at DEBUG as LOG_FORMAT=json
writes it; every secret that went over the wire is then looked for in the lines."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from identity.logs import JsonFormatter, RequestIdFilter
from tests.helpers import PASSWORD, authorize_params, make_application, pkce_pair, query_of, sign_in_url_from
from tests.servers import ROOT

pytestmark = pytest.mark.django_db

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CODE_ID = re.compile(r'name="code_id" value="([^"]+)"')
REQUEST_ID = re.compile(r"[0-9a-f]{32}\Z")
WRONG_PASSWORD = "wrong horse battery staple 42"


class Lines(logging.Handler):
    """Every record, formatted as the JSON log writes it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())
        self.addFilter(RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def json_lines(caplog: Any) -> Iterator[Lines]:
    caplog.set_level(logging.DEBUG)  # the root logger at DEBUG for this test (put back afterwards)
    handler = Lines()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


class Browser:
    """A browser whose forms carry the CSRF token (the test client then checks it, as Django does),
    remembering every response and every secret it saw."""

    def __init__(self, secrets: set[str]) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.responses: list[Any] = []
        self.secrets = secrets

    def seen(self, response: Any) -> Any:
        self.responses.append(response)
        for name in ("sessionid", "csrftoken"):
            if name in self.client.cookies and self.client.cookies[name].value:
                self.secrets.add(self.client.cookies[name].value)
        content = getattr(response, "content", b"").decode(errors="replace")
        self.secrets.update(CSRF_INPUT.findall(content))
        if response.get("Content-Type", "").startswith("application/json"):
            body = response.json()
            for key in ("access_token", "refresh_token", "id_token"):
                if isinstance(body, dict) and body.get(key):
                    self.secrets.add(body[key])
        return response

    def get(self, path: str, data: Any = None, **extra: Any) -> Any:
        return self.seen(self.client.get(path, data, **extra))

    def form(self, url: str, data: dict[str, str], page: str | None = None) -> Any:
        page = page if page is not None else self.get(url).content.decode()
        token = CSRF_INPUT.search(page)
        assert token, page[:500]
        return self.seen(self.client.post(url, {**data, "csrfmiddlewaretoken": token.group(1)}))

    def post(self, path: str, data: Any, **extra: Any) -> Any:
        return self.seen(self.client.post(path, data, **extra))


def test_no_secret_of_the_main_flows_reaches_a_log_line(json_lines, user, mail_code):
    app = make_application(headless=True)
    assert app.client_secret
    secrets = {PASSWORD, WRONG_PASSWORD, app.client_secret}
    browser = Browser(secrets)

    # A wrong password, then the right one: the hosted sign-in of an authorization code flow with PKCE.
    verifier, challenge = pkce_pair()
    secrets.add(verifier)
    params = authorize_params(app, challenge)
    url = sign_in_url_from(browser.get("/oauth/authorize", params))
    wrong = browser.form(url, {"identifier": "alice", "password": WRONG_PASSWORD, "authenticator": "password"})
    assert wrong.status_code == 400
    signed_in = browser.form(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"},
                             page=wrong.content.decode())
    assert signed_in.status_code == 303, signed_in.content[:500]
    redirect = browser.get(signed_in["Location"])
    code = query_of(redirect["Location"])["code"]
    secrets.add(code)

    # The confidential client redeems the code (client_secret in the body), reads userinfo, refreshes.
    tokens = browser.post("/oauth/token", {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                           "redirect_uri": params["redirect_uri"], "client_id": app.client_id,
                                           "client_secret": app.client_secret})
    assert tokens.status_code == 200, tokens.content
    assert browser.get("/oauth/userinfo", HTTP_AUTHORIZATION="Bearer " + tokens.json()["access_token"]).status_code == 200
    refreshed = browser.post("/oauth/token", {"grant_type": "refresh_token", "refresh_token": tokens.json()["refresh_token"],
                                              "client_id": app.client_id, "client_secret": app.client_secret})
    assert refreshed.status_code == 200, refreshed.content

    # A sign-in by a code sent by e-mail, in another browser.
    other = Browser(secrets)
    url = sign_in_url_from(other.get("/oauth/authorize", authorize_params(app)))
    sent = other.form(f"{url}?authenticator=email-code", {"authenticator": "email-code", "action": "send",
                                                          "email": "alice@example.com"})
    assert sent.status_code == 303 and len(mail.outbox) == 1
    mailed = re.search(r"\b(\d{6})\b", mail.outbox[0].body)
    assert mailed
    secrets.add(mailed.group(1))
    page = other.get(sent["Location"]).content.decode()
    code_id = CODE_ID.search(page)
    assert code_id
    entered = other.form(f"{url}?authenticator=email-code", {"authenticator": "email-code", "code_id": code_id.group(1),
                                                             "code": mailed.group(1)}, page=page)
    assert entered.status_code == 303, entered.content[:500]
    other.get(entered["Location"])

    # The headless API's password login (JSON: client_secret and password in the body).
    api = Browser(secrets)
    headless = api.post("/api/authorization/login-by-password", json.dumps(
        {"client_id": app.client_id, "client_secret": app.client_secret, "email": "alice@example.com",
         "password": PASSWORD}), content_type="application/json")
    assert headless.status_code == 200, headless.content

    responses = browser.responses + other.responses + api.responses
    assert len([s for s in secrets if len(s) >= 6]) >= 14, secrets  # the tokens, codes, cookies and passwords
    leaked = sorted({secret for secret in secrets for line in json_lines.lines if secret in line})
    if leaked:  # not an assert: its report would print the secrets in full
        pytest.fail("in the log: " + ", ".join(f"{secret[:4]}…" for secret in leaked))

    # One access line per request, each with its request id (the response's X-Request-ID), status and path.
    entries = json_lines.entries()
    access = [entry for entry in entries if entry["logger"] == "portcullis.request"]
    assert len(access) == len(responses)
    assert [entry["request_id"] for entry in access] == [response["X-Request-ID"] for response in responses]
    assert len({entry["request_id"] for entry in access}) == len(access)
    for entry, response in zip(access, responses, strict=True):
        assert REQUEST_ID.match(entry["request_id"]) and entry["status"] == response.status_code
        assert entry["path"].startswith("/") and "?" not in entry["path"] and entry["ip"] == "127.0.0.1"
        assert set(entry) <= {"time", "level", "logger", "message", "request_id", "method", "path", "status",
                              "duration_ms", "ip", "user_id"}
    assert {entry["path"] for entry in access} >= {"/oauth/authorize", "/oauth/token", "/oauth/userinfo",
                                                   "/api/authorization/login-by-password"}
    assert any(entry.get("user_id") == user.pk for entry in access)  # a signed-in browser's request
    assert "user_id" not in access[0]  # before anyone signed in
    # A record written while a request was handled carries that request's id.
    delivered = [entry for entry in entries if entry["logger"] == "portcullis.delivery"]
    assert delivered and delivered[0]["request_id"] == sent["X-Request-ID"]


@pytest.mark.parametrize("incoming", ["abc-123.X_y", "A" * 128])
def test_a_sane_request_id_round_trips(client, json_lines, incoming):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)
    assert response["X-Request-ID"] == incoming
    access = [entry for entry in json_lines.entries() if entry["logger"] == "portcullis.request"]
    assert [entry["request_id"] for entry in access] == [incoming]


@pytest.mark.parametrize("incoming", ["", "two words", "A" * 129, "ünïcode", "a\nb", "id;drop", "<script>"])
def test_a_bad_request_id_is_replaced(client, json_lines, incoming):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)
    replaced = response["X-Request-ID"]
    assert replaced != incoming and REQUEST_ID.match(replaced)
    access = [entry for entry in json_lines.entries() if entry["logger"] == "portcullis.request"]
    assert [entry["request_id"] for entry in access] == [replaced]


def test_the_error_line_django_writes_after_the_middleware_carries_the_request_id(client, json_lines, settings):
    from tests.servers import free_port

    settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    response = client.get("/readyz")
    assert response.status_code == 503
    errors = [entry for entry in json_lines.entries() if entry["logger"] == "django.request"]
    assert [entry["request_id"] for entry in errors] == [response["X-Request-ID"]]
    assert [entry["request_id"] for entry in json_lines.entries() if entry["logger"] == "portcullis.operations"] == [
        response["X-Request-ID"]]
    logging.getLogger("after").warning("between requests")
    assert json_lines.entries()[-1]["request_id"] is None


def test_a_path_with_a_newline_stays_one_text_line(client, json_lines):
    client.get("/no/such%0Apage")
    access = [entry for entry in json_lines.entries() if entry["logger"] == "portcullis.request"]
    assert access[0]["path"] == "/no/such\npage" and "\n" not in access[0]["message"]


def test_log_format_is_text_or_json():
    env = {**os.environ, "LOG_FORMAT": "xml", "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "-c", "import config.settings"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "LOG_FORMAT must be text or json" in result.stderr
