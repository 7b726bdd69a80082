"""A one-time code under parallel redemptions: 20 browsers-worth of requests verifying one e-mail
code through the hosted sign-in at once sign in exactly once (PostgreSQL and SQLite)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client

from authenticators.models import Authenticator
from tests.helpers import code_in_mail, run_together


@pytest.fixture
def email_code(transactional_db: Any) -> Authenticator:
    authenticator, _ = Authenticator.objects.update_or_create(
        name="email-code", defaults={"auth_type": "email-code", "title": "E-mail code", "enabled": True, "sort_order": 5})
    return authenticator


def test_twenty_parallel_redemptions_of_one_code_sign_in_once(django_user_model, email_code):
    django_user_model.objects.create_user("alice", "alice@example.com", "correct horse battery staple")
    browser = Client()
    started = browser.get("/sign-in/?next=/account/connected-apps/")
    sign_in = started["Location"]
    tab = f"{sign_in}?authenticator=email-code"
    sent = browser.post(tab, {"authenticator": "email-code", "action": "send", "email": "alice@example.com"})
    assert sent.status_code == 303
    code = code_in_mail(mail.outbox[-1])
    page = browser.get(tab).content.decode()
    assert 'autocomplete="one-time-code"' in page
    code_id = re.search(r'name="code_id" value="([^"]+)"', page).group(1)
    # Twenty copies of this browser (the same session cookie) send the code at once.
    cookies = browser.cookies

    def redeem(index: int) -> tuple[int, str | None]:
        copy = Client()
        copy.cookies = cookies
        answer = copy.post(tab, {"authenticator": "email-code", "code_id": code_id, "code": code})
        cookie = answer.cookies.get(settings.SESSION_COOKIE_NAME)
        return answer.status_code, None if cookie is None else cookie.value

    answers = run_together(20, redeem)
    statuses = [status for status, _ in answers]
    assert statuses.count(303) == 1, statuses  # one sign-in; the others: the code is spent
    assert all(status in (303, 400, 410) for status in statuses), statuses
    # Only the sign-in sets the browser's cookie: a losing answer arriving last neither deletes it
    # (its session was cycled away, not emptied) nor replaces it (identity.session_store).
    assert [cookie for status, cookie in answers if status != 303] == [None] * 19, answers
    assert "_auth_user_id" in browser.session
