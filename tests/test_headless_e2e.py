"""The headless Identity API (SPEC §3) end to end: every branch of the B2B document's two sequence
diagrams (password with or without a second factor, one-time code), driven over plain HTTP against
a live server, JSON bodies, and the tokens used at the standard OAuth endpoints."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import requests
from captcha.models import CaptchaStore
from django.conf import settings as django_settings
from django.utils import timezone
from jwcrypto import jwk, jwt

from authenticators.models import Authenticator, OneTimeCode
from experience.models import Interaction
from tests.helpers import (
    PASSWORD,
    ClientApp,
    code_in_mail,
    credentials,
    give_totp,
    make_application,
    totp_now,
)

pytestmark = pytest.mark.django_db(transaction=True)

LOGIN_BY_PASSWORD = "/api/authorization/login-by-password"
CHECK_CODE = "/api/authorization/check-code"
SEND_CODE = "/api/authorization/send-code"
LOGIN = "/api/authorization/login"
EMAIL = "alice@example.com"
PHONE = "+14155552671"
TIMEOUT = 20
USER_TOKEN = {"access_token", "token_type", "expires_in", "refresh_token", "scope", "id_token"}


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture
def app(transactional_db: Any) -> ClientApp:
    """A confidential first-party application allowed the headless API."""
    return make_application(name="Shop", headless=True)


@pytest.fixture
def spa(transactional_db: Any) -> ClientApp:
    """A public first-party application allowed the headless API."""
    return make_application(public=True, name="Shop SPA", headless=True)


@pytest.fixture
def api(live_server: Any) -> Api:
    return Api(live_server.url)


@pytest.fixture
def sms_code(transactional_db: Any) -> Authenticator:
    authenticator, _ = Authenticator.objects.update_or_create(
        name="sms-code", defaults={"auth_type": "sms-code", "title": "SMS code", "enabled": True, "sort_order": 6})
    return authenticator


@pytest.fixture
def acme(transactional_db: Any) -> Authenticator:
    """An enterprise OIDC authenticator: e-mails of acme.test must sign in there."""
    return Authenticator.objects.create(
        name="acme", auth_type="oidc", title="Acme", sort_order=20,
        options={"issuer": "https://sso.acme.test", "client_id": "portcullis", "client_secret": "s",
                 "scopes": ["openid", "email"], "sign_up": True, "domains": ["Acme.test"]})


class Api:
    """A plain HTTP client of the live server."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()

    def post(self, path: str, body: dict[str, Any], **headers: str) -> requests.Response:
        return self.session.post(self.base + path, data=json.dumps(body), timeout=TIMEOUT,
                                 headers={"Content-Type": "application/json", **headers})

    def form(self, path: str, data: dict[str, str], auth: tuple[str, str] | None = None,
             **headers: str) -> requests.Response:
        return self.session.post(self.base + path, data=data, auth=auth, headers=headers, timeout=TIMEOUT)

    def get(self, path: str, **headers: str) -> requests.Response:
        return self.session.get(self.base + path, headers=headers, timeout=TIMEOUT)


def error(response: requests.Response) -> tuple[str, str]:
    body = response.json()
    assert len(body) == 1, body
    kind = next(iter(body))
    assert body[kind]["message"], body
    return kind, body[kind]["code"]


def login_by_password(api: Api, app: ClientApp, email: str = EMAIL, password: str = PASSWORD,
                      **extra: Any) -> requests.Response:
    return api.post(LOGIN_BY_PASSWORD, {**credentials(app), "email": email, "password": password, **extra})


