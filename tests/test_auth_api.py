"""The auth API (SPEC §4, the NocoBase verbs) and the Data2fa's check-code (SPEC §3), as a first-party
app with its own UI drives them: plain HTTP, JSON bodies, tokens used at the standard endpoints."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from captcha.models import CaptchaStore
from django.test import Client
from django.utils import timezone

from authenticators.base import RedirectAuth
from authenticators.models import Authenticator
from authenticators.registry import registry
from experience.models import Interaction
from experience.policy import Policy, SignUpPolicy
from identity.models import ApplicationSettings
from tests.helpers import (
    PASSWORD,
    ClientApp,
    basic_auth,
    code_in_mail,
    credentials,
    introspect,
    jwt_payload,
    make_application,
    refresh,
    run_together,
    totp_now,
    userinfo,
    userinfo_status,
)

SIGN_IN = "/api/auth/sign-in"
SEND_CODE = "/api/auth/send-code"
SIGN_UP = "/api/auth/sign-up"
SIGN_OUT = "/api/auth/sign-out"
CHECK = "/api/auth/check"
CHECK_CODE = "/api/authorization/check-code"
NEW_PASSWORD = "a fresh and long passphrase"


@pytest.fixture
def app(db: Any) -> ClientApp:
    """A confidential first-party application allowed the headless API (its secret in the body)."""
    return make_application(name="Shop", headless=True)


@pytest.fixture
def spa(db: Any) -> ClientApp:
    """A public first-party application allowed the headless API."""
    return make_application(public=True, name="Shop SPA", headless=True)


def post(client: Any, path: str, body: Any, *, authenticator: str | None = None, **headers: Any) -> Any:
    if authenticator is not None:
        headers["HTTP_X_AUTHENTICATOR"] = authenticator
    return client.post(path, json.dumps(body), content_type="application/json", **headers)


def sign_in(client: Any, app: ClientApp, identifier: str = "alice", password: str = PASSWORD, **extra: Any) -> Any:
    return post(client, SIGN_IN, {**credentials(app), "identifier": identifier, "password": password, **extra},
                authenticator="password")


def error(response: Any) -> tuple[str, str]:
    body = response.json()
    assert len(body) == 1, body
    kind = next(iter(body))
    assert body[kind]["message"], body
    return kind, body[kind]["code"]


def bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token['access_token']}"}


# -- password sign-in ----------------------------------------------------------------------------------
def test_a_password_sign_in_answers_a_user_token_that_works_at_the_standard_endpoints(client, user, app):
    response = sign_in(client, app)
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store" and "sessionid" not in response.cookies
    token = response.json()
    assert set(token) == {"access_token", "token_type", "expires_in", "refresh_token", "scope", "id_token"}
    assert token["token_type"] == "Bearer" and token["scope"] == "openid profile email"
    claims = jwt_payload(token["id_token"])
    assert claims["aud"] == app.client_id and claims["amr"] == ["pwd"]
    assert userinfo(client, token["access_token"]).json()["email"] == "Alice@example.com"
    assert introspect(client, app, token["access_token"]).json()["active"] is True
    refreshed = refresh(client, app, token["refresh_token"])
    assert refreshed.status_code == 200, refreshed.content
    assert jwt_payload(refreshed.json()["id_token"])["auth_time"] == claims["auth_time"]


def test_a_confidential_application_may_authenticate_with_http_basic(client, user, app):
    response = post(client, SIGN_IN, {"client_id": app.client_id, "identifier": "alice", "password": PASSWORD},
                    HTTP_AUTHORIZATION=basic_auth(app))
    assert response.status_code == 200, response.content


def test_without_x_authenticator_the_password_method_is_used_and_scope_can_be_chosen(client, user, spa):
    response = post(client, SIGN_IN, {"client_id": spa.client_id, "identifier": "alice@example.com",
                                      "password": PASSWORD, "scope": "openid email"})
    assert response.status_code == 200, response.content
    assert response.json()["scope"] == "openid email"
    assert "name" not in userinfo(client, response.json()["access_token"]).json()


def test_a_scope_the_provider_does_not_offer_is_refused(client, user, spa):
    response = post(client, SIGN_IN, {"client_id": spa.client_id, "identifier": "alice", "password": PASSWORD,
                                      "scope": "openid admin"})
    assert response.status_code == 400 and error(response) == ("validation", "invalid")
    assert list(response.json()["validation"]["fields"]) == ["scope"]


def test_an_unknown_authenticator_is_404_and_a_second_factor_is_no_sign_in_method(client, user, app, second_factors):
    for name in ("nope", "x" * 300, "pass\x00word", ""):
        unknown = post(client, SIGN_IN, {**credentials(app), "identifier": "alice", "password": PASSWORD},
                       authenticator=name)
        if name:
            assert unknown.status_code == 404 and error(unknown) == ("not_found", "authenticator")
        else:  # an empty header is no header: the password method
            assert unknown.status_code == 200, unknown.content
    factor = post(client, SIGN_IN, {**credentials(app), "identifier": "alice", "password": PASSWORD},
                  authenticator="totp")
    assert factor.status_code == 403 and error(factor) == ("forbidden", "method_disabled")


def test_wrong_credentials_and_unknown_accounts_get_the_same_answer(client, user, spa):
    wrong = post(client, SIGN_IN, {"client_id": spa.client_id, "identifier": "alice", "password": "wrong password"})
    unknown = post(client, SIGN_IN, {"client_id": spa.client_id, "identifier": "nobody", "password": "wrong password"})
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.json() == unknown.json() and error(wrong) == ("key", "invalid_credentials")
    assert not Interaction.objects.exists()  # a refused sign-in leaves nothing behind


def test_a_captcha_is_demanded_after_failures_and_then_accepted(client, user, spa):
    for _ in range(3):
        post(client, SIGN_IN, {"client_id": spa.client_id, "identifier": "alice", "password": "wrong password"})
    demanded = post(client, SIGN_IN, {"client_id": spa.client_id, "identifier": "alice", "password": PASSWORD})
    assert demanded.status_code == 400 and error(demanded) == ("captcha_answer", "required")
    captcha = demanded.json()["captcha_answer"]["captcha"]
    assert set(captcha) == {"id", "url"}
    answer = CaptchaStore.objects.get(hashkey=captcha["id"]).response
    solved = post(client, SIGN_IN, {"client_id": spa.client_id, "identifier": "alice", "password": PASSWORD,
                                    "captcha": {"id": captcha["id"], "answer": answer}})
    assert solved.status_code == 200, solved.content


def test_a_password_sign_in_stays_within_its_query_budget(client, user, spa, django_assert_max_num_queries):
    sign_in(client, spa)  # warm: keys, the default experience
    # the application, the authenticators, the interaction, the account, its factors (the gates), the
    # finishing transaction, the token pair and its family, the audit event
    with django_assert_max_num_queries(21):
        assert sign_in(client, spa).status_code == 200


# -- applications -------------------------------------------------------------------------------------------
def test_a_confidential_application_without_its_secret_is_invalid_client(client, user, app):
    for body in ({"client_id": app.client_id}, {"client_id": app.client_id, "client_secret": "wrong"},
                 {"client_id": "unknown-app"}):
        response = post(client, SIGN_IN, {**body, "identifier": "alice", "password": PASSWORD})
        assert response.status_code == 401 and error(response) == ("key", "invalid_client")
        assert response["WWW-Authenticate"].startswith("Basic")


def test_an_application_not_marked_headless_is_forbidden(client, user, db):
    for first_party, headless_api in ((True, False), (False, True)):
        other = make_application(first_party=first_party, public=True)
        ApplicationSettings.objects.filter(application=other.application).update(headless_api=headless_api)
        response = post(client, SIGN_IN, {"client_id": other.client_id, "identifier": "alice", "password": PASSWORD})
        assert response.status_code == 403 and error(response) == ("forbidden", "headless_not_allowed")


# -- two factors ---------------------------------------------------------------------------------------------
def data_2fa_for(client: Any, app: ClientApp) -> dict[str, Any]:
    response = sign_in(client, app)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"data_2fa", "timeout", "methods"}, body
    return body


def test_a_user_with_a_second_factor_gets_a_data_2fa_and_finishes_it_with_totp(client, totp_user, app):
    pending = data_2fa_for(client, app)
    assert 0 < pending["timeout"] <= 900 and pending["methods"] == ["totp", "email_code"]
    response = post(client, CHECK_CODE, {**credentials(app), "data_2fa": pending["data_2fa"], "code": totp_now(),
                                         "method": "totp"})
    assert response.status_code == 200, response.content
    claims = jwt_payload(response.json()["id_token"])
    assert claims["amr"] == ["mfa", "otp", "pwd"] and claims["acr"] == "urn:portcullis:acr:2fa"
    again = post(client, CHECK_CODE, {**credentials(app), "data_2fa": pending["data_2fa"], "code": totp_now(steps_ahead=1)})
    assert again.status_code == 400 and error(again) == ("key", "data_2fa_expired")  # single use


def test_a_data_2fa_belongs_to_the_application_that_obtained_it(client, totp_user, app, spa):
    pending = data_2fa_for(client, app)
    stolen = post(client, CHECK_CODE, {"client_id": spa.client_id, "data_2fa": pending["data_2fa"], "code": totp_now()})
    assert stolen.status_code == 400 and error(stolen) == ("key", "data_2fa_expired")
    own = post(client, CHECK_CODE, {**credentials(app), "data_2fa": pending["data_2fa"], "code": totp_now()})
    assert own.status_code == 200, own.content


def test_an_expired_or_unknown_data_2fa_is_refused(client, totp_user, app):
    pending = data_2fa_for(client, app)
    Interaction.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    for handle in (pending["data_2fa"], "not-a-handle", "x" * 128, "é"):
        response = post(client, CHECK_CODE, {**credentials(app), "data_2fa": handle, "code": totp_now()})
        assert response.status_code == 400 and error(response) == ("key", "data_2fa_expired")


def test_five_wrong_codes_spend_a_data_2fa(client, totp_user, app):
    pending = data_2fa_for(client, app)
    answers = []
    for _ in range(5):
        wrong = post(client, CHECK_CODE, {**credentials(app), "data_2fa": pending["data_2fa"], "code": "000000"})
        answers.append(error(wrong)[1])
    assert answers == ["invalid_code"] * 4 + ["attempts_exceeded"]
    right = post(client, CHECK_CODE, {**credentials(app), "data_2fa": pending["data_2fa"], "code": totp_now()})
    assert right.status_code == 400 and error(right) == ("key", "data_2fa_expired")


def test_parallel_answers_to_one_data_2fa_never_sign_in_twice(transactional_db, totp_user, app):
    """The code is accepted once; the replays count as wrong codes, and five of them may spend the
    Data2fa before the winner submits (then nobody is signed in): never two tokens."""
    from oauth2_provider.models import AccessToken

    pending = data_2fa_for(Client(), app)
    code = totp_now()

    def answer(index: int) -> Any:
        response = post(Client(), CHECK_CODE, {**credentials(app), "data_2fa": pending["data_2fa"], "code": code})
        return response.status_code, error(response)[1] if response.status_code != 200 else ""

    results = run_together(10, answer)
    assert [status for status, _code in results].count(200) <= 1, results
    assert {code for status, code in results if status != 200} <= {"invalid_code", "attempts_exceeded",
                                                                   "data_2fa_expired"}, results
    assert AccessToken.objects.count() == [status for status, _code in results].count(200)


def test_a_headless_interaction_is_out_of_reach_of_the_browser_faces(client, totp_user, app):
    data_2fa_for(client, app)
    uid = Interaction.objects.get().uid
    assert client.get(f"/api/experience/{uid}").status_code == 404
    page = client.get(f"/sign-in/{uid}/second-factor/")
    assert page.status_code >= 400 and b"one-time-code" not in page.content


def test_a_data_2fa_can_be_finished_with_a_code_by_e_mail(client, totp_user, app, mailoutbox):
    pending = data_2fa_for(client, app)
    assert "email_code" in pending["methods"]
    sent = post(client, SEND_CODE, {**credentials(app), "data_2fa": pending["data_2fa"]})
    assert sent.status_code == 200, sent.content
    response = post(client, CHECK_CODE, {**credentials(app), "data_2fa": pending["data_2fa"], "method": "email_code",
                                         "code_id": sent.json()["code_id"], "code": code_in_mail(mailoutbox[-1])})
    assert response.status_code == 200, response.content


# -- one-time codes ------------------------------------------------------------------------------------------
def send_code(client: Any, app: ClientApp, email: str, **extra: Any) -> dict[str, Any]:
    response = post(client, SEND_CODE, {**credentials(app), "email": email, **extra}, authenticator="email-code")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_code_sign_in_sends_a_code_and_signs_in_with_it(client, user, app, mail_code, mailoutbox):
    sent = send_code(client, app, "alice@example.com")
    assert set(sent) == {"code_id", "timeout", "resend_after"} and sent["timeout"] == 600
    response = post(client, SIGN_IN, {**credentials(app), "code_id": sent["code_id"],
                                      "code": code_in_mail(mailoutbox[-1])}, authenticator="email-code")
    assert response.status_code == 200, response.content
    assert jwt_payload(response.json()["id_token"])["amr"] == ["otp"]
    check = client.get(CHECK, **bearer(response.json()))
    assert check.json()["authenticator"] == "email-code"


def test_a_code_is_for_the_application_that_asked_for_it(client, user, app, spa, mail_code, mailoutbox):
    sent = send_code(client, app, "alice@example.com")
    response = post(client, SIGN_IN, {"client_id": spa.client_id, "code_id": sent["code_id"],
                                      "code": code_in_mail(mailoutbox[-1])})
    assert response.status_code == 400 and error(response) == ("key", "invalid_code")
    own = post(client, SIGN_IN, {**credentials(app), "code_id": sent["code_id"], "code": code_in_mail(mailoutbox[-1])})
    assert own.status_code == 200, own.content  # without X-Authenticator: the method that sent it


def test_sending_a_code_answers_the_same_for_an_unknown_address(client, user, app, mail_code, mailoutbox):
    known = send_code(client, app, "alice@example.com")
    unknown = send_code(client, app, "nobody@example.com")
    assert {**known, "code_id": ""} == {**unknown, "code_id": ""}
    assert len(mailoutbox) == 1


# -- sign-up -----------------------------------------------------------------------------------------------------
def test_a_sign_up_verifies_the_address_by_code_then_takes_the_password(client, db, app, mail_code, mailoutbox):
    sent = send_code(client, app, "new@example.com", purpose="sign_up")
    code = code_in_mail(mailoutbox[-1])
    weak = post(client, SIGN_UP, {**credentials(app), "code_id": sent["code_id"], "code": code, "password": "short"})
    assert weak.status_code == 400 and error(weak) == ("validation", "invalid")
    assert list(weak.json()["validation"]["fields"]) == ["password"]
    response = post(client, SIGN_UP, {**credentials(app), "code_id": sent["code_id"], "code": code,
                                      "password": NEW_PASSWORD, "name": "Newt"})
    assert response.status_code == 200, response.content
    claims = userinfo(client, response.json()["access_token"]).json()
    assert claims["email"] == "new@example.com" and claims["email_verified"] is True and claims["name"] == "Newt"
    assert sign_in(client, app, "new@example.com", NEW_PASSWORD).status_code == 200
    replay = post(client, SIGN_UP, {**credentials(app), "code_id": sent["code_id"], "code": code,
                                    "password": NEW_PASSWORD})
    assert replay.status_code == 400 and error(replay) == ("key", "invalid_code")


def test_a_sign_up_without_a_code_is_told_to_verify_the_address(client, db, app, mail_code):
    response = post(client, SIGN_UP, {**credentials(app), "email": "new@example.com", "password": NEW_PASSWORD})
    assert response.status_code == 400 and error(response) == ("requirement", "identify")
    assert response.json()["requirement"]["methods"] == ["email-code"]


def test_a_sign_up_code_for_an_existing_account_says_so_once_proved(client, user, app, mail_code, mailoutbox):
    sent = send_code(client, app, "alice@example.com", purpose="sign_up")
    response = post(client, SIGN_UP, {**credentials(app), "code_id": sent["code_id"],
                                      "code": code_in_mail(mailoutbox[-1]), "password": NEW_PASSWORD})
    assert response.status_code == 400 and error(response) == ("key", "account_exists")


def test_a_sign_up_by_username_needs_no_code(client, db, app, password_authenticator, monkeypatch):
    policy = Policy(sign_up=SignUpPolicy(identifiers=("username",), verify=False))
    monkeypatch.setattr("experience.policy.resolve", lambda client_id: policy)
    taken = post(client, SIGN_UP, {**credentials(app), "username": "Newt", "password": "short"})
    assert taken.status_code == 400 and list(taken.json()["validation"]["fields"]) == ["password"]
    response = post(client, SIGN_UP, {**credentials(app), "username": "Newt", "password": NEW_PASSWORD})
    assert response.status_code == 200, response.content
    assert jwt_payload(response.json()["id_token"])["amr"] == ["pwd"]
    assert client.get(CHECK, **bearer(response.json())).json()["authenticator"] == "password"
    again = post(client, SIGN_UP, {**credentials(app), "username": "newt", "password": NEW_PASSWORD})
    assert again.status_code == 400 and list(again.json()["validation"]["fields"]) == ["username"]


class Upstream(RedirectAuth):
    def authorize_url(self, **kwargs: Any) -> str:
        return "https://upstream.example/authorize"

    def complete(self, params: dict[str, Any], pending: dict[str, Any]) -> Any:
        raise AssertionError("never called by the auth API's sign-in")


def test_a_redirect_type_does_not_sign_in_with_fields(client, user, app):
    registry.register("test-upstream", Upstream, replace=True)
    try:
        Authenticator.objects.create(name="up", auth_type="test-upstream", title="Up", sort_order=7)
        response = post(client, SIGN_IN, {**credentials(app), "identifier": "alice", "password": PASSWORD},
                        authenticator="up")
    finally:
        registry.unregister("test-upstream")
    assert response.status_code == 400 and list(response.json()["validation"]["fields"]) == ["X-Authenticator"]


# -- check and sign-out ---------------------------------------------------------------------------------------------
def test_check_names_the_user_and_the_authenticator_and_sign_out_revokes_the_family(client, user, app):
    token = sign_in(client, app).json()
    check = client.get(CHECK, **bearer(token))
    assert check.status_code == 200, check.content
    body = check.json()
    assert body["authenticator"] == "password"
    assert body["user"]["email"] == "Alice@example.com" and body["user"]["name"] == "Alice Liddell"
    assert len(body["user"]["sub"]) == 32
    refreshed = refresh(client, app, token["refresh_token"]).json()
    assert client.get(CHECK, **bearer(refreshed)).json()["authenticator"] == "password"  # the family remembers
    signed_out = client.post(SIGN_OUT, content_type="application/json", **bearer(refreshed))
    assert signed_out.status_code == 204 and signed_out.content == b""
    assert userinfo_status(client, refreshed["access_token"]) == 401
    assert refresh(client, app, refreshed["refresh_token"]).json()["error"] == "invalid_grant"
    after = client.get(CHECK, **bearer(refreshed))
    assert after.status_code == 401 and error(after) == ("key", "invalid_token")
    assert after["WWW-Authenticate"].startswith("Bearer")
    ukrainian = client.get(CHECK, HTTP_ACCEPT_LANGUAGE="uk", **bearer(refreshed)).json()["key"]["message"]
    assert ukrainian == "Токен доступу відсутній, прострочений або відкликаний. Увійдіть знову."


def test_check_and_sign_out_need_a_live_token_of_a_headless_application(client, user, app, db):
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer nope"}, {"HTTP_AUTHORIZATION": basic_auth(app)}):
        assert client.get(CHECK, **headers).status_code == 401
        assert client.post(SIGN_OUT, content_type="application/json", **headers).status_code == 401
    token = sign_in(client, app).json()
    ApplicationSettings.objects.filter(application=app.application).update(headless_api=False)
    refused = client.get(CHECK, **bearer(token))
    assert refused.status_code == 403 and error(refused) == ("forbidden", "headless_not_allowed")


# -- bad input and limits -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "content_type", "code"), [
    ("identifier=alice", "application/x-www-form-urlencoded", "unsupported_media_type"),
    ("alice", "text/plain", "unsupported_media_type"),
    ("[1, 2]", "application/json", "malformed_body"),
    ('"client_id"', "application/json", "malformed_body"),
    ('{"client_id": ', "application/json", "malformed_body"),
    ('{"client_id": NaN}', "application/json", "malformed_body"),
    (json.dumps({"client_id": "a", "password": "x" * 20000}), "application/json", "body_too_large"),
])
def test_a_body_that_is_not_a_small_json_object_is_a_validation_error(client, db, body, content_type, code):
    for path in (SIGN_IN, SEND_CODE, SIGN_UP, CHECK_CODE):
        response = client.post(path, body, content_type=content_type)
        assert response.status_code == 400, (path, response.content)
        assert response.json()["validation"]["code"] == code


@pytest.mark.parametrize(("path", "body", "field"), [
    (SIGN_IN, {"client_id": 7, "identifier": "alice", "password": "x"}, "client_id"),
    (SIGN_IN, {"client_id": "a", "identifier": ["alice"], "password": "x"}, "identifier"),
    (SIGN_IN, {"client_id": "a", "identifier": "alice", "password": "x" * 5000}, "password"),
    (SIGN_IN, {"client_id": "a", "code_id": "c", "code": {"x": 1}}, "code"),
    (SIGN_IN, {"client_id": "a", "identifier": "alice", "password": "x", "captcha": "abc"}, "captcha"),
    (SEND_CODE, {"client_id": "a", "email": True}, "email"),
    (SEND_CODE, {"client_id": "a", "email": "a@example.com", "purpose": "forgot_password"}, "purpose"),
    (SEND_CODE, {"client_id": "a", "email": "a@example.com", "phone_number": "+15551234567"}, "non_field_errors"),
    (SIGN_UP, {"client_id": "a", "code_id": "c", "password": "x"}, "non_field_errors"),
    (SIGN_UP, {"client_id": "a", "username": "u" * 151, "password": "x"}, "username"),
    (CHECK_CODE, {"client_id": "a", "data_2fa": "d", "code": 123456}, "code"),
    (CHECK_CODE, {"client_id": "a", "data_2fa": "d", "code": "1", "method": "sms"}, "method"),
    (CHECK_CODE, {"client_id": "a", "code": "1"}, "data_2fa"),
])
def test_a_field_of_the_wrong_type_or_size_is_named(client, db, path, body, field):
    response = post(client, path, body)
    assert response.status_code == 400, response.content
    assert response.json()["validation"]["code"] == "invalid"
    assert field in response.json()["validation"]["fields"], response.json()


def test_the_api_is_rate_limited_per_endpoint(client, user, spa, settings):
    settings.PORTCULLIS_API_RATE_LIMIT = 2
    settings.PORTCULLIS_API_RATE_WINDOW = 10**9  # one window for the whole test (no minute boundary)
    for _ in range(2):
        post(client, SIGN_IN, {"client_id": spa.client_id, "identifier": "nobody", "password": "x"})
    limited = post(client, SIGN_IN, {"client_id": spa.client_id, "identifier": "nobody", "password": "x"})
    assert limited.status_code == 429 and error(limited) == ("rate_limited", "too_many_requests")
    assert int(limited["Retry-After"]) == limited.json()["rate_limited"]["retry_after"] > 0
    assert client.get(CHECK).status_code == 401  # another endpoint counts on its own


def test_the_schema_describes_every_verb(client, db):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert {SIGN_IN, SEND_CODE, SIGN_UP, SIGN_OUT, CHECK, CHECK_CODE} <= set(paths)
    sign_in_op = paths[SIGN_IN]["post"]
    assert any(p["name"] == "X-Authenticator" and p["in"] == "header" for p in sign_in_op["parameters"])
    assert {"200", "400", "401", "403", "404", "429"} <= set(sign_in_op["responses"])
    assert sign_in_op["requestBody"]["content"]["application/json"]["examples"]
    assert paths[CHECK]["get"]["security"] == [{"accessToken": []}]
