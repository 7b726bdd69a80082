"""A person in a real browser (Chromium, no script of ours): creates an account with a code read from
the mail outbox, and resets a forgotten password; each ends with a code at the client's redirect URI,
exchanged for tokens whose claims are checked."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from playwright.sync_api import expect

from tests.helpers import (
    NEW_PASSWORD,
    PASSWORD,
    Flow,
    authorize_params,
    code_in_mail,
    jwt_payload,
    make_application,
    query_of,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def browser(page: Any, live_server: Any, transactional_db: Any, monkeypatch: Any) -> Any:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM beside Playwright's event loop
    page.route("https://rp.example.com/**", lambda route: route.fulfill(body="the client"))
    return page


def authorize(page: Any, base: str) -> tuple[Any, dict[str, str]]:
    app = make_application()
    params = authorize_params(app)
    page.goto(f"{base}/oauth/authorize?{urlencode(params)}")
    page.wait_for_url("**/sign-in/**")
    return app, params


def claims_at_the_client(page: Any, app: Any, params: dict[str, str]) -> dict[str, Any]:
    page.wait_for_url("https://rp.example.com/callback?**")
    code = query_of(page.url)["code"]
    response = Flow(Client()).token(app, code, params)
    assert response.status_code == 200, response.content
    return jwt_payload(response.json()["id_token"])


def test_a_person_creates_an_account_verifying_the_email(browser, live_server, mail_code, mailoutbox, password_authenticator):
    app, params = authorize(browser, live_server.url)
    browser.get_by_role("link", name="Create an account").click()
    browser.get_by_label("E-mail address").fill("new.person@example.com")
    browser.get_by_role("button", name="Send code").click()
    browser.get_by_label("Code").fill(code_in_mail(mailoutbox[-1]))
    browser.get_by_role("button", name="Continue").click()

    browser.get_by_role("heading", name="Finish creating your account").wait_for()
    password = browser.get_by_label("New password")
    assert "Common passwords are refused." in password.evaluate(
        "input => document.getElementById(input.getAttribute('aria-describedby').split(' ')[0]).textContent")
    password.fill("password1")
    browser.get_by_role("button", name="Create account").click()
    expect(browser.get_by_role("alert")).to_contain_text("This password is too common.")
    browser.get_by_label("Your name (optional)").fill("New Person")
    browser.get_by_label("New password").fill(NEW_PASSWORD)
    browser.get_by_role("button", name="Create account").click()

    claims = claims_at_the_client(browser, app, params)
    assert (claims["email"], claims["email_verified"], claims["name"], claims["amr"]) == (
        "new.person@example.com", True, "New Person", ["otp"])


def test_a_person_resets_a_forgotten_password(browser, live_server, user, mail_code, mailoutbox):
    app, params = authorize(browser, live_server.url)
    browser.get_by_role("link", name="Forgot password?").click()
    browser.get_by_label("E-mail address").fill("alice@example.com")
    browser.get_by_role("button", name="Send code").click()
    browser.get_by_label("Code").fill(code_in_mail(mailoutbox[-1]))
    browser.get_by_role("button", name="Continue").click()
    browser.get_by_label("New password").fill(NEW_PASSWORD)
    browser.get_by_role("button", name="Save password").click()

    claims = claims_at_the_client(browser, app, params)
    assert claims["email_verified"] is True and claims["amr"] == ["otp"]
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD) and not user.check_password(PASSWORD)