def user_token(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store" and "sessionid" not in response.cookies
    token = response.json()
    assert set(token) == USER_TOKEN, token
    assert token["token_type"] == "Bearer" and isinstance(token["expires_in"], int) and token["expires_in"] > 0
    return token


def data_2fa(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"data_2fa", "timeout", "methods"}, body
    ttl = int(getattr(django_settings, "PORTCULLIS_INTERACTION_TTL", 15 * 60))
    assert isinstance(body["timeout"], int) and ttl - 60 < body["timeout"] <= ttl  # the interaction's lifetime
    return body


def id_token_claims(api: Api, token: dict[str, Any]) -> dict[str, Any]:
    """The ID token's claims, its signature checked with the keys discovery names, as an RP would."""
    discovery = api.get("/.well-known/openid-configuration").json()
    keys = requests.get(discovery["jwks_uri"], timeout=TIMEOUT)
    assert keys.status_code == 200, keys.text
    verified = jwt.JWT(jwt=token["id_token"], key=jwk.JWKSet.from_json(keys.text), algs=["RS256"],
                       check_claims=False)
    claims = json.loads(verified.claims)
    assert claims["iss"] == discovery["issuer"] == api.base
    return claims


def userinfo(api: Api, access_token: str) -> requests.Response:
    return api.get("/oauth/userinfo", Authorization=f"Bearer {access_token}")


def client_auth(app: ClientApp) -> tuple[dict[str, str], tuple[str, str] | None]:
    """Form fields and HTTP Basic for the token endpoints: a confidential app's Basic, a public app's id."""
    if app.client_secret:
        return {}, (app.client_id, app.client_secret)
    return {"client_id": app.client_id}, None


def refresh(api: Api, app: ClientApp, refresh_token: str) -> requests.Response:
    fields, auth = client_auth(app)
    return api.form("/oauth/token", {"grant_type": "refresh_token", "refresh_token": refresh_token, **fields}, auth)


def introspect(api: Api, app: ClientApp, token: str) -> dict[str, Any]:
    response = api.form("/oauth/introspect", {"token": token}, (app.client_id, app.client_secret or ""))
    assert response.status_code == 200, response.text
    return response.json()


def send_code(api: Api, app: ClientApp, **body: Any) -> requests.Response:
    return api.post(SEND_CODE, {**credentials(app), **body})


def otp_code(response: requests.Response) -> dict[str, Any]:
    """An OtpCode; its numbers are the settings' code lifetime and cool-down."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"code_id", "timeout", "resend_after"}, body
    assert isinstance(body["timeout"], int) and body["timeout"] == int(
        getattr(django_settings, "PORTCULLIS_CODE_TTL", 10 * 60))
    assert isinstance(body["resend_after"], int) and body["resend_after"] == int(
        getattr(django_settings, "PORTCULLIS_CODE_COOLDOWN", 60))
    return body


def last_code(mailoutbox: Any) -> str:
    assert mailoutbox, "no mail sent"
    return code_in_mail(mailoutbox[-1])


# -- 1. password, no second factor ------------------------------------------------------------------------
def test_a_password_login_answers_tokens_that_live_at_the_standard_endpoints(api, user, app):
    token = user_token(login_by_password(api, app))
    assert token["scope"] == "openid profile email"
    claims = id_token_claims(api, token)
    assert claims["aud"] == app.client_id and claims["amr"] == ["pwd"] and isinstance(claims["auth_time"], int)
    me = userinfo(api, token["access_token"])
    assert me.status_code == 200 and me.json()["email"] == "Alice@example.com" and me.json()["name"] == "Alice Liddell"
    assert me.json()["sub"] == claims["sub"]
    assert introspect(api, app, token["access_token"])["active"] is True

    refreshed = refresh(api, app, token["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["access_token"] != token["access_token"] and new["refresh_token"] != token["refresh_token"]
    assert id_token_claims(api, new)["auth_time"] == claims["auth_time"]
    replay = refresh(api, app, token["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"

    live = user_token(login_by_password(api, app))
    revoked = api.form("/oauth/revoke", {"token": live["access_token"]}, (app.client_id, app.client_secret or ""))
    assert revoked.status_code == 200, revoked.text
    assert userinfo(api, live["access_token"]).status_code == 401
    assert introspect(api, app, live["access_token"])["active"] is False


def test_a_confidential_app_may_prove_its_secret_with_http_basic(api, user, app):
    response = api.session.post(api.base + LOGIN_BY_PASSWORD, timeout=TIMEOUT, auth=(app.client_id, app.client_secret),
                                json={"client_id": app.client_id, "email": EMAIL, "password": PASSWORD})
    assert id_token_claims(api, user_token(response))["aud"] == app.client_id


def test_a_public_app_logs_in_and_refreshes_with_its_client_id(api, user, spa):
    token = user_token(login_by_password(api, spa, email="ALICE@example.com"))
    claims = id_token_claims(api, token)
    assert claims["aud"] == spa.client_id and claims["amr"] == ["pwd"]
    refreshed = refresh(api, spa, token["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert userinfo(api, refreshed.json()["access_token"]).json()["email"] == "Alice@example.com"


# -- 2. password and a second factor ------------------------------------------------------------------------
def test_a_password_then_totp_answers_a_data_2fa_then_tokens(api, totp_user, app):
    pending = data_2fa(login_by_password(api, app))
    assert pending["methods"] == ["totp", "email_code"]
    response = api.post(CHECK_CODE, {**credentials(app), "data_2fa": pending["data_2fa"], "code": totp_now(),
                                     "method": "totp"})
    claims = id_token_claims(api, user_token(response))
    assert claims["aud"] == app.client_id and {"mfa", "otp", "pwd"} <= set(claims["amr"])
    again = api.post(CHECK_CODE, {**credentials(app), "data_2fa": pending["data_2fa"], "code": totp_now(steps_ahead=1)})
    assert again.status_code == 400 and error(again) == ("key", "data_2fa_expired")


def test_a_backup_code_finishes_a_data_2fa_once(api, totp_user, app):
    from authenticators.types import backup_code

    codes = backup_code.replace_codes(totp_user)
    pending = data_2fa(login_by_password(api, app))
    assert "backup_code" in pending["methods"]
    response = api.post(CHECK_CODE, {**credentials(app), "data_2fa": pending["data_2fa"], "code": codes[0],
                                     "method": "backup_code"})
    assert {"mfa", "pwd"} <= set(id_token_claims(api, user_token(response))["amr"])
    second = data_2fa(login_by_password(api, app))
    reused = api.post(CHECK_CODE, {**credentials(app), "data_2fa": second["data_2fa"], "code": codes[0],
                                   "method": "backup_code"})
    assert reused.status_code == 400 and error(reused) == ("key", "invalid_code")


def test_a_code_by_e_mail_finishes_a_data_2fa(api, totp_user, app, mailoutbox):
    pending = data_2fa(login_by_password(api, app))
    sent = api.post(SEND_CODE, {"client_id": app.client_id, "client_secret": app.client_secret,
                                "data_2fa": pending["data_2fa"]})
    assert sent.status_code == 200, sent.text
    assert mailoutbox[-1].to == ["Alice@example.com"]
    response = api.post(CHECK_CODE, {**credentials(app), "data_2fa": pending["data_2fa"], "method": "email_code",
                                     "code_id": sent.json()["code_id"], "code": last_code(mailoutbox)})
    assert {"mfa", "pwd"} <= set(id_token_claims(api, user_token(response))["amr"])


# -- 3. captcha -----------------------------------------------------------------------------------------------
def test_a_captcha_is_demanded_after_three_failures_then_answered(api, user, spa):
    for _ in range(3):
        wrong = login_by_password(api, spa, password="wrong password")
        assert wrong.status_code == 400 and error(wrong) == ("key", "invalid_credentials")
    demanded = login_by_password(api, spa)
    assert demanded.status_code == 400 and error(demanded) == ("captcha_answer", "required")
    captcha = demanded.json()["captcha_answer"]["captcha"]
    assert set(captcha) == {"id", "url"}
    image = requests.get(captcha["url"] if captcha["url"].startswith("http") else api.base + captcha["url"],
                         timeout=TIMEOUT)
    assert image.status_code == 200 and image.headers["Content-Type"].startswith("image/") and image.content

    bad = login_by_password(api, spa, captcha={"id": captcha["id"], "answer": "not the answer"})
    assert bad.status_code == 400 and error(bad) == ("captcha_answer", "invalid")
    fresh = bad.json()["captcha_answer"]["captcha"]
    assert set(fresh) == {"id", "url"} and fresh["id"] != captcha["id"]  # a new one to solve
    answer = CaptchaStore.objects.get(hashkey=fresh["id"]).response
    solved = login_by_password(api, spa, captcha={"id": fresh["id"], "answer": answer})
    assert id_token_claims(api, user_token(solved))["amr"] == ["pwd"]


# -- 4. wrong keys ---------------------------------------------------------------------------------------------
def test_a_wrong_password_and_an_unknown_account_answer_the_same(api, user, app):
    wrong = login_by_password(api, app, password="wrong password")
    unknown = login_by_password(api, app, email="nobody@example.com", password="wrong password")
    assert wrong.status_code == unknown.status_code == 400
    assert error(wrong) == ("key", "invalid_credentials") and wrong.json() == unknown.json()


def test_wrong_codes_at_login_are_counted_and_the_fifth_spends_the_code(api, user, app, mail_code, mailoutbox):
    sent = otp_code(send_code(api, app, email=EMAIL))
    right = last_code(mailoutbox)
    wrong = "000000" if right != "000000" else "111111"
    answers = []
    for _ in range(5):
        response = api.post(LOGIN, {**credentials(app), "code_id": sent["code_id"], "code": wrong})
        assert response.status_code == 400, response.text
        answers.append(error(response))
    assert answers == [("key", "invalid_code")] * 4 + [("key", "attempts_exceeded")]
    after = api.post(LOGIN, {**credentials(app), "code_id": sent["code_id"], "code": right})
    assert after.status_code == 400 and error(after) == ("key", "attempts_exceeded")  # the code is spent


def test_five_wrong_totp_codes_spend_the_data_2fa(api, totp_user, app):
    pending = data_2fa(login_by_password(api, app))
    near = {totp_now(steps_ahead=step) for step in (-1, 0, 1, 2)}
    wrong = next(code for code in ("000000", "111111", "222222", "333333", "444444") if code not in near)
    answers = []
    for _ in range(5):
        response = api.post(CHECK_CODE, {**credentials(app), "data_2fa": pending["data_2fa"], "code": wrong,
                                         "method": "totp"})
        answers.append(error(response))
    assert answers == [("key", "invalid_code")] * 4 + [("key", "attempts_exceeded")]
    right = api.post(CHECK_CODE, {**credentials(app), "data_2fa": pending["data_2fa"], "code": totp_now(),
                                  "method": "totp"})
    assert right.status_code == 400 and error(right) == ("key", "data_2fa_expired")


# -- 5. an e-mail bound to single sign-on -------------------------------------------------------------------
@pytest.mark.parametrize("account_exists", [True, False])
def test_an_e_mail_of_an_sso_domain_is_sent_to_its_authenticator(api, user, app, acme, mail_code, mailoutbox,
                                                                  django_user_model, account_exists):
    if account_exists:
        django_user_model.objects.create_user("bob", "bob@acme.test", PASSWORD)
    for response in (login_by_password(api, app, email="bob@acme.test"),
                     send_code(api, app, email="Bob@ACME.test")):
        assert response.status_code == 400, response.text
        assert error(response) == ("sso", "sso_required")
        sso = response.json()["sso"]
        assert sso["authenticator"] == "acme"
        assert sso["url"] == f"{api.base}/api/auth/acme/authorize-url?client_id={app.client_id}"
    assert mailoutbox == []


# -- 6. timeouts --------------------------------------------------------------------------------------------------
def test_a_data_2fa_past_its_timeout_is_expired(api, totp_user, app):
    pending = data_2fa(login_by_password(api, app))
    Interaction.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api.post(CHECK_CODE, {**credentials(app), "data_2fa": pending["data_2fa"], "code": totp_now(),
                                     "method": "totp"})
    assert response.status_code == 400 and error(response) == ("key", "data_2fa_expired")


def test_a_code_past_its_expiry_is_expired(api, user, app, mail_code, mailoutbox):
    sent = otp_code(send_code(api, app, email=EMAIL))
    OneTimeCode.objects.filter(code_id=sent["code_id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api.post(LOGIN, {**credentials(app), "code_id": sent["code_id"], "code": last_code(mailoutbox)})
    assert response.status_code == 400 and error(response) == ("key", "code_expired")


def test_the_timeouts_announced_follow_the_settings(api, totp_user, app, mail_code, mailoutbox, settings):
    settings.PORTCULLIS_INTERACTION_TTL = 240
    settings.PORTCULLIS_CODE_TTL = 180
    settings.PORTCULLIS_CODE_COOLDOWN = 30
    assert 180 < data_2fa(login_by_password(api, app))["timeout"] <= 240
    sent = otp_code(send_code(api, app, email=EMAIL))
    assert (sent["timeout"], sent["resend_after"]) == (180, 30)


# -- 7. the one-time-code diagram -----------------------------------------------------------------------------
def test_a_code_by_e_mail_signs_in(api, user, app, mail_code, mailoutbox):
    sent = otp_code(send_code(api, app, email=EMAIL))
    assert mailoutbox[-1].to == ["Alice@example.com"]  # the account's own address
    response = api.post(LOGIN, {**credentials(app), "code_id": sent["code_id"], "code": last_code(mailoutbox)})
    token = user_token(response)
    claims = id_token_claims(api, token)
    assert claims["amr"] == ["otp"] and claims["aud"] == app.client_id
    assert userinfo(api, token["access_token"]).json()["email"] == "Alice@example.com"
    replay = api.post(LOGIN, {**credentials(app), "code_id": sent["code_id"], "code": last_code(mailoutbox)})
    assert replay.status_code == 400 and error(replay) == ("key", "invalid_code")


def test_a_code_by_sms_signs_in(api, user, spa, sms_code, sms_outbox):
    from identity.models import Profile

    profile = Profile.objects.get(user=user)
    profile.phone_number = PHONE
    profile.save()  # a save, not an update: the sign-in identifiers follow it
    sent = otp_code(send_code(api, spa, phone_number=PHONE))
    assert len(sms_outbox) == 1
    assert sms_outbox[-1].to == PHONE
    code = code_in_mail(sms_outbox[-1])  # the 6-digit code in the message's body
    token = user_token(api.post(LOGIN, {"client_id": spa.client_id, "code_id": sent["code_id"], "code": code}))
    assert id_token_claims(api, token)["amr"] == ["otp", "sms"]


def test_a_second_send_within_the_cool_down_is_rate_limited(api, user, app, mail_code, mailoutbox):
    otp_code(send_code(api, app, email=EMAIL))
    again = send_code(api, app, email=EMAIL)
    assert again.status_code == 429 and error(again) == ("rate_limited", "too_many_requests"), again.text
    retry_after = again.json()["rate_limited"]["retry_after"]
    assert isinstance(retry_after, int) and retry_after > 0 and int(again.headers["Retry-After"]) == retry_after
    assert len(mailoutbox) == 1


def test_a_user_with_totp_signing_in_by_code_gets_a_data_2fa(api, totp_user, app, mail_code, mailoutbox):
    sent = otp_code(send_code(api, app, email=EMAIL))
    pending = data_2fa(api.post(LOGIN, {**credentials(app), "code_id": sent["code_id"], "code": last_code(mailoutbox)}))
    assert "totp" in pending["methods"]
    response = api.post(CHECK_CODE, {**credentials(app), "data_2fa": pending["data_2fa"], "code": totp_now(),
                                     "method": "totp"})
    assert {"mfa", "otp"} <= set(id_token_claims(api, user_token(response))["amr"])


# -- 8. the handle names the application ------------------------------------------------------------------------
def test_login_and_check_code_without_client_id_for_a_public_app(api, user, spa, mail_code, second_factors,
                                                                   mailoutbox):
    give_totp(user)
    sent = otp_code(send_code(api, spa, email=EMAIL))
    pending = data_2fa(api.post(LOGIN, {"code_id": sent["code_id"], "code": last_code(mailoutbox)}))
    token = user_token(api.post(CHECK_CODE, {"data_2fa": pending["data_2fa"], "code": totp_now(), "method": "totp"}))
    assert id_token_claims(api, token)["aud"] == spa.client_id


def test_without_client_id_a_confidential_app_still_proves_its_secret(api, totp_user, app, mail_code, mailoutbox):
    sent = otp_code(send_code(api, app, email=EMAIL))
    code = last_code(mailoutbox)
    refused = api.post(LOGIN, {"code_id": sent["code_id"], "code": code})
    assert refused.status_code == 401 and error(refused) == ("key", "invalid_client")
    basic = api.session.post(api.base + LOGIN, json={"code_id": sent["code_id"], "code": code}, timeout=TIMEOUT,
                             auth=(app.client_id, app.client_secret))
    pending = data_2fa(basic)
    refused = api.post(CHECK_CODE, {"data_2fa": pending["data_2fa"], "code": totp_now(), "method": "totp"})
    assert refused.status_code == 401 and error(refused) == ("key", "invalid_client")
    token = user_token(api.session.post(api.base + CHECK_CODE, timeout=TIMEOUT, auth=(app.client_id, app.client_secret),
                                        json={"data_2fa": pending["data_2fa"], "code": totp_now(), "method": "totp"}))
    assert id_token_claims(api, token)["aud"] == app.client_id
