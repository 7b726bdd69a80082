"""The hosted sign-in page, as an end user meets it."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher

from authenticators.models import Authenticator
from experience.models import AuditEvent
from tests.conftest import PASSWORD, authorize_params, sign_in_url_from

pytestmark = pytest.mark.django_db


def start(flow, app, **extra):
    response = flow.authorize(authorize_params(app, **extra))
    assert response.status_code == 303
    return sign_in_url_from(response)


def error_summary(html: str) -> list[str]:
    """The messages of the page's error summary (the element focused when the page loads)."""
    summary = re.search(r'<div class="error-summary" id="form-error" role="alert" tabindex="-1" autofocus[^>]*>(.*?)</div>', html, re.S)
    assert summary, html
    return [re.sub(r"<[^>]+>", "", item) for item in re.findall(r"<li>(.*?)</li>", summary.group(1), re.S)]


def test_every_input_has_a_visible_label(flow, confidential_app, user):
    html = flow.client.get(start(flow, confidential_app)).content.decode()
    inputs = re.findall(r'<input[^>]*type="(?:text|password|email)"[^>]*id="([^"]+)"', html)
    assert inputs, html
    for input_id in inputs:
        assert f'<label for="{input_id}">' in html


def test_unknown_account_and_wrong_password_look_the_same(flow, confidential_app, user):
    url = start(flow, confidential_app)
    wrong = flow.client.post(url, {"identifier": "alice", "password": "wrong password", "authenticator": "password"})
    unknown = flow.client.post(url, {"identifier": "nobody@example.com", "password": "wrong password", "authenticator": "password"})
    assert wrong.status_code == unknown.status_code == 400
    assert error_summary(wrong.content.decode()) == ["The sign-in details are incorrect."]
    assert error_summary(unknown.content.decode()) == ["The sign-in details are incorrect."]


def test_a_password_hash_is_computed_for_unknown_accounts_too(flow, confidential_app, user, monkeypatch):
    calls = []
    original_verify, original_encode = Argon2PasswordHasher.verify, Argon2PasswordHasher.encode
    monkeypatch.setattr(Argon2PasswordHasher, "verify", lambda self, *a: calls.append("verify") or original_verify(self, *a))
    monkeypatch.setattr(Argon2PasswordHasher, "encode", lambda self, *a: calls.append("encode") or original_encode(self, *a))
    url = start(flow, confidential_app)
    flow.client.post(url, {"identifier": "nobody@example.com", "password": "x" * 12, "authenticator": "password"})
    assert calls == ["encode"]
    calls.clear()
    flow.client.post(url, {"identifier": "alice", "password": "x" * 12, "authenticator": "password"})
    assert calls == ["verify"]


def test_email_is_case_insensitive_and_username_works(flow, confidential_app, user):
    for identifier in ("ALICE@EXAMPLE.COM", "alice"):
        flow.client.logout()
        code, _params = flow.code_for(confidential_app, identifier=identifier)
        assert code


def test_disabled_accounts_cannot_sign_in(flow, confidential_app, user):
    user.is_active = False
    user.save()
    url = start(flow, confidential_app)
    response = flow.client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 400
    assert "The sign-in details are incorrect." in response.content.decode()


def test_the_session_key_rotates_on_sign_in(flow, confidential_app, user):
    url = start(flow, confidential_app)
    flow.client.get(url)
    before = flow.client.session.session_key
    response = flow.client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 303
    assert flow.client.session.session_key != before


def test_an_interaction_cannot_be_used_from_another_browser(flow, confidential_app, user):
    from django.test import Client

    url = start(flow, confidential_app)
    stranger = Client()
    response = stranger.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 400
    assert "This sign-in page has expired" in response.content.decode()


def test_an_expired_interaction_offers_to_start_again(flow, confidential_app, user):
    from django.utils import timezone

    from experience.models import Interaction

    url = start(flow, confidential_app)
    Interaction.objects.update(expires_at=timezone.now())
    response = flow.client.get(url)
    assert response.status_code == 400
    assert "Start again" in response.content.decode()
    assert f"client_id={confidential_app.client_id}" in response.content.decode()


def test_a_finished_interaction_cannot_sign_in_again(flow, confidential_app, user):
    url = start(flow, confidential_app)
    assert flow.client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"}).status_code == 303
    again = flow.client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert again.status_code == 400
    assert "already finished" in again.content.decode()


def test_sign_in_successes_and_failures_are_audited_without_secrets(flow, confidential_app, user):
    url = start(flow, confidential_app)
    flow.client.post(url, {"identifier": "alice", "password": "wrong password 1", "authenticator": "password"})
    flow.client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    events = list(AuditEvent.objects.order_by("created_at", "pk").values("kind", "identifier", "reason", "client_id", "user"))
    assert events == [
        {"kind": "sign_in.failed", "identifier": "alice", "reason": "invalid_credentials",
         "client_id": confidential_app.client_id, "user": None},
        {"kind": "sign_in.succeeded", "identifier": "alice", "reason": "",
         "client_id": confidential_app.client_id, "user": user.pk},
    ]
    stored = repr(list(AuditEvent.objects.values()))
    assert PASSWORD not in stored and "wrong password 1" not in stored


def test_the_page_lists_the_enabled_authenticators_as_tabs(flow, confidential_app, user):
    Authenticator.objects.create(name="staff-password", auth_type="password", title="Staff password", sort_order=5)
    Authenticator.objects.create(name="old-password", auth_type="password", title="Old password", enabled=False)
    html = flow.client.get(start(flow, confidential_app)).content.decode()
    assert "Staff password" in html and "?authenticator=staff-password" in html
    assert "Old password" not in html
    assert html.index(">Password<") < html.index(">Staff password<")


def test_a_disabled_authenticator_cannot_be_used_by_posting_its_name(flow, confidential_app, user):
    Authenticator.objects.filter(name="password").update(enabled=False)
    url = start(flow, confidential_app)
    response = flow.client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 400
    assert "No sign-in method is enabled" in response.content.decode()


def test_the_page_is_translated(flow, confidential_app, user):
    url = start(flow, confidential_app)
    html = flow.client.get(url, HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert 'lang="ru"' in html
    assert "Вход в Relying party" in html and "Эл. почта или имя пользователя" in html and "Пароль" in html
    wrong = flow.client.post(url, {"identifier": "alice", "password": "nope nope", "authenticator": "password"},
                             HTTP_ACCEPT_LANGUAGE="uk")
    assert "Неправильні дані для входу." in wrong.content.decode()
