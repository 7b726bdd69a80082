"""A person in a real browser signs in with a code sent by e-mail, read from the in-memory outbox
(the live server runs in this process), and the demo client shows the ID token's claims."""

from __future__ import annotations

import json
import re

import pytest
from django.core import mail
from playwright.sync_api import expect

from authenticators.models import Authenticator
from identity.models import Profile

pytestmark = pytest.mark.browser


@pytest.fixture
def demo_client(demo_client):
    """The demo client, with the e-mail code authenticator."""
    # What the data migration creates (a transactional test starts from an emptied database).
    Authenticator.objects.get_or_create(name="email-code", defaults={
        "auth_type": "email-code", "title": "E-mail code", "enabled": True, "sort_order": 10})
    return demo_client


@pytest.fixture
def unverified_user(user):
    """Alice, whose address is not verified yet: the code will verify it. (Before ``page``: the
    database cannot be used from the test once Playwright's event loop runs.)"""
    Profile.objects.filter(user=user).update(email_verified=False)
    return user


def test_sign_in_with_an_email_code(live_server, demo_client, unverified_user, page):
    page.goto(f"{live_server.url}/demo/")
    page.get_by_role("link", name="Sign in with Portcullis").click()
    page.wait_for_url("**/sign-in/**")

    page.get_by_role("link", name="E-mail code").click()
    page.get_by_label("E-mail").fill("alice@example.com")
    page.get_by_role("button", name="Send code").click()
    expect(page.get_by_text("We sent a code to alice@example.com. Enter it below.")).to_be_visible()
    code_input = page.get_by_label("Code")
    assert code_input.get_attribute("autocomplete") == "one-time-code"
    assert code_input.get_attribute("inputmode") == "numeric"

    # Too early for another code: the page says how long to wait.
    page.get_by_role("button", name="Resend code").click()
    expect(page.get_by_role("alert")).to_contain_text("before asking for a new code")
    assert re.fullmatch(r"There is a problem\nWait \d+ s before asking for a new code\.",
                        page.get_by_role("alert").inner_text())
    assert len(mail.outbox) == 1
    code = re.search(r"\b(\d{6})\b", mail.outbox[0].body).group(1)

    page.get_by_label("Code").fill(f"{(int(code) + 1) % 10**6:06d}")
    page.get_by_role("button", name="Sign in").click()
    # the wait page's alert is still up until the answer loads: wait for the new one
    expect(page.get_by_role("alert")).to_contain_text("The code is incorrect.")
    assert page.get_by_role("alert").inner_text().splitlines() == ["There is a problem", "The code is incorrect."]

    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/demo/")
    claims = json.loads(page.locator("#claims").inner_text())
    assert "otp" in claims["amr"] and claims["amr"] == ["otp"]
    assert claims["email"] == "Alice@example.com"
    userinfo = json.loads(page.locator("#userinfo").inner_text())
    assert userinfo["email_verified"] is True
