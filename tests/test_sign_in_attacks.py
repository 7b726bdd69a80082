"""SECURITY.md "Passwords and sign-in" lines not attacked elsewhere (the table in docs/security.md
names every line's tests): the session key changes after each factor, on the hosted pages and
through the Experience API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tests.helpers import PASSWORD, authorize_params, browser_request, pkce_pair, sign_in_url_from, totp_now

pytestmark = pytest.mark.django_db
API = "/api/experience/"


def session_key(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def api_post(client: Client, path: str, body: Any = None) -> Any:
    token = client.cookies["csrftoken"].value
    return client.post(path, json.dumps(body or {}), content_type="application/json", headers={"X-CSRFToken": token})


# -- the session key changes after each factor ----------------------------------------------------------
def test_the_session_key_changes_after_the_password_and_after_the_second_factor_on_the_pages(
        flow, confidential_app, totp_user):
    _verifier, challenge = pkce_pair()
    sign_in = sign_in_url_from(flow.authorize(authorize_params(confidential_app, challenge)))
    before = session_key(flow.client)
    response = flow.client.post(sign_in, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 303 and response["Location"].endswith("/second-factor/")
    after_password = session_key(flow.client)
    assert after_password != before
    assert "_auth_user_id" not in flow.client.session  # not signed in yet: only the key rotated

    # An attacker holding the key from before the password (session fixation) has no interaction.
    fixed = Client()
    fixed.cookies[settings.SESSION_COOKIE_NAME] = before
    assert fixed.get(response["Location"]).status_code in (400, 404, 410)

    done = flow.client.post(f"{response['Location']}?authenticator=totp",
                            {"authenticator": "totp", "action": "verify", "code": totp_now()})
    assert done.status_code == 303
    assert session_key(flow.client) not in (before, after_password)


def test_the_session_key_changes_after_each_factor_through_the_api(client, totp_user):
    assert client.get(API + "config").status_code == 200
    state = api_post(client, API, {"event": "sign_in"}).json()
    before = session_key(client)
    password = api_post(client, f"{API}{state['id']}/password", {"identifier": "alice", "password": PASSWORD})
    assert password.status_code == 200 and password.json()["next_step"] == "second_factor_required"
    after_password = session_key(client)
    assert after_password != before

    stale = Client()
    stale.cookies[settings.SESSION_COOKIE_NAME] = before
    assert stale.get(f"{API}{state['id']}").status_code == 404  # the old key no longer owns it

    second = api_post(client, f"{API}{state['id']}/totp", {"code": totp_now()})
    assert second.status_code == 200 and second.json()["next_step"] == "submit"
    after_second = session_key(client)
    assert after_second not in (before, after_password)
    assert client.get(f"{API}{state['id']}").status_code == 200  # the interaction stays this browser's
    assert "redirect_to" in api_post(client, f"{API}{state['id']}/submit").json()


def test_a_refused_factor_keeps_the_session_key(client, totp_user):
    assert client.get(API + "config").status_code == 200
    state = api_post(client, API, {"event": "sign_in"}).json()
    before = session_key(client)
    wrong = api_post(client, f"{API}{state['id']}/password", {"identifier": "alice", "password": "wrong password!"})
    assert wrong.status_code == 400
    assert session_key(client) == before


# -- Argon2id, long passwords, paste, no composition rules ---------------------------------------------
def test_passwords_are_hashed_with_argon2id(db, mail_code, mailoutbox, user):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import Argon2PasswordHasher, get_hasher

    from config import settings as production
    from experience import interaction as engine
    from tests.test_sign_up import verified_sign_up

    assert production.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    assert get_hasher().algorithm == "argon2"  # the suite's is Argon2id at its lowest cost (tests/hashers.py)
    assert Argon2PasswordHasher.memory_cost >= 19 * 1024  # KiB: OWASP's minimum for Argon2id
    request = browser_request()
    interaction = verified_sign_up(request, mail_code, mailoutbox)
    engine.set_profile(request, interaction, {"password": "a long and unusual passphrase"})
    engine.submit(request, interaction)
    for account in get_user_model().objects.all():  # the sign-up's account and a created one
        assert account.password.startswith("argon2$argon2id$"), account.password[:20]


LONG = "Ünïcode pässphrase with spaces, symbols §¶ and emoji 🔑 " * 4  # 220 characters


@pytest.mark.parametrize("password", [LONG[:64], LONG], ids=["64", "220"])
def test_a_long_password_signs_in_on_the_page_and_through_the_api(flow, confidential_app, user, password):
    user.set_password(password)
    user.save()
    sign_in = sign_in_url_from(flow.authorize(authorize_params(confidential_app, pkce_pair()[1])))
    page = flow.client.post(sign_in, {"identifier": "alice", "password": password, "authenticator": "password"})
    assert page.status_code == 303 and "/second-factor/" not in page["Location"]

    api = Client()
    assert api.get(API + "config").status_code == 200
    state = api_post(api, API, {"event": "sign_in"}).json()
    answer = api_post(api, f"{API}{state['id']}/password", {"identifier": "alice", "password": password})
    assert answer.status_code == 200 and answer.json()["identified"] is True


def password_inputs(html: str) -> list[str]:
    import re

    return re.findall(r"<input[^>]*type=\"password\"[^>]*>", html)


def test_password_fields_allow_paste_and_password_managers(flow, confidential_app, user, mail_code, mailoutbox):
    """No autocomplete="off", no paste/copy/drop blocking, no maxlength under 64, on every password
    field a user meets (sign-in, sign-up's profile, the new password), and nowhere in the templates."""
    import re
    from pathlib import Path

    from django.urls import reverse

    from tests.helpers import code_in_mail

    sign_in = sign_in_url_from(flow.authorize(authorize_params(confidential_app)))
    uid = re.search(r"/sign-in/([^/]+)/", sign_in).group(1)  # type: ignore[union-attr]
    pages = {"sign-in": flow.client.get(sign_in).content.decode()}
    sign_up = reverse("experience:sign-up", args=[uid])
    flow.client.get(sign_up)
    assert flow.client.post(sign_up, {"authenticator": "mail", "email": "new@example.com", "action": "send"}).status_code == 303
    verified = flow.client.post(sign_up, {"action": "verify", "code": code_in_mail(mailoutbox[-1])})
    assert verified.status_code == 303, verified.content.decode()[:500]
    pages["profile"] = flow.client.get(verified["Location"]).content.decode()
    expected = {"sign-in": "current-password", "profile": "new-password"}
    for name, html in pages.items():
        inputs = password_inputs(html)
        assert inputs, name
        for tag in inputs:
            assert f'autocomplete="{expected[name]}"' in tag, tag
            length = re.search(r'maxlength="(\d+)"', tag)
            assert length is None or int(length.group(1)) >= 64, tag
        assert not re.search(r"on(paste|copy|drop|cut)\s*=", html, re.IGNORECASE), name
    templates = Path(__file__).resolve().parent.parent / "experience" / "templates"
    for template in templates.rglob("*.html"):
        text = template.read_text()  # (a captcha's answer may say autocomplete="off": it is no password)
        assert not re.search(r"on(paste|copy|drop)\s*=", text, re.IGNORECASE), template
        for tag in password_inputs(text):
            assert 'autocomplete="off"' not in tag, (template, tag)


@pytest.mark.parametrize("password", ["quietharbourlantern", "84027519368402", "every word lowercase",
                                      "ZEBRASTRIPES IN CAPS"])
def test_no_composition_rules_by_default(db, mail_code, mailoutbox, password):
    from experience import interaction as engine
    from tests.test_sign_up import verified_sign_up

    request = browser_request()
    interaction = verified_sign_up(request, mail_code, mailoutbox)
    engine.set_profile(request, interaction, {"password": password})  # no digit, symbol or case demanded
    assert interaction.state["profile"]["password_set"]


# -- SMS: TOTP beside it --------------------------------------------------------------------------------
def test_a_user_who_signs_in_by_sms_is_offered_totp_and_sms_is_never_a_second_factor(totp_user, sms_outbox):
    import re

    from authenticators.models import Authenticator
    from identity.models import Profile

    Authenticator.objects.filter(name="sms-code").update(enabled=True)
    Profile.objects.filter(user=totp_user).update(phone_number="+14155552671")
    profile = Profile.objects.get(user=totp_user)
    profile.save()  # the sign-in identifiers follow a save
    client = Client()
    assert client.get(API + "config").status_code == 200
    state = api_post(client, API, {"event": "sign_in"}).json()
    sent = api_post(client, f"{API}{state['id']}/code", {"phone_number": "+14155552671"})
    assert sent.status_code == 200, sent.content
    code = re.search(r"\b(\d{6})\b", sms_outbox[-1].body).group(1)  # type: ignore[union-attr]
    after = api_post(client, f"{API}{state['id']}/code/verify", {"code_id": sent.json()["code_id"], "code": code})
    assert after.status_code == 200, after.content
    assert after.json()["next_step"] == "second_factor_required"
    assert "totp" in after.json()["methods"] and "sms-code" not in after.json()["methods"]


# -- a suspicious attempt is told to the user -----------------------------------------------------------
def test_a_lockout_tells_the_account_owner_once_and_an_unknown_account_tells_nobody(
        user, django_capture_on_commit_callbacks):
    from django.core import mail

    from experience import risk

    request = browser_request()
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(12):
            risk.failed(request, "Alice@example.com")
        for _ in range(12):
            risk.failed(request, "nobody@example.com")
    [notice] = mail.outbox
    assert notice.to == ["Alice@example.com"] and notice.subject == "Failed sign-ins to your account"
    assert "Hello Alice Liddell," in notice.body and PASSWORD not in notice.body


# -- one-time codes: 6 digits from secrets, stored hashed, 10 minutes ----------------------------------
def test_a_code_is_six_digits_from_secrets_stored_hashed_for_ten_minutes(user, mail_code, monkeypatch):
    import re
    import secrets

    from django.core import mail

    from authenticators.models import OneTimeCode

    drawn: list[int] = []
    real = secrets.randbelow
    monkeypatch.setattr("authenticators.base.secrets.randbelow", lambda n: drawn.append(n) or real(n))
    client = Client()
    assert client.get(API + "config").status_code == 200
    state = api_post(client, API, {"event": "sign_in"}).json()
    sent = api_post(client, f"{API}{state['id']}/code", {"email": "alice@example.com"}).json()
    assert drawn == [10**6] and sent["timeout"] == 600
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)  # type: ignore[union-attr]
    row = OneTimeCode.objects.get()
    assert code not in repr(list(OneTimeCode.objects.values()))  # only a hash of it is kept
    assert 590 <= (row.expires_at - row.created_at).total_seconds() <= 600
