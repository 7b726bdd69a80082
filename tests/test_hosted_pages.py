"""The hosted pages as a whole (part p2pages): an unfinished sign-in resumes where it stopped when the
client sends the browser to the authorization endpoint again; the captcha and the lockout on every
page that sends a code (sign-up, forgot password); the named secondary actions; ru and uk."""

from __future__ import annotations

import re
from typing import Any

import pytest
from captcha.models import CaptchaStore
from django.test import Client, RequestFactory
from django.urls import reverse

from experience import risk
from experience.models import Interaction
from experience.policy import Policy
from tests.helpers import (
    PASSWORD,
    REDIRECT_URI,
    authorize_params,
    follow_to_code,
    pkce_pair,
    query_of,
    sign_in_url_from,
    totp_now,
    verify_id_token,
)

pytestmark = pytest.mark.django_db

CAPTCHA_ID = re.compile(r'name="captcha_id" value="([0-9a-f]+)"')
SECOND_FACTOR = re.compile(r"/sign-in/([^/]+)/second-factor/$")


def captcha_on(html: str) -> str | None:
    found = CAPTCHA_ID.search(html)
    return found.group(1) if found else None


def answer(key: str) -> str:
    return CaptchaStore.objects.get(hashkey=key).response  # as a person reads the picture


def uid_of(url: str) -> str:
    found = re.search(r"/sign-in/([^/?]+)/", url)
    assert found, url
    return found.group(1)


def volatile(html: bytes) -> str:
    """A page without what differs on every answer (CSRF token, CSP nonce)."""
    return re.sub(r'(value|nonce)="[^"]*"', "", html.decode())


def captcha_always(monkeypatch: Any) -> None:
    monkeypatch.setattr("experience.policy.resolve", lambda client_id: Policy(client_id=client_id, captcha="always"))


