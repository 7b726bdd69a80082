"""The Experience API (SPEC §2's table) driven as a custom sign-in UI drives it: a plain HTTP client
with Django's CSRF enforced, JSON bodies, the session cookie. Each flow ends with a code at the
client's redirect URI exchanged for tokens; every error answers in SPEC's error shape."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from authenticators.models import Authenticator
from authenticators.types import backup_code
from experience.errors import EngineError
from experience.models import AuditEvent, Interaction
from experience.policy import MfaPolicy, Policy
from identity.models import Profile
from tests.helpers import (
    PASSWORD,
    REDIRECT_URI,
    authorize_params,
    code_in_mail,
    give_totp,
    jwt_payload,
    make_application,
    pkce_pair,
    query_of,
    totp_now,
)

API = "/api/experience/"


# -- a client as a sign-in UI is ------------------------------------------------------------------------
class Api:
    """JSON requests with the CSRF header taken from the cookie, as a browser's script sends them."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def token(self) -> str:
        cookie = self.client.cookies.get("csrftoken")
        return cookie.value if cookie is not None else ""

    def get(self, path: str, **params: str) -> Any:
        return self.client.get(path, params)

    def send(self, method: str, path: str, body: Any = None, *, csrf: bool | str = True, raw: str | bytes | None = None,
             content_type: str = "application/json") -> Any:
        data = raw if raw is not None else ("" if body is None else json.dumps(body))
        token = csrf if isinstance(csrf, str) else self.token()
        headers = {"X-CSRFToken": token} if csrf else {}
        return getattr(self.client, method)(path, data, content_type=content_type, headers=headers)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.send("post", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.send("put", path, body, **kwargs)

    def start(self, event: str = "sign_in", next_url: str = "") -> dict[str, Any]:
        if not self.token():
            assert self.get(API + "config").status_code == 200  # a GET sets the CSRF cookie
        response = self.post(API, {"event": event, "next": next_url})
        assert response.status_code == 201, response.content
        return response.json()

    def step(self, uid: str, name: str, body: Any = None, status: int = 200) -> dict[str, Any]:
        response = self.post(f"{API}{uid}/{name}", body)
        assert response.status_code == status, response.content
        return response.json()


def error(response: Any, status: int, kind: str, code: str) -> dict[str, Any]:
    """SPEC's error shape: the status, one top-level key naming the kind, a code and a message."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == [kind], body
    assert body[kind]["code"] == code, body
    assert isinstance(body[kind]["message"], str) and body[kind]["message"]
    return body[kind]


@pytest.fixture
def api(db: Any) -> Api:
    return Api(Client(enforce_csrf_checks=True))


# -- the built-in methods ------------------------------------------------------------------------------------
@pytest.fixture
def email_code(mail_code: Authenticator, password_authenticator: Any, mailoutbox: list[Any]) -> Authenticator:
    """The built-in ``email-code`` method: its codes arrive in Django's mail outbox."""
    return mail_code


def mailed_code(mailoutbox: list[Any]) -> str:
    """The code of the last e-mail sent."""
    return code_in_mail(mailoutbox[-1])


def other_than(code: str) -> str:
    """A code that is not ``code`` (nor the TOTP codes of the steps beside it, but by a 1 in 10^5 chance)."""
    return f"{(int(code) + 1) % 10**6:06d}"


@pytest.fixture
def policy(monkeypatch: Any) -> Any:
    """Set the experience every application gets: ``policy(**fields)``."""
    def use(**fields: Any) -> Policy:
        chosen = Policy(**fields)
        monkeypatch.setattr("experience.policy.resolve", lambda client_id: Policy(client_id=client_id, **fields))
        return chosen

    return use


def authorize_url(app: Any, challenge: str) -> tuple[str, dict[str, str]]:
    params = authorize_params(app, challenge)
    return "/oauth/authorize?" + urlencode(params), params


def code_at_redirect_uri(client: Client, redirect_to: str, params: dict[str, str]) -> str:
    """Follow submit's ``redirect_to`` (the resumed authorization request) to the client's redirect URI."""
    assert urlsplit(redirect_to).path == "/oauth/authorize", redirect_to
    response = client.get(redirect_to)
    assert response.status_code == 302, response.content
    location = response["Location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    query = query_of(location)
    assert query["state"] == params["state"]
    return query["code"]


def exchange(client: Client, app: Any, code: str, verifier: str) -> dict[str, Any]:
    response = client.post("/oauth/token", {
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "client_id": app.client_id,
        "client_secret": app.client_secret, "code_verifier": verifier})
    assert response.status_code == 200, response.content
    return response.json()


# -- flows ---------------------------------------------------------------------------------------------------
def test_password_sign_in_through_the_api_ends_with_tokens(api, confidential_app, user):
    verifier, challenge = pkce_pair()
    url, params = authorize_url(confidential_app, challenge)

    state = api.start(next_url=url)  # an authorization request on this site: the interaction is tied to it
    assert state["event"] == "sign_in" and state["identified"] is False
    assert state["application"] == {"client_id": confidential_app.client_id, "name": "Relying party"}
    assert state["next_step"] == "identify" and state["methods"] == ["password", "email-code"]
    assert state["verifications"] == []

    state = api.step(state["id"], "password", {"identifier": "alice", "password": PASSWORD})
    assert state["identified"] is True and state["next_step"] == "submit" and state["methods"] == []
    assert [v["method"] for v in state["verifications"]] == ["password"]

    redirect_to = api.step(state["id"], "submit")["redirect_to"]
    code = code_at_redirect_uri(api.client, redirect_to, params)
    claims = jwt_payload(exchange(api.client, confidential_app, code, verifier)["id_token"])
    assert claims["amr"] == ["pwd"] and claims["aud"] == confidential_app.client_id
    assert claims["nonce"] == params["nonce"]


def test_the_api_over_http_with_requests(live_server, transactional_db, user):
    """A real HTTP client against the running server: cookies, the CSRF header, JSON, redirects."""
    app = make_application()
    base, http = live_server.url, requests.Session()
    verifier, challenge = pkce_pair()
    url, params = authorize_url(app, challenge)

    config = http.get(f"{base}{API}config", params={"client_id": app.client_id}, timeout=10)
    assert config.status_code == 200 and config.json()["branding"]["display_name"] == "Relying party"
    csrf = {"X-CSRFToken": http.cookies["csrftoken"]}
    refused = http.post(f"{base}{API}", json={"event": "sign_in", "next": url}, timeout=10)
    assert refused.status_code == 403 and refused.json()["forbidden"]["code"] == "csrf_failed"

    started = http.post(f"{base}{API}", json={"event": "sign_in", "next": url}, headers=csrf, timeout=10)
    assert started.status_code == 201, started.text
    uid = started.json()["id"]
    identified = http.post(f"{base}{API}{uid}/password", json={"identifier": "alice", "password": PASSWORD},
                           headers=csrf, timeout=10)
    assert identified.status_code == 200 and identified.json()["next_step"] == "submit", identified.text
    submitted = http.post(f"{base}{API}{uid}/submit", headers=csrf, timeout=10)
    assert submitted.status_code == 200, submitted.text

    resumed = http.get(base + submitted.json()["redirect_to"], allow_redirects=False, timeout=10)
    assert resumed.status_code == 302 and resumed.headers["Location"].startswith(REDIRECT_URI + "?")
    query = query_of(resumed.headers["Location"])
    assert query["state"] == params["state"]
    tokens = requests.post(f"{base}/oauth/token", data={
        "grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier}, auth=(app.client_id, app.client_secret or ""), timeout=10)
    assert tokens.status_code == 200, tokens.text
    assert jwt_payload(tokens.json()["id_token"])["amr"] == ["pwd"]


def test_a_wrong_password_is_a_key_error_and_changes_nothing(api, user):
    state = api.start()
    answer = error(api.post(f"{API}{state['id']}/password", {"identifier": "alice", "password": "wrong"}),
                   400, "key", "invalid_credentials")
    assert set(answer) == {"code", "message"}
    again = api.get(f"{API}{state['id']}").json()
    assert again["identified"] is False and again["verifications"] == [] and again["next_step"] == "identify"
    assert AuditEvent.objects.filter(kind=AuditEvent.SIGN_IN_FAILED, identifier="alice").exists()


def test_a_local_next_is_where_submit_sends_the_browser(api, user):
    state = api.start(next_url="/account/connected-apps/")
    assert state["application"] is None
    api.step(state["id"], "password", {"identifier": "alice", "password": PASSWORD})
    assert api.step(state["id"], "submit") == {"redirect_to": "/account/connected-apps/"}


def test_a_next_on_another_site_is_never_where_the_browser_goes(api, user):
    state = api.start(next_url="https://evil.example/steal")
    api.step(state["id"], "password", {"identifier": "alice", "password": PASSWORD})
    assert api.step(state["id"], "submit") == {"redirect_to": "/"}


def test_an_absolute_authorization_url_of_this_site_ties_the_interaction_too(api, confidential_app, user):
    verifier, challenge = pkce_pair()
    url, params = authorize_url(confidential_app, challenge)
    state = api.start(next_url=f"http://testserver{url}&resume=forged")
    assert state["application"]["client_id"] == confidential_app.client_id
    assert "resume" not in query_of("?" + Interaction.objects.get(uid=state["id"]).state["authorize"])
    api.step(state["id"], "password", {"identifier": "alice", "password": PASSWORD})
    code = code_at_redirect_uri(api.client, api.step(state["id"], "submit")["redirect_to"], params)
    assert exchange(api.client, confidential_app, code, verifier)["token_type"] == "Bearer"


def test_an_authorization_url_of_another_site_does_not_tie_the_interaction(api, confidential_app, user):
    url, _params = authorize_url(confidential_app, pkce_pair()[1])
    state = api.start(next_url=f"https://evil.example{url}")
    assert state["application"] is None


def test_a_next_authorization_request_of_an_unknown_application_is_refused(api, db):
    api.get(API + "config")
    response = api.post(API, {"event": "sign_in", "next": "/oauth/authorize?client_id=nobody&response_type=code"})
    answer = error(response, 400, "validation", "invalid")
    assert list(answer["fields"]) == ["next"]
    assert not Interaction.objects.exists()


def test_an_authorization_request_with_a_custom_sign_in_url_goes_to_that_page(api, confidential_app, user, policy):
    policy(sign_in_url="/my-sign-in/?theme=dark")
    verifier, challenge = pkce_pair()
    url, params = authorize_url(confidential_app, challenge)

    response = api.client.get(url)
    assert response.status_code == 303
    location = urlsplit(response["Location"])
    assert location.path == "/my-sign-in/" and not location.netloc
    query = query_of(response["Location"])
    assert query["theme"] == "dark"
    uid = query["interaction"]

    state = api.get(f"{API}{uid}").json()  # the custom page drives the same interaction over the API
    assert state["application"]["client_id"] == confidential_app.client_id and state["next_step"] == "identify"
    api.step(uid, "password", {"identifier": "alice", "password": PASSWORD})
    code = code_at_redirect_uri(api.client, api.step(uid, "submit")["redirect_to"], params)
    assert jwt_payload(exchange(api.client, confidential_app, code, verifier)["id_token"])["amr"] == ["pwd"]


@pytest.mark.parametrize("sign_in_url", ["https://evil.example/sign-in", "//evil.example/sign-in", "/\\evil.example",
                                         "sign-in", "/ok\x00"])
def test_a_sign_in_url_off_this_site_is_never_followed(api, confidential_app, user, policy, sign_in_url):
    policy(sign_in_url=sign_in_url)
    response = api.client.get(authorize_url(confidential_app, pkce_pair()[1])[0])
    assert response.status_code == 303
    assert re.fullmatch(r"/sign-in/[^/]+/", response["Location"]), response["Location"]


def test_code_sign_in_through_the_api(api, confidential_app, user, email_code, mailoutbox):
    Profile.objects.filter(user=user).update(email_verified=False)  # the code proves the address
    verifier, challenge = pkce_pair()
    url, params = authorize_url(confidential_app, challenge)
    state = api.start(next_url=url)
    assert state["methods"] == ["password", "email-code"]

    sent = api.step(state["id"], "code", {"email": "alice@example.com"})
    assert set(sent) == {"code_id", "timeout", "resend_after"}
    assert sent["timeout"] == 600 and sent["resend_after"] == 60
    assert mailoutbox[-1].to == ["Alice@example.com"]  # the account's own spelling
    code = mailed_code(mailoutbox)

    error(api.post(f"{API}{state['id']}/code/verify", {"code_id": sent["code_id"], "code": other_than(code)}),
          400, "key", "invalid_code")
    state = api.step(state["id"], "code/verify", {"code_id": sent["code_id"], "code": code})
    assert state["identified"] is True and state["next_step"] == "submit"
    assert [v["method"] for v in state["verifications"]] == ["email-code"]

    code_at_redirect = code_at_redirect_uri(api.client, api.step(state["id"], "submit")["redirect_to"], params)
    claims = jwt_payload(exchange(api.client, confidential_app, code_at_redirect, verifier)["id_token"])
    assert claims["amr"] == ["otp"] and claims["email_verified"] is True


def test_a_second_code_during_the_cool_down_is_rate_limited(api, user, email_code, mailoutbox):
    state = api.start()
    api.step(state["id"], "code", {"email": "alice@example.com"})
    response = api.post(f"{API}{state['id']}/code", {"email": "alice@example.com"})
    answer = error(response, 429, "rate_limited", "too_many_requests")
    assert 0 < answer["retry_after"] <= 60 and response["Retry-After"] == str(answer["retry_after"])
    assert len(mailoutbox) == 1


def test_an_unknown_address_gets_the_same_answer_and_nothing_is_sent(api, user, email_code, mailoutbox):
    state = api.start()
    known = api.step(state["id"], "code", {"email": "alice@example.com"})
    unknown = api.step(state["id"], "code", {"email": "nobody@example.com"})
    assert set(unknown) == set(known) and (unknown["timeout"], unknown["resend_after"]) == (known["timeout"], known["resend_after"])
    assert [message.to for message in mailoutbox] == [["Alice@example.com"]]


def test_a_code_of_another_interaction_is_an_invalid_code(api, user, email_code, mailoutbox):
    first, second = api.start(), api.start()
    sent = api.step(first["id"], "code", {"email": "alice@example.com"})
    code = mailed_code(mailoutbox)
    error(api.post(f"{API}{second['id']}/code/verify", {"code_id": sent["code_id"], "code": code}), 400, "key", "invalid_code")
    assert api.get(f"{API}{second['id']}").json()["identified"] is False
    state = api.step(first["id"], "code/verify", {"code_id": sent["code_id"], "code": code})  # not spent
    assert state["identified"] is True


def test_a_code_is_used_once(api, user, email_code, mailoutbox):
    state = api.start()
    sent = api.step(state["id"], "code", {"email": "alice@example.com"})
    body = {"code_id": sent["code_id"], "code": mailed_code(mailoutbox)}
    api.step(state["id"], "code/verify", body)
    other = api.start()
    error(api.post(f"{API}{state['id']}/code/verify", body), 400, "key", "invalid_code")
    error(api.post(f"{API}{other['id']}/code/verify", body), 400, "key", "invalid_code")


@pytest.mark.parametrize("body", [{}, {"email": "alice@example.com", "channel": "email"}, {"channel": "fax"},
                                  {"email": ["alice@example.com"]}, {"phone_number": 5551234567}])
def test_a_code_request_names_one_address_or_channel(api, user, email_code, mailoutbox, body):
    state = api.start()
    error(api.post(f"{API}{state['id']}/code", body), 400, "validation", "invalid")
    assert mailoutbox == []


def test_a_method_the_application_does_not_offer_is_refused(api, user, email_code, mailoutbox, policy):
    policy(authenticators=("password",))
    state = api.start()
    error(api.post(f"{API}{state['id']}/code", {"email": "alice@example.com"}), 403, "forbidden", "method_disabled")
    assert mailoutbox == []


# -- the gates, answered in order ---------------------------------------------------------------------------
def test_a_second_factor_is_asked_for_and_added(api, confidential_app, user, second_factors):
    give_totp(user)
    backup_code.replace_codes(user)
    verifier, challenge = pkce_pair()
    url, params = authorize_url(confidential_app, challenge)
    state = api.start(next_url=url)

    error(api.post(f"{API}{state['id']}/totp", {"code": totp_now()}), 400, "requirement", "identify")  # too early
    requirement = error(api.post(f"{API}{state['id']}/submit"), 400, "requirement", "identify")
    assert requirement["methods"] == ["password", "email-code"]

    state = api.step(state["id"], "password", {"identifier": "alice", "password": PASSWORD})
    assert state["identified"] is True
    assert state["next_step"] == "second_factor_required" and state["methods"] == ["totp", "backup_code", "email_code"]
    requirement = error(api.post(f"{API}{state['id']}/submit"), 400, "requirement", "second_factor_required")
    assert requirement["methods"] == ["totp", "backup_code", "email_code"]

    error(api.post(f"{API}{state['id']}/totp", {"code": other_than(totp_now())}), 400, "key", "invalid_code")
    state = api.step(state["id"], "totp", {"code": totp_now()})
    assert state["next_step"] == "submit"
    assert [v["method"] for v in state["verifications"]] == ["password", "totp"]

    code = code_at_redirect_uri(api.client, api.step(state["id"], "submit")["redirect_to"], params)
    claims = jwt_payload(exchange(api.client, confidential_app, code, verifier)["id_token"])
    assert claims["amr"] == ["mfa", "otp", "pwd"] and claims["acr"] == "urn:portcullis:acr:2fa"


def test_a_backup_code_is_a_second_factor(api, user, second_factors):
    codes = backup_code.replace_codes(user)
    state = api.start()
    api.step(state["id"], "password", {"identifier": "alice", "password": PASSWORD})
    state = api.step(state["id"], "backup-code", {"code": codes[0]})
    assert state["next_step"] == "submit"
    assert [v["method"] for v in state["verifications"]] == ["password", "backup_code"]


def test_a_factor_the_policy_leaves_out_is_refused(api, user, second_factors, policy):
    policy(mfa=MfaPolicy(policy="optional", factors=("backup_code",)))
    give_totp(user)
    state = api.start()
    api.step(state["id"], "password", {"identifier": "alice", "password": PASSWORD})
    error(api.post(f"{API}{state['id']}/totp", {"code": totp_now()}), 403, "forbidden", "method_disabled")


def test_a_demanded_captcha_is_the_first_gate(api, user):
    state = api.start()
    interaction = Interaction.objects.get(uid=state["id"])
    interaction.state["captcha"] = {"required": True, "passed": False}
    interaction.save()
    state = api.get(f"{API}{state['id']}").json()
    assert state["next_step"] == "captcha_required" and state["methods"] == ["captcha"]
    error(api.post(f"{API}{state['id']}/submit"), 400, "requirement", "captcha_required")


def test_the_event_can_change(api, user):
    state = api.start()
    api.step(state["id"], "password", {"identifier": "alice", "password": PASSWORD})
    response = api.put(f"{API}{state['id']}/event", {"event": "forgot_password"})
    assert response.status_code == 200, response.content
    state = response.json()
    assert state["event"] == "forgot_password"
    assert state["identified"] is False and state["verifications"] == []  # nothing carries over
    assert api.put(f"{API}{state['id']}/event", {"event": "sign_up"}).json()["event"] == "sign_up"
    answer = error(api.put(f"{API}{state['id']}/event", {"event": "delete_account"}), 400, "validation", "invalid")
    assert list(answer["fields"]) == ["event"]


def test_an_unknown_event_does_not_start_an_interaction(api, db):
    api.get(API + "config")
    answer = error(api.post(API, {"event": "delete_account"}), 400, "validation", "invalid")
    assert list(answer["fields"]) == ["event"]
    assert not Interaction.objects.exists()


# -- the interaction's own errors -----------------------------------------------------------------------------
INTERACTION_STEPS = ["password", "code", "code/verify", "totp", "backup-code", "profile", "mfa/totp",
                     "mfa/totp/confirm", "mfa/backup-codes", "submit"]


@pytest.mark.parametrize("name", INTERACTION_STEPS)
def test_an_unknown_interaction_is_not_found_on_every_step(api, db, name):
    api.get(API + "config")
    error(api.post(f"{API}no-such-interaction/{name}", {}), 404, "interaction", "not_found")


def test_an_unknown_interaction_is_not_found(api, db):
    error(api.get(f"{API}no-such-interaction"), 404, "interaction", "not_found")
    api.get(API + "config")
    error(api.put(f"{API}no-such-interaction/event", {"event": "sign_up"}), 404, "interaction", "not_found")


def test_another_browsers_interaction_is_not_found(api, user):
    state = api.start()
    stranger = Api(Client(enforce_csrf_checks=True))
    stranger.get(API + "config")
    error(stranger.get(f"{API}{state['id']}"), 404, "interaction", "not_found")
    error(stranger.post(f"{API}{state['id']}/password", {"identifier": "alice", "password": PASSWORD}),
          404, "interaction", "not_found")
    assert api.get(f"{API}{state['id']}").json()["identified"] is False


def test_an_expired_interaction_is_gone(api, user):
    state = api.start()
    Interaction.objects.filter(uid=state["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    error(api.get(f"{API}{state['id']}"), 410, "interaction", "expired")
    error(api.post(f"{API}{state['id']}/password", {"identifier": "alice", "password": PASSWORD}),
          410, "interaction", "expired")


def test_a_completed_interaction_is_gone(api, user):
    state = api.start()
    api.step(state["id"], "password", {"identifier": "alice", "password": PASSWORD})
    api.step(state["id"], "submit")
    error(api.get(f"{API}{state['id']}"), 410, "interaction", "completed")
    error(api.post(f"{API}{state['id']}/submit"), 410, "interaction", "completed")


# -- requests that are not what the API reads ------------------------------------------------------------------
def test_an_unsafe_request_without_the_csrf_header_is_refused(api, user):
    state = api.start()
    response = api.post(f"{API}{state['id']}/password", {"identifier": "alice", "password": PASSWORD}, csrf=False)
    error(response, 403, "forbidden", "csrf_failed")
    assert api.get(f"{API}{state['id']}").json()["identified"] is False
    error(api.post(API, {"event": "sign_in"}, csrf=False), 403, "forbidden", "csrf_failed")
    error(api.put(f"{API}{state['id']}/event", {"event": "sign_up"}, csrf=False), 403, "forbidden", "csrf_failed")
    error(api.post(f"{API}{state['id']}/submit", csrf="x" * 32), 403, "forbidden", "csrf_failed")  # not the cookie's


def test_every_get_sets_the_csrf_cookie(db):
    client = Client(enforce_csrf_checks=True)
    assert "csrftoken" in client.get(API + "config").cookies
    fresh = Client(enforce_csrf_checks=True)
    assert "csrftoken" in fresh.get(f"{API}unknown").cookies  # errors too


def bad_request(api: Api, uid: str, **kwargs: Any) -> dict[str, Any]:
    response = api.post(f"{API}{uid}/password", **kwargs)
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["validation"], body
    assert api.get(f"{API}{uid}").json()["verifications"] == []  # nothing changed
    return body["validation"]


@pytest.mark.parametrize(("content_type", "raw"), [
    ("application/x-www-form-urlencoded", f"identifier=alice&password={PASSWORD}"),
    ("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=identifier\r\n\r\nalice\r\n--x--\r\n"),
    ("text/plain", json.dumps({"identifier": "alice", "password": PASSWORD})),
])
def test_a_body_that_is_not_json_is_refused(api, user, content_type, raw):
    state = api.start()
    assert bad_request(api, state["id"], raw=raw, content_type=content_type)["code"] == "unsupported_media_type"


@pytest.mark.parametrize("raw", ["{", "[]", '"alice"', "1", "null", '{"identifier": NaN}', "[" * 5000 + "]" * 5000,
                                 '{"identifier": "\\ud800", "password": "x"}', b"\xff\xfe{}"])
def test_a_malformed_body_is_refused(api, user, raw):
    state = api.start()
    assert bad_request(api, state["id"], raw=raw)["code"] == "malformed_body"


def test_a_huge_body_is_refused(api, user):
    state = api.start()
    huge = json.dumps({"identifier": "alice", "password": PASSWORD, "padding": "x" * 100_000})
    assert bad_request(api, state["id"], raw=huge)["code"] == "body_too_large"


def test_a_huge_form_body_is_refused_in_the_error_shape(api, user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    state = api.start()
    raw = "identifier=alice&password=" + "x" * 5000
    assert bad_request(api, state["id"], raw=raw, content_type="application/x-www-form-urlencoded")["code"] == (
        "unsupported_media_type")


@pytest.mark.parametrize("body", [{}, {"identifier": "alice"}, {"identifier": 1, "password": PASSWORD},
                                  {"identifier": "al\x00ice", "password": PASSWORD},
                                  {"identifier": "a" * 255, "password": PASSWORD},
                                  {"identifier": "alice", "password": PASSWORD, "captcha": "1234"}])
def test_bad_fields_are_validation_errors_with_their_fields(api, user, body):
    state = api.start()
    answer = bad_request(api, state["id"], body=body)
    assert answer["code"] == "invalid" and answer["fields"]


def test_a_method_the_endpoint_does_not_have(api, user):
    state = api.start()
    error(api.send("delete", f"{API}{state['id']}"), 405, "validation", "method_not_allowed")
    error(api.get(f"{API}{state['id']}/submit"), 405, "validation", "method_not_allowed")


def test_the_json_apis_rate_limit_goes_through_risk(api, user, monkeypatch):
    calls = []

    def throttle(request: Any, scope: str) -> None:
        calls.append(scope)
        if scope == "experience.password":
            raise EngineError("too_many_requests", retry_after=7)

    monkeypatch.setattr("experience.risk.throttle", throttle)
    state = api.start()
    response = api.post(f"{API}{state['id']}/password", {"identifier": "alice", "password": PASSWORD})
    assert error(response, 429, "rate_limited", "too_many_requests")["retry_after"] == 7
    assert response["Retry-After"] == "7"
    assert calls == ["experience.config", "experience.start", "experience.password"]


# -- the public experience ------------------------------------------------------------------------------------------
def test_the_config_of_an_application(api, confidential_app, email_code):
    response = api.get(API + "config", client_id=confidential_app.client_id)
    assert response.status_code == 200 and "csrftoken" in response.cookies
    config = response.json()
    assert config["client_id"] == confidential_app.client_id
    assert config["branding"]["display_name"] == "Relying party"
    assert config["authenticators"] == ["password", "email-code"]
    assert config["methods"][:2] == [
        {"name": "password", "type": "password", "kind": "form", "title": "Password"},
        {"name": "email-code", "type": "email-code", "kind": "code", "title": "E-mail code"},
    ]
    assert config["sign_up"]["enabled"] is True and config["password_policy"]["min_length"] == 8
    assert {"mfa", "captcha", "sign_in_url"} <= set(config)


def test_the_default_config_and_an_unknown_application(api, password_authenticator):
    config = api.get(API + "config").json()
    assert config["client_id"] is None and config["branding"]["display_name"] == "Portcullis"
    error(api.get(API + "config", client_id="nobody"), 404, "not_found", "not_found")


# -- the schema and its docs ----------------------------------------------------------------------------------------
TABLE = [("post", "/api/experience/"), ("get", "/api/experience/{uid}"), ("put", "/api/experience/{uid}/event"),
         *[("post", f"/api/experience/{{uid}}/{name}") for name in INTERACTION_STEPS],
         ("get", "/api/experience/config")]


def test_the_schema_describes_every_endpoint_of_the_table(client, db):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    described = {(method, path) for path, operations in schema["paths"].items() for method in operations}
    assert set(TABLE) <= described
    for method, path in TABLE:
        responses = schema["paths"][path][method]["responses"]
        assert any(status.startswith("2") for status in responses) and any(status.startswith("4") for status in responses)
    submit = schema["paths"]["/api/experience/{uid}/submit"]["post"]["responses"]
    assert submit["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Redirect"}
    state = schema["components"]["schemas"]["State"]["properties"]
    assert set(state) == {"id", "event", "expires_at", "application", "identified", "verifications", "next_step", "methods"}


def test_the_schema_validates(db, tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert "/api/experience/{uid}/code/verify" in target.read_text()


def test_the_docs_page_works_offline(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls and all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    for url in urls:
        path = urlsplit(url).path
        if path.startswith("/static/"):
            assert finders.find(path.removeprefix("/static/")), path  # shipped by drf-spectacular-sidecar
    assert "<script>" not in html  # the start script is a separate same-origin file
    assert "script-src 'self'" in response["Content-Security-Policy"]
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    text = script.content.decode()
    assert '"/api/schema/' in text and "http://" not in text and "https://" not in text
    assert '"validatorUrl": null' in text


@pytest.mark.parametrize(("language", "message"), [("ru", "Тело запроса слишком велико."), ("uk", "Тіло запиту завелике.")])
def test_error_messages_are_translated(api, user, language, message):
    state = api.start()
    response = api.client.post(f"{API}{state['id']}/password", json.dumps({"padding": "x" * 20_000}),
                               content_type="application/json",
                               headers={"X-CSRFToken": api.token(), "Accept-Language": language})
    assert error(response, 400, "validation", "body_too_large")["message"] == message


@pytest.mark.browser
def test_the_docs_page_renders_in_a_browser_from_this_site_only(live_server, transactional_db, page):
    """Swagger UI runs under the page's policy (no CSP violation) with nothing fetched from elsewhere."""
    problems: list[str] = []
    elsewhere: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("request", lambda request: elsewhere.append(request.url)
            if not request.url.startswith(live_server.url) and not request.url.startswith("data:") else None)
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock-summary-path", timeout=20000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/experience/{uid}/submit" in path.replace("\u200b", "") for path in paths), paths
    assert elsewhere == [] and problems == []


def test_the_body_limit_is_a_setting(api, user, settings):
    settings.PORTCULLIS_API_MAX_BODY = 40
    state = api.start()
    body = {"identifier": "alice", "password": PASSWORD}
    assert len(json.dumps(body)) > 40
    assert bad_request(api, state["id"], body=body)["code"] == "body_too_large"
