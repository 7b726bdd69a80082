"""A person in a real browser: from the demo client, sign in on the hosted page, see the claims."""

from __future__ import annotations

import json
import shutil

import pytest
from oauth2_provider.models import get_application_model

from identity.models import ApplicationSettings
from identity.subjects import subject_of
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def demo_client(live_server, settings, transactional_db):
    settings.PORTCULLIS_DEMO = True
    Application = get_application_model()
    application = Application.objects.create(
        client_id=settings.PORTCULLIS_DEMO_CLIENT_ID, name="Portcullis demo",
        client_type=Application.CLIENT_PUBLIC, authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=f"{live_server.url}/demo/callback", post_logout_redirect_uris=f"{live_server.url}/demo/",
        algorithm=Application.RS256_ALGORITHM,
    )
    ApplicationSettings.objects.create(application=application, first_party=True)
    return application


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(15000)
        yield page
        context.close()
        browser.close()


def test_sign_in_from_the_demo_client_shows_the_claims(live_server, demo_client, user, page, tmp_path):
    page.goto(f"{live_server.url}/demo/")
    page.get_by_role("link", name="Sign in with Portcullis").click()

    page.wait_for_url("**/sign-in/**")
    assert page.get_by_role("heading", name="Sign in to Portcullis demo").is_visible()
    page.get_by_label("E-mail or username").fill("alice@example.com")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    summary = page.get_by_role("alert")
    assert summary.inner_text().splitlines() == ["There is a problem", "The sign-in details are incorrect."]
    # Focus moved to the error summary without any script, so a screen reader reads it first.
    assert page.evaluate("document.activeElement.id") == "form-error"

    page.get_by_label("E-mail or username").fill("alice@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url(f"{live_server.url}/demo/")
    page.screenshot(path=str(tmp_path / "claims.png"), full_page=True)
    # Shown as indented JSON, as in the specifications, not as a Python dict.
    raw = page.locator("#claims").inner_text()
    assert raw.startswith('{\n  "') and "'" not in raw and "True" not in raw
    claims = json.loads(raw)
    userinfo = json.loads(page.locator("#userinfo").inner_text())
    assert claims["sub"] == userinfo["sub"] == subject_of(user)
    assert claims["email"] == "Alice@example.com"
    assert claims["iss"] == live_server.url
    assert claims["amr"] == ["pwd"]
    assert userinfo["email_verified"] is True

    page.get_by_role("link", name="Sign out").click()
    page.wait_for_url(f"{live_server.url}/demo/")
    assert page.get_by_role("link", name="Sign in with Portcullis").is_visible()
    # Signed out at the provider too: signing in again asks for the password.
    page.get_by_role("link", name="Sign in with Portcullis").click()
    page.wait_for_url("**/sign-in/**")
