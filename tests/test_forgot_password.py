"""Forgot password: a code to the account's address identifies the user, the new password is saved,
every other session and refresh token of the user dies, the user is told, and nothing says whether
an address has an account."""

from __future__ import annotations

import json
import re
import sys
import types
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from authenticators.models import Authenticator
from experience import errors
from experience import interaction as engine
from experience.errors import EngineError
from experience.gates import RequirementMissing
from experience.models import AuditEvent, Interaction
from tests.helpers import (
    NEW_PASSWORD,
    PASSWORD,
    Flow,
    authorize_params,
    browser_request,
    code_in_mail,
    error_of,
    form_errors,
    password_data,
    query_of,
    refresh,
    sign_in_on_page,
    sign_in_url_from,
    tokens_for,
    userinfo_status,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def notified(monkeypatch) -> list[Any]:
    """Stands in for part codes' experience.notifications: the users told of a password change."""
    calls: list[Any] = []
    module = types.ModuleType("experience.notifications")
    module.password_changed = lambda request, user: calls.append(user)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "experience.notifications", module)
    return calls


def uid_of(url: str) -> str:
    found = re.search(r"/sign-in/([^/]+)/", url)
    assert found, url
    return found.group(1)


def identified_reset(request, mail_code, mailoutbox, address="alice@example.com"):
    interaction = engine.start(request, Interaction.FORGOT_PASSWORD)
    sent = engine.send_code(request, interaction, mail_code, {"email": address})
    engine.verify(request, interaction, mail_code, {"code_id": sent.code_id, "code": code_in_mail(mailoutbox[-1])})
    return interaction


def test_a_reset_on_the_pages_ends_every_other_session_and_refresh_token(
        client, confidential_app, user, mail_code, mailoutbox, notified):
    elsewhere = Flow(Client())  # the user's other device, signed in before the reset
    old_tokens = tokens_for(elsewhere, confidential_app)
    assert elsewhere.client.session.get("_auth_user_id") == str(user.pk)

    flow = Flow(client)
    params = authorize_params(confidential_app)
    sign_in = sign_in_url_from(flow.authorize(params))
    forgot = reverse("experience:forgot-password", args=[uid_of(sign_in)])
    assert f'<a href="{forgot}">Forgot password?</a>' in client.get(sign_in).content.decode()
    assert 'autocomplete="email"' in client.get(forgot).content.decode()
    sent = client.post(forgot, {"authenticator": "mail", "email": "ALICE@example.com", "action": "send"})
    assert (sent.status_code, sent["Location"]) == (303, forgot)
    verified = client.post(forgot, {"action": "verify", "code": code_in_mail(mailoutbox[-1])})
    new_password = reverse("experience:new-password", args=[uid_of(sign_in)])
    assert (verified.status_code, verified["Location"]) == (303, new_password)
    assert 'autocomplete="new-password"' in client.get(new_password).content.decode()

    weak = client.post(new_password, {"password": "alice"})
    assert weak.status_code == 400
    assert form_errors(weak.content.decode())[0].startswith("New password: This password is too short.")
    user.refresh_from_db()
    assert user.check_password(PASSWORD)  # refused: nothing changed

    saved = client.post(new_password, {"password": NEW_PASSWORD})
    assert saved.status_code == 303
    back = client.get(saved["Location"])
    assert back.status_code == 302 and "code" in query_of(back["Location"])

    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD) and not user.check_password(PASSWORD)
    assert notified == [user]
    assert error_of(refresh(elsewhere.client, confidential_app, old_tokens["refresh_token"])) == "invalid_grant"
    assert userinfo_status(elsewhere.client, old_tokens["access_token"]) == 401
    # Its session ends on its next request (the session's password-derived hash no longer matches).
    silent = elsewhere.authorize(authorize_params(confidential_app, prompt="none"))
    assert query_of(silent["Location"]).get("error") == "login_required"
    assert "_auth_user_id" not in elsewhere.client.session
    reset = AuditEvent.objects.get(kind=AuditEvent.PASSWORD_RESET)
    assert reset.user == user and NEW_PASSWORD not in json.dumps(list(AuditEvent.objects.values()), default=str)


def test_the_old_password_stops_working_and_the_new_one_signs_in(client, confidential_app, user, mail_code,
                                                                  mailoutbox, notified):
    request = browser_request()
    interaction = identified_reset(request, mail_code, mailoutbox)
    assert engine.describe(request, interaction)["next_step"] == "new_password_required"
    engine.set_profile(request, interaction, {"password": NEW_PASSWORD})
    assert interaction.state["password_set"] is True
    engine.submit(request, interaction)
    flow = Flow(Client())
    sign_in = sign_in_url_from(flow.authorize(authorize_params(confidential_app)))
    old = sign_in_on_page(flow.client, sign_in, "alice", PASSWORD)
    assert form_errors(old.content.decode()) == ["The sign-in details are incorrect."]
    assert sign_in_on_page(flow.client, sign_in, "alice", NEW_PASSWORD).status_code == 303


def test_the_new_password_follows_the_policy(user, mail_code, mailoutbox, notified):
    request = browser_request()
    interaction = identified_reset(request, mail_code, mailoutbox)
    with pytest.raises(EngineError) as similar:
        engine.set_profile(request, interaction, {"password": "alice@example"})
    assert json.loads(errors.as_json(similar.value).content)["validation"]["fields"] == {
        "password": ["The password is too similar to the e-mail address."]}
    interaction.refresh_from_db()
    assert "password_set" not in interaction.state and notified == []


