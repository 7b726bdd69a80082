"""An admin in a real browser adds an application from another model's "+" popup: the one-time
secret page shows the secret first, then "done" closes the popup with the new application chosen."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser


@pytest.mark.django_db(transaction=True)
def test_an_application_added_from_a_popup_shows_its_secret_then_closes_the_popup(
        live_server: Any, admin_user: Any, password_authenticator: Any, page: Any, settings: Any) -> None:  # noqa: F811
    settings.PORTCULLIS_STAFF_MFA_REQUIRED = False  # this test is about the popup, not the second factor
    page.goto(f"{live_server.url}/admin/login/")  # the admin signs in through the hosted sign-in
    page.wait_for_url("**/sign-in/**")
    page.get_by_label("E-mail or username").fill("admin")
    page.get_by_label("Password").fill("password")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/admin/")
    page.goto(f"{live_server.url}/admin/identity/consent/add/")
    with page.expect_popup() as opened:
        page.locator("#add_id_application").click()
    popup = opened.value
    popup.get_by_label("Name:", exact=True).fill("Shop")
    popup.get_by_label("Redirect URIs:", exact=True).fill("https://shop.example.com/callback")
    popup.get_by_label("Confidential").check()
    popup.get_by_role("button", name="Save", exact=True).click()

    secret = popup.get_by_label("Client secret").input_value()
    assert len(secret) >= 40
    popup.wait_for_load_state("load")  # its script (deferred) is in: on a busy machine a click could come first
    with popup.expect_event("close"):
        popup.get_by_role("button", name="I have copied it: done").click()
    chosen = page.locator("#id_application option:checked")
    assert chosen.inner_text() == "Shop"
    page.goto(f"{live_server.url}/admin/oauth2_provider/application/{chosen.get_attribute('value')}/change/")
    assert "Connect your application" in page.content() and secret not in page.content()