# -- resume instead of restart ---------------------------------------------------------------------------------
def password_then_authorize_again(flow: Any, app: Any) -> tuple[Any, dict[str, str], str, str]:
    verifier, challenge = pkce_pair()
    params = authorize_params(app, challenge)
    sign_in = sign_in_url_from(flow.authorize(params))
    done = flow.client.post(sign_in, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert done.status_code == 303 and SECOND_FACTOR.search(done["Location"]), done["Location"]
    again = flow.authorize(params)  # the client (or Back, or a reload) sends the browser again
    return again, params, verifier, done["Location"]


def test_authorizing_again_after_the_password_resumes_at_the_second_factor_then_the_totp_gives_the_code(
        flow, confidential_app, totp_user):
    again, params, verifier, second_factor = password_then_authorize_again(flow, confidential_app)
    assert again.status_code == 303 and again["Location"] == second_factor  # not a new sign-in form
    assert "code" not in query_of(again["Location"]) and "_auth_user_id" not in flow.client.session
    assert Interaction.objects.count() == 1
    page = flow.client.get(again["Location"])
    assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.content.decode()
    done = flow.client.post(f"{second_factor}?authenticator=totp",
                            {"authenticator": "totp", "action": "verify", "code": totp_now()})
    code = follow_to_code(flow.client, done)
    tokens = flow.token(confidential_app, code, params, code_verifier=verifier)
    assert tokens.status_code == 200, tokens.content
    assert "mfa" in verify_id_token(flow.client, tokens.json()["id_token"])["amr"]


def test_a_different_authorization_request_starts_a_new_sign_in(flow, confidential_app, totp_user):
    _again, params, _verifier, second_factor = password_then_authorize_again(flow, confidential_app)
    other = flow.authorize({**params, "state": "another-request"})
    assert other.status_code == 303 and other["Location"] != second_factor
    assert re.search(r"/sign-in/[^/]+/$", other["Location"]) and uid_of(other["Location"]) != uid_of(second_factor)


def test_another_browser_never_resumes_the_interaction(flow, confidential_app, totp_user):
    _again, params, _verifier, second_factor = password_then_authorize_again(flow, confidential_app)
    stranger = Client().get("/oauth/authorize", params)
    assert stranger.status_code == 303 and uid_of(stranger["Location"]) != uid_of(second_factor)
    assert "second-factor" not in stranger["Location"]


def test_an_expired_or_finished_interaction_is_not_resumed(flow, confidential_app, totp_user):
    _again, params, _verifier, second_factor = password_then_authorize_again(flow, confidential_app)
    Interaction.objects.filter(uid=uid_of(second_factor)).update(expires_at="2000-01-01T00:00:00Z")
    fresh = flow.authorize(params)
    assert "second-factor" not in fresh["Location"] and uid_of(fresh["Location"]) != uid_of(second_factor)


def test_prompt_none_while_the_second_factor_is_pending_is_login_required_never_a_code(
        flow, confidential_app, totp_user):
    _again, params, _verifier, _second_factor = password_then_authorize_again(flow, confidential_app)
    silent = flow.authorize({**params, "prompt": "none"})
    assert silent["Location"].startswith(REDIRECT_URI)
    assert query_of(silent["Location"]).get("error") == "login_required" and "code" not in query_of(silent["Location"])


# -- captcha and lockout on the pages that send a code ------------------------------------------------------------
def address_page(flow: Any, app: Any, name: str) -> str:
    sign_in = sign_in_url_from(flow.authorize(authorize_params(app)))
    return reverse(f"experience:{name}", args=[uid_of(sign_in)])


@pytest.mark.parametrize("name", ["sign-up", "forgot-password"])
def test_sending_a_code_demands_the_captcha_and_accepts_its_answer(flow, confidential_app, user, mail_code,
                                                                 mailoutbox, monkeypatch, name):
    captcha_always(monkeypatch)
    url = address_page(flow, confidential_app, name)
    page = flow.client.get(url).content.decode()
    key = captcha_on(page)
    assert key and '<label for="id_captcha_answer">' in page
    address = "alice@example.com" if name == "forgot-password" else "somebody@example.com"
    data = {"authenticator": mail_code.name, "email": address, "action": "send"}
    missing = flow.client.post(url, data)
    assert missing.status_code == 400 and "Solve the captcha to continue." in missing.content.decode()
    assert not mailoutbox
    wrong = flow.client.post(url, {**data, "captcha_id": captcha_on(missing.content.decode()), "captcha_answer": "nope"})
    html = wrong.content.decode()
    assert wrong.status_code == 400 and "The captcha answer is wrong. Try the new one." in html
    assert 'aria-invalid="true" aria-describedby="id_captcha_answer_error"' in html
    assert not mailoutbox
    key = captcha_on(html)
    solved = answer(key)
    sent = flow.client.post(url, {**data, "captcha_id": key, "captcha_answer": solved})
    assert sent.status_code == 303 and len(mailoutbox) == 1
    code_page = flow.client.get(url).content.decode()
    assert ">Resend code</button>" in code_page and captcha_on(code_page)  # resending sends: a captcha again
    replay = flow.client.post(f"{url}?change=1", {**data, "captcha_id": key, "captcha_answer": solved})
    assert replay.status_code == 400 and "The captcha answer is wrong" in replay.content.decode()
    assert len(mailoutbox) == 1  # a solved captcha is used once


@pytest.mark.parametrize("name", ["sign-up", "forgot-password"])
def test_resend_code_with_the_captcha(flow, confidential_app, user, mail_code, mailoutbox, monkeypatch, name):
    url = address_page(flow, confidential_app, name)
    flow.client.get(url)
    address = "alice@example.com" if name == "forgot-password" else "new@example.com"
    sent = flow.client.post(url, {"authenticator": mail_code.name, "email": address, "action": "send"})
    assert sent.status_code == 303 and len(mailoutbox) == 1
    captcha_always(monkeypatch)
    page = flow.client.get(url).content.decode()
    refused = flow.client.post(url, {"action": "resend"})
    assert refused.status_code == 400 and "Solve the captcha to continue." in refused.content.decode()
    key = captcha_on(refused.content.decode()) or captcha_on(page)
    assert key
    cooling = flow.client.post(url, {"action": "resend", "captcha_id": key, "captcha_answer": answer(key)})
    # the captcha passed; the code's own 60 s cool-down answers now, on the same page
    assert cooling.status_code == 429 and "Retry-After" in cooling
    assert "before asking for a new code" in cooling.content.decode() and len(mailoutbox) == 1


@pytest.mark.parametrize("name", ["sign-up", "forgot-password"])
def test_a_locked_address_gets_the_lockout_page_with_retry_after(flow, confidential_app, user, mail_code,
                                                                mailoutbox, name):
    request = RequestFactory().get("/")
    for _ in range(risk.lockout_threshold()):
        risk.failed(request, "alice@example.com")
    url = address_page(flow, confidential_app, name)
    locked = flow.client.post(url, {"authenticator": mail_code.name, "email": "Alice@Example.com", "action": "send"})
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 60
    assert "Too many attempts" in locked.content.decode() and not mailoutbox
    unknown = address_page(flow, confidential_app, name)
    for _ in range(risk.lockout_threshold()):
        risk.failed(request, "nobody@example.com")
    same = flow.client.post(unknown, {"authenticator": mail_code.name, "email": "nobody@example.com", "action": "send"})
    assert same.status_code == 429 and same["Retry-After"] == locked["Retry-After"]
    assert volatile(same.content) == volatile(locked.content)  # an unknown address is answered alike


# -- named secondary actions (SPEC's hosted page contract) ---------------------------------------------------------
def test_every_step_page_names_its_secondary_actions(flow, confidential_app, user, mail_code, second_factors,
                                                     mailoutbox):
    sign_in = sign_in_url_from(flow.authorize(authorize_params(confidential_app)))
    uid = uid_of(sign_in)
    password_tab = flow.client.get(sign_in).content.decode()
    assert f'<a href="{reverse("experience:forgot-password", args=[uid])}">Forgot password?</a>' in password_tab
    assert f'<a href="{reverse("experience:sign-up", args=[uid])}">Create an account</a>' in password_tab
    assert 'href="?authenticator=email-code"' in password_tab  # the other method, as a link

    sent = flow.client.post(f"{sign_in}?authenticator=email-code",
                            {"authenticator": "email-code", "action": "send", "email": "bob@example.com"})
    code_step = flow.client.get(sent["Location"]).content.decode()
    assert 'name="action" value="resend">' in code_step and ">Resend code</button>" in code_step
    assert '<a href="?authenticator=password">Use another method</a>' in code_step
    assert ">Use another e-mail address</a>" in code_step and 'autocomplete="one-time-code"' in code_step

    for name, address in (("sign-up", "new@example.com"), ("forgot-password", "alice@example.com")):
        url = reverse(f"experience:{name}", args=[uid])
        flow.client.post(url, {"authenticator": "email-code", "action": "send", "email": address})
        page = flow.client.get(url).content.decode()
        assert ">Resend code</button>" in page and '<a href="?change=1">Use another address</a>' in page, name
        assert f'<a href="{sign_in}">Back to sign in</a>' in page, name


def test_the_second_factor_page_offers_every_other_factor_as_a_link(flow, confidential_app, totp_user):
    from authenticators.types import backup_code

    backup_code.replace_codes(totp_user)
    _again, _params, _verifier, second_factor = password_then_authorize_again(flow, confidential_app)
    page = flow.client.get(second_factor).content.decode()
    assert 'aria-current="page">Authenticator app<' in page
    for other in ("backup_code", "email_code"):
        assert f'href="?authenticator={other}"' in page
    assert '<a href="?authenticator=backup_code">Use another method</a>' in page
    email = flow.client.get(f"{second_factor}?authenticator=email_code").content.decode()
    assert '<a href="?authenticator=totp">Use another method</a>' in email and ">Send code</button>" in email


def test_without_sign_up_the_sign_in_page_offers_no_account_creation(flow, confidential_app, user, monkeypatch):
    from experience.policy import SignUpPolicy

    monkeypatch.setattr("experience.policy.resolve",
                        lambda client_id: Policy(client_id=client_id, sign_up=SignUpPolicy(enabled=False)))
    page = flow.client.get(sign_in_url_from(flow.authorize(authorize_params(confidential_app)))).content.decode()
    assert "Create an account" not in page and "Forgot password?" in page


def test_the_sign_in_code_tab_demands_the_captcha_to_send_and_to_resend(flow, confidential_app, user, mail_code,
                                                                        mailoutbox, monkeypatch):
    captcha_always(monkeypatch)
    url = sign_in_url_from(flow.authorize(authorize_params(confidential_app))) + "?authenticator=email-code"
    data = {"authenticator": "email-code", "action": "send", "email": "alice@example.com"}
    missing = flow.client.post(url, data)
    assert missing.status_code == 400 and not mailoutbox
    key = captcha_on(missing.content.decode())
    sent = flow.client.post(url, {**data, "captcha_id": key, "captcha_answer": answer(key)})
    assert sent.status_code == 303 and len(mailoutbox) == 1
    code_step = flow.client.get(sent["Location"]).content.decode()
    resend_form = code_step.split('value="resend"', 1)[1].split("</form>", 1)[0]
    key = captcha_on(resend_form)
    assert key and '<label for="id_captcha_answer">' in resend_form  # "Resend code" carries its captcha
    resend = {"authenticator": "email-code", "action": "resend"}
    refused = flow.client.post(url, resend)
    assert refused.status_code == 400 and "Solve the captcha to continue." in refused.content.decode()
    key = captcha_on(refused.content.decode())
    cooling = flow.client.post(url, {**resend, "captcha_id": key, "captcha_answer": answer(key)})
    assert cooling.status_code == 429 and "before asking for a new code" in cooling.content.decode()
    assert len(mailoutbox) == 1