def test_reset_codes_are_answered_alike_for_unknown_and_known_addresses(client, confidential_app, user, mail_code,
                                                                        mailoutbox):
    flow = Flow(client)
    forgot = reverse("experience:forgot-password", args=[uid_of(sign_in_url_from(flow.authorize(
        authorize_params(confidential_app))))])
    client.get(forgot)
    answers = []
    for address in ("nobody@example.com", "alice@example.com"):
        response = client.post(forgot, {"authenticator": "mail", "email": address, "action": "send"})
        cookies = sorted((name, {k: v for k, v in morsel.items() if v and k != "expires"})
                         for name, morsel in response.cookies.items())
        answers.append((response.status_code, response.get("Location"), response.content, cookies))
        code_page = client.get(forgot)
        answers[-1] += (code_page.status_code, re.sub(r'value="[^"]{20,}"', "", code_page.content.decode())
                        .replace(address, "ADDRESS"))
    assert answers[0] == answers[1]
    assert [m.to for m in mailoutbox] == [["Alice@example.com"]]  # nothing to an address without an account


def test_a_code_for_an_unknown_address_identifies_nobody(db, mail_code, mailoutbox, password_authenticator):
    request = browser_request()
    interaction = engine.start(request, Interaction.FORGOT_PASSWORD)
    sent = engine.send_code(request, interaction, mail_code, {"email": "nobody@example.com"})
    with pytest.raises(EngineError) as refused:
        engine.verify(request, interaction, mail_code, {"code_id": sent.code_id, "code": "123456"})
    assert refused.value.code == "invalid_code"
    assert mailoutbox == []


# -- out of order ----------------------------------------------------------------------------------------
def test_a_new_password_before_identifying_answers_the_requirement_and_changes_nothing(user, mail_code, notified):
    request = browser_request()
    interaction = engine.start(request, Interaction.FORGOT_PASSWORD)
    before = dict(interaction.state)
    with pytest.raises(RequirementMissing) as missing:
        engine.set_profile(request, interaction, {"password": NEW_PASSWORD})
    assert missing.value.gate == "identify"
    assert errors.as_json(missing.value).status_code == 400
    interaction.refresh_from_db()
    user.refresh_from_db()
    assert interaction.state == before and user.check_password(PASSWORD) and notified == []


def test_the_new_password_page_before_identifying_sends_back_to_the_address(client, confidential_app, user,
                                                                            mail_code, notified):
    flow = Flow(client)
    sign_in = sign_in_url_from(flow.authorize(authorize_params(confidential_app)))
    uid = uid_of(sign_in)
    forgot = reverse("experience:forgot-password", args=[uid])
    client.post(forgot, {"authenticator": "mail", "email": "alice@example.com", "action": "send"})
    new_password = reverse("experience:new-password", args=[uid])
    assert client.get(new_password)["Location"] == forgot
    posted = client.post(new_password, {"password": NEW_PASSWORD})
    assert (posted.status_code, posted["Location"]) == (303, forgot)
    user.refresh_from_db()
    assert user.check_password(PASSWORD) and "password_set" not in Interaction.objects.get(uid=uid).state


def test_a_code_without_a_sent_code_or_a_password_without_a_value_is_a_clear_error(user, mail_code, mailoutbox,
                                                                                    client, confidential_app):
    flow = Flow(client)
    uid = uid_of(sign_in_url_from(flow.authorize(authorize_params(confidential_app))))
    forgot = reverse("experience:forgot-password", args=[uid])
    assert client.post(forgot, {"action": "verify", "code": "123456"}).status_code == 303  # nothing sent: start over
    assert client.post(forgot, {"authenticator": "mail", "email": "not an address", "action": "send"}).status_code == 400
    request = browser_request()
    interaction = identified_reset(request, mail_code, mailoutbox)
    for bad in ({}, {"password": ""}, {"password": ["a", "list"]}, {"password": 12345678}):
        with pytest.raises(EngineError) as refused:
            engine.set_profile(request, interaction, bad)
        assert refused.value.kind == "validation" and list(refused.value.data["fields"]) == ["password"]


def test_the_password_reset_needs_the_first_factor_of_this_user(user, mail_code, mailoutbox, notified):
    """A password verification of another interaction, or of the sign-in, never carries over."""
    request = browser_request()
    signing_in = engine.start(request)
    engine.verify(request, signing_in, Authenticator.objects.get(name="password"), password_data())
    engine.set_event(request, signing_in, Interaction.FORGOT_PASSWORD)
    with pytest.raises(RequirementMissing):
        engine.set_profile(request, signing_in, {"password": NEW_PASSWORD})


def test_a_new_password_replaces_the_old_one_only_after_the_second_factor(
        user, mail_code, mailoutbox, second_factors, notified):
    """Whoever reads the user's mail (the reset code) cannot change the password of an account with
    a second factor: the new password waits in the interaction until the factor is proved."""
    from tests.helpers import give_totp, totp_now

    give_totp(user)
    request = browser_request()
    interaction = identified_reset(request, mail_code, mailoutbox)
    engine.set_profile(request, interaction, {"password": NEW_PASSWORD})
    user.refresh_from_db()
    assert user.check_password(PASSWORD) and not user.check_password(NEW_PASSWORD)
    assert engine.describe(request, interaction)["next_step"] == "second_factor_required"
    with pytest.raises(RequirementMissing) as missing:
        engine.submit(request, interaction)
    assert missing.value.gate == "second_factor_required"
    user.refresh_from_db()
    assert user.check_password(PASSWORD) and notified == []

    engine.verify_second_factor(request, interaction, second_factors["totp"], {"code": totp_now()})
    engine.submit(request, interaction)
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD) and notified == [user]
    interaction.refresh_from_db()
    assert "new_password_hash" not in interaction.state  # the finished interaction keeps no hash
