"""A person in a real browser mistypes the password three times: the sign-in page shows a captcha
(the test reads its answer from the captcha store, as the person reads the picture); solving it
with the right password ends with a code at the client's redirect URI, exchanged for tokens."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from captcha.models import CaptchaStore

from tests.helpers import PASSWORD, jwt_payload
from tests.test_browser_demo import (  # noqa: F401  fixtures
    callback_query,
    first_party_rp,
    other_origin,
    redeem,
    start_authorization,
)

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch: Any) -> None:
    """Playwright's sync API runs an event loop in this thread; the test's ORM reads (the captcha
    store) are plain synchronous code all the same."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def submit(page: Any, password: str) -> None:
    page.get_by_label("E-mail or username").fill("alice@example.com")
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


def test_a_captcha_after_repeated_failures_then_sign_in_succeeds(
        live_server: Any, other_origin: Any, first_party_rp: Any, user: Any, page: Any) -> None:  # noqa: F811
    params = start_authorization(page, live_server, first_party_rp, other_origin)
    page.wait_for_url("**/sign-in/**")
    captcha_input = page.get_by_label("Type the characters in the picture")
    for _ in range(2):
        submit(page, "not my password")
        assert captcha_input.count() == 0
    submit(page, "not my password")
    assert "The sign-in details are incorrect." in page.content()
    image = page.locator("form img")
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")  # served by /captcha/image/<id>/
    key = page.locator('input[name="captcha_id"]').input_value()
    answer = CaptchaStore.objects.get(hashkey=key).response

    captcha_input.fill("wrong")  # a wrong answer: refused, and a new challenge replaces it
    submit(page, PASSWORD)
    assert "The captcha answer is wrong. Try the new one." in page.content()
    assert page.locator('input[name="captcha_id"]').input_value() != key
    assert not CaptchaStore.objects.filter(hashkey=key).exists()

    key = page.locator('input[name="captcha_id"]').input_value()
    captcha_input.fill(CaptchaStore.objects.get(hashkey=key).response.upper())
    submit(page, PASSWORD)
    query = callback_query(page, other_origin)
    assert query["state"] == "st-1" and query["code"]
    tokens = redeem(live_server, first_party_rp, other_origin, query["code"], params["code_verifier"])
    assert jwt_payload(tokens["id_token"])["amr"] == ["pwd"]
    claims = requests.get(f"{live_server.url}/oauth/userinfo", timeout=10,
                          headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert claims["email_verified"] is True
    assert answer  # the first challenge had an answer a person could read
