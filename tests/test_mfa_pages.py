"""The second factor on the hosted pages (part mfa), as a user meets it with a plain browser (no
JavaScript): password then TOTP, a backup code, an e-mail code beside the app, enrolment inside the
flow when MFA is required, the account page; each sign-in ends with a code at the client's redirect
URI exchanged for tokens whose ``amr`` says ``mfa``."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django_otp.plugins.otp_totp.models import TOTPDevice

from authenticators.models import BackupCode
from authenticators.types import backup_code
from experience.models import AuditEvent
from tests.helpers import (
    PASSWORD,
    REDIRECT_URI,
    authorize_params,
    follow_to_code,
    form_errors,
    pkce_pair,
    query_of,
    secret_from_page,
    sign_in_url_from,
    totp_now,
    verify_id_token,
)

pytestmark = pytest.mark.django_db


def password_step(flow: Any, app: Any, **extra: str) -> tuple[Any, dict[str, str], str]:
    """Authorize, then the password on the sign-in page; the answer, the request and the verifier."""
    verifier, challenge = pkce_pair()
    params = authorize_params(app, challenge, **extra)
    sign_in = sign_in_url_from(flow.authorize(params))
    response = flow.client.post(sign_in, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 303, response.content
    return response, params, verifier


def id_token_claims(flow: Any, app: Any, code: str, params: dict[str, str], verifier: str) -> dict[str, Any]:
    response = flow.token(app, code, params, code_verifier=verifier)
    assert response.status_code == 200, response.content
    return verify_id_token(flow.client, response.json()["id_token"])


def second_factor_url(response: Any) -> str:
    location = response["Location"]
    assert re.search(r"/sign-in/[^/]+/second-factor/$", location), location
    return location


def post_code(flow: Any, url: str, authenticator: str, code: str) -> Any:
    return flow.client.post(f"{url}?authenticator={authenticator}",
                            {"authenticator": authenticator, "action": "verify", "code": code})


# -- signing in with a second factor ----------------------------------------------------------------------
def test_password_then_totp_ends_with_tokens_whose_amr_says_mfa(flow, confidential_app, totp_user):
    response, params, verifier = password_step(flow, confidential_app)
    url = second_factor_url(response)
    assert "_auth_user_id" not in flow.client.session  # nobody is signed in after the password
    page = flow.client.get(url)
    html = page.content.decode()
    assert page.status_code == 200 and page["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    assert 'autocomplete="one-time-code"' in html and '<label for="id_code">' in html
    assert 'href="?authenticator=totp"' in html and 'href="?authenticator=email_code"' in html
    assert "<script" not in html
    wrong = post_code(flow, url, "totp", "000000" if totp_now() != "000000" else "111111")
    assert wrong.status_code == 400 and form_errors(wrong.content.decode()) == ["The code is incorrect."]
    done = post_code(flow, url, "totp", totp_now())
    assert done.status_code == 303
    claims = id_token_claims(flow, confidential_app, follow_to_code(flow.client, done), params, verifier)
    assert {"pwd", "otp", "mfa"} <= set(claims["amr"]) and claims["acr"] == "urn:portcullis:acr:2fa"


def test_a_backup_code_signs_in_once(flow, confidential_app, totp_user):
    codes = backup_code.replace_codes(totp_user)
    response, params, verifier = password_step(flow, confidential_app)
    url = second_factor_url(response)
    html = flow.client.get(f"{url}?authenticator=backup_code").content.decode()
    assert 'aria-current="page">Backup code<' in html
    done = post_code(flow, url, "backup_code", codes[0])
    claims = id_token_claims(flow, confidential_app, follow_to_code(flow.client, done), params, verifier)
    assert {"otp", "mfa"} <= set(claims["amr"])
    flow.client.logout()
    response, _params, _verifier = password_step(flow, confidential_app)
    reused = post_code(flow, second_factor_url(response), "backup_code", codes[0])
    assert reused.status_code == 400 and "The code is incorrect." in form_errors(reused.content.decode())[0]


def test_an_email_code_beside_the_app_send_then_verify(flow, confidential_app, totp_user):
    response, params, verifier = password_step(flow, confidential_app)
    url = second_factor_url(response)
    page = flow.client.get(f"{url}?authenticator=email_code").content.decode()
    assert ">Send code</button>" in page and 'name="code"' not in page
    sent = flow.client.post(f"{url}?authenticator=email_code", {"authenticator": "email_code", "action": "send"})
    assert sent.status_code == 303
    page = flow.client.get(sent["Location"]).content.decode()
    assert "We sent a code to your e-mail address." in page and ">Resend code</button>" in page
    assert 'autocomplete="one-time-code"' in page
    code = re.search(r"\b(\d{6})\b", mail.outbox[0].body).group(1)
    resent = flow.client.post(f"{url}?authenticator=email_code", {"authenticator": "email_code", "action": "send"})
    assert resent.status_code == 429 and "Too many attempts" in resent.content.decode()  # the cool-down
    done = post_code(flow, url, "email_code", code)
    claims = id_token_claims(flow, confidential_app, follow_to_code(flow.client, done), params, verifier)
    assert {"otp", "mfa"} <= set(claims["amr"])


def test_the_authorization_endpoint_never_issues_a_code_after_only_the_first_factor(flow, confidential_app, totp_user):
    response, params, _verifier = password_step(flow, confidential_app)
    second_factor_url(response)
    for extra in ({}, {"prompt": "none"}):
        again = flow.authorize({**params, **extra})
        assert again.status_code in (302, 303)
        location = again["Location"]
        assert "code" not in query_of(location), location
        if extra:
            assert location.startswith(REDIRECT_URI) and query_of(location)["error"] == "login_required"
        else:
            assert "/sign-in/" in location
    assert "_auth_user_id" not in flow.client.session


def test_the_second_factor_page_before_the_password_goes_back_to_sign_in(flow, confidential_app, totp_user):
    sign_in = sign_in_url_from(flow.authorize(authorize_params(confidential_app)))
    response = flow.client.get(sign_in + "second-factor/")
    assert response.status_code == 303 and response["Location"] == sign_in
    forged = flow.client.post(sign_in + "second-factor/?authenticator=totp",
                              {"authenticator": "totp", "action": "verify", "code": totp_now()})
    assert forged.status_code == 400
    assert TOTPDevice.objects.get(user=totp_user).last_t == -1  # the code was not even checked


def test_the_second_factor_page_is_translated(flow, confidential_app, totp_user):
    response, _params, _verifier = password_step(flow, confidential_app, ui_locales="ru")
    html = flow.client.get(second_factor_url(response)).content.decode()
    assert "Подтвердите, что это вы" in html and "Код из приложения-аутентификатора" in html


# -- enrolment in the flow ------------------------------------------------------------------------------------
def test_required_mfa_enrols_an_app_in_the_flow_then_backup_codes_then_tokens(flow, confidential_app, user,
                                                                           second_factors, mfa_required):
    response, params, verifier = password_step(flow, confidential_app)
    enrol = response["Location"]
    assert re.search(r"/sign-in/[^/]+/enrol/$", enrol), enrol
    page = flow.client.get(enrol)
    html = page.content.decode()
    assert page.status_code == 200 and '<svg' in html and 'role="img"' in html
    assert "https://" not in html.split("<svg", 1)[1].split("</svg>", 1)[0].replace("http://www.w3.org", "")
    assert 'autocomplete="one-time-code"' in html
    key = secret_from_page(html)
    assert flow.client.get(enrol).content.decode().count(re.search(r'id="totp-secret">([^<]+)<', html).group(1)) == 1
    wrong = flow.client.post(enrol, {"action": "confirm", "code": "000000" if totp_now(key) != "000000" else "1"})
    assert wrong.status_code == 400 and "The code is incorrect." in form_errors(wrong.content.decode())[-1]
    confirmed = flow.client.post(enrol, {"action": "confirm", "code": totp_now(key)})
    assert confirmed.status_code == 303 and confirmed["Location"] == enrol
    html = flow.client.get(enrol).content.decode()
    assert "Your authenticator app is set up." in html and ">Create backup codes</button>" in html
    shown = flow.client.post(enrol, {"action": "backup_codes"})
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", shown.content.decode())
    assert len(codes) == 10 and BackupCode.objects.filter(user=user).count() == 10
    done = flow.client.post(enrol, {"action": "continue"})
    claims = id_token_claims(flow, confidential_app, follow_to_code(flow.client, done), params, verifier)
    assert {"pwd", "otp", "mfa"} <= set(claims["amr"])
    # The next sign-in asks for the app.
    flow.client.logout()
    response, params, verifier = password_step(flow, confidential_app)
    done = post_code(flow, second_factor_url(response), "totp", totp_now(key, steps_ahead=1))
    assert {"otp", "mfa"} <= set(id_token_claims(flow, confidential_app, follow_to_code(flow.client, done),
                                                 params, verifier)["amr"])


def test_required_mfa_never_offers_the_email_code_alone(flow, confidential_app, user, second_factors, mfa_required):
    response, _params, _verifier = password_step(flow, confidential_app)
    assert response["Location"].endswith("/enrol/")
    second_factor = response["Location"].replace("/enrol/", "/second-factor/")
    assert flow.client.get(second_factor)["Location"] == response["Location"]  # not offered: enrol instead
    sent = flow.client.post(f"{second_factor}?authenticator=email_code", {"authenticator": "email_code", "action": "send"})
    assert sent.status_code == 400 and mail.outbox == []


def test_continue_on_the_enrolment_page_without_enrolling_stays_there(flow, confidential_app, user, second_factors,
                                                                    mfa_required):
    response, _params, _verifier = password_step(flow, confidential_app)
    stay = flow.client.post(response["Location"], {"action": "continue"})
    assert stay.status_code == 303 and stay["Location"] == response["Location"]
    assert "_auth_user_id" not in flow.client.session


# -- the account page -------------------------------------------------------------------------------------------
def signed_in(flow: Any, app: Any) -> None:
    response, params, verifier = password_step(flow, app)
    if "/second-factor/" in response["Location"]:
        response = post_code(flow, response["Location"], "totp", totp_now())
    follow_to_code(flow.client, response)


def test_the_account_page_needs_a_sign_in(client, user):
    response = client.get("/account/security/")
    assert response.status_code == 302 and response["Location"].startswith("/sign-in/?next=")


def test_adding_an_app_on_the_account_page(flow, confidential_app, user, second_factors):
    signed_in(flow, confidential_app)
    page = flow.client.get("/account/security/").content.decode()
    assert "Add an authenticator app" in page
    html = flow.client.get("/account/security/totp/").content.decode()
    key = secret_from_page(html)
    added = flow.client.post("/account/security/totp/", {"code": totp_now(key)})
    assert added.status_code == 303 and added["Location"] == "/account/security/"
    page = flow.client.get("/account/security/").content.decode()
    assert "The authenticator app was added." in page and "Remove Authenticator app" in page
    shown = flow.client.post("/account/security/", {"action": "backup_codes"})  # the first codes: no re-auth
    assert len(re.findall(r"<li><code>([a-z0-9-]+)</code></li>", shown.content.decode())) == 10
    assert AuditEvent.objects.filter(kind="mfa.added", user=user).count() == 2


def test_removing_a_factor_needs_a_re_authentication(flow, confidential_app, totp_user):
    signed_in(flow, confidential_app)
    asked = flow.client.post("/account/security/", {"action": "remove", "factor": "totp"})
    assert asked.status_code == 303 and asked["Location"].startswith("/account/security/confirm/?then=remove")
    assert TOTPDevice.objects.filter(user=totp_user).exists()
    page = flow.client.get(asked["Location"]).content.decode()
    assert 'autocomplete="current-password"' in page and 'href="?then=remove%3Atotp&amp;method=totp"' in page
    wrong = flow.client.post("/account/security/confirm/", {"method": "password", "then": "remove:totp",
                                                             "password": "not it"})
    assert wrong.status_code == 400 and TOTPDevice.objects.filter(user=totp_user).exists()
    done = flow.client.post("/account/security/confirm/", {"method": "password", "then": "remove:totp",
                                                            "password": PASSWORD})
    assert done.status_code == 303 and not TOTPDevice.objects.filter(user=totp_user).exists()
    assert AuditEvent.objects.filter(kind="mfa.removed", user=totp_user, authenticator="totp").exists()


def test_replacing_backup_codes_needs_a_re_authentication_by_a_second_factor_too(flow, confidential_app, totp_user):
    old = backup_code.replace_codes(totp_user)
    signed_in(flow, confidential_app)
    asked = flow.client.post("/account/security/", {"action": "backup_codes"})
    assert asked.status_code == 303 and "/account/security/confirm/" in asked["Location"]
    confirmed = flow.client.post("/account/security/confirm/", {"method": "backup_code", "then": "backup_codes",
                                                                 "code": old[5]})
    assert confirmed.status_code == 303
    shown = flow.client.post("/account/security/", {"action": "backup_codes"})
    new = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", shown.content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    assert BackupCode.objects.filter(user=totp_user, used_at__isnull=True).count() == 10


def test_five_wrong_re_authentications_sign_the_session_out(flow, confidential_app, totp_user):
    signed_in(flow, confidential_app)
    for attempt in range(5):
        wrong = flow.client.post("/account/security/confirm/", {"method": "password", "then": "remove:totp",
                                                                 "password": f"guess {attempt}"})
        assert wrong.status_code == 400
    assert "_auth_user_id" not in flow.client.session
    assert flow.client.post("/account/security/confirm/", {"method": "password", "then": "remove:totp",
                                                            "password": PASSWORD}).status_code == 302
    assert TOTPDevice.objects.filter(user=totp_user).exists()
