"""A person in a real browser (part mfa): MFA is required, so the first sign-in sets up an
authenticator app inside the flow (the key read from the page, the code computed here as the app
would), makes backup codes, and lands on the demo client with ``amr`` saying ``mfa``; the next
sign-in asks for the app's code."""

from __future__ import annotations

import base64
import json

import pytest
from playwright.sync_api import expect

from tests.helpers import PASSWORD, totp_now

pytestmark = pytest.mark.browser


def sign_in_with_password(page, live_server):
    page.goto(f"{live_server.url}/demo/")
    page.get_by_role("link", name="Sign in with Portcullis").click()
    page.wait_for_url("**/sign-in/**")
    page.get_by_label("E-mail or username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_totp_enrolment_in_the_flow_then_sign_in_with_the_app(live_server, demo_client, user, second_factors,
                                                             mfa_required, page):
    sign_in_with_password(page, live_server)
    page.wait_for_url("**/enrol/")
    assert page.get_by_role("heading", name="Set up a second factor").is_visible()
    assert page.get_by_role("img", name="QR code for your authenticator app").is_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    page.get_by_label("Code from your authenticator app").fill(totp_now(key))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status")).to_have_text("Your authenticator app is set up.")
    page.get_by_role("button", name="Create backup codes").click()
    # the codes come with the POST's answer: wait for that page (reading at once raced the load)
    expect(page.locator("ul.codes code")).to_have_count(10)
    page.get_by_role("button", name="I have saved my codes: continue").click()
    page.wait_for_url(f"{live_server.url}/demo/")
    claims = json.loads(page.locator("#claims").inner_text())
    assert {"pwd", "otp", "mfa"} <= set(claims["amr"])

    page.get_by_role("link", name="Sign out").click()
    page.wait_for_url(f"{live_server.url}/demo/")
    sign_in_with_password(page, live_server)
    page.wait_for_url("**/second-factor/")
    field = page.get_by_label("Code from your authenticator app")
    assert field.get_attribute("autocomplete") == "one-time-code"
    field.fill(totp_now(key, steps_ahead=1))  # the enrolment's code is spent: the app's next one
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{live_server.url}/demo/")
    claims = json.loads(page.locator("#claims").inner_text())
    assert {"pwd", "otp", "mfa"} <= set(claims["amr"])


@pytest.fixture
def backup_codes(totp_user):
    from authenticators.types.backup_code import replace_codes

    return replace_codes(totp_user)


def test_sign_in_with_a_backup_code(live_server, demo_client, backup_codes, page):
    codes = backup_codes
    sign_in_with_password(page, live_server)
    page.wait_for_url("**/second-factor/")
    page.get_by_role("link", name="Backup code").click()
    page.get_by_label("Backup code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{live_server.url}/demo/")
    claims = json.loads(page.locator("#claims").inner_text())
    assert {"pwd", "otp", "mfa"} <= set(claims["amr"])
