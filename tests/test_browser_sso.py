"""A person in a real browser whose e-mail belongs to an SSO domain: typing it on the hosted page
lands on the organisation's upstream (a fake provider on 127.0.0.1, passed the e-mail as
``login_hint``), which sends the browser back to ``/auth/<name>/callback``; the demo client then
shows the ID token's claims. The "Continue with ..." button takes the same road."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from authenticators.models import Authenticator
from tests import fake_upstream

pytestmark = pytest.mark.browser


@pytest.fixture
def upstream_url() -> Iterator[str]:
    with fake_upstream.fake_upstream_server() as url:
        yield url


@pytest.fixture
def acme(transactional_db: Any, upstream_url: str) -> Iterator[Any]:
    """Acme's SSO, at the fake upstream (made before ``page``: the database is not used from the
    test once Playwright's event loop runs)."""
    fake_upstream.register()
    yield Authenticator.objects.create(name="acme", auth_type=fake_upstream.TYPE, title="Acme", sort_order=20,
                                       options={"domains": ["acme.test"], "sign_up": True, "upstream": upstream_url})
    fake_upstream.unregister()


def test_an_sso_email_lands_on_its_upstream_and_comes_back_signed_in(live_server, demo_client, user, acme,
                                                                     upstream_url, page):
    page.goto(f"{live_server.url}/demo/")
    page.get_by_role("link", name="Sign in with Portcullis").click()
    page.wait_for_url("**/sign-in/**")
    page.get_by_label("E-mail or username").fill("bob@acme.test")
    page.get_by_label("Password").fill("anything at all")
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url(f"{upstream_url}?**")
    assert page.get_by_role("heading", name="Fake upstream").is_visible()
    assert page.locator("#hint").inner_text() == "bob@acme.test"  # login_hint went upstream
    page.get_by_role("link", name="Continue as bob@acme.test").click()

    page.wait_for_url(f"{live_server.url}/demo/")
    claims = json.loads(page.locator("#claims").inner_text())
    assert claims["email"] == "bob@acme.test" and claims["amr"] == ["fed"]


def test_the_continue_button_goes_upstream(live_server, demo_client, user, acme, upstream_url, page):
    page.goto(f"{live_server.url}/demo/")
    page.get_by_role("link", name="Sign in with Portcullis").click()
    page.wait_for_url("**/sign-in/**")
    page.get_by_role("button", name="Continue with Acme").click()
    page.wait_for_url(f"{upstream_url}?**")
    page.goto(page.url.replace("/authorize?", "/authorize?as=alice%40example.com&"))
    page.get_by_role("link", name="Continue as alice@example.com").click()
    page.wait_for_url(f"{live_server.url}/demo/")
    assert json.loads(page.locator("#claims").inner_text())["email"] == "Alice@example.com"
