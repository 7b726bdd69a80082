"""The sign-in page with "Continue with ..." buttons and the callback's error page pass axe-core's
WCAG 2.1 A/AA rules in light and dark mode (tests/test_accessibility.py's harness)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from authenticators.models import Authenticator
from tests import fake_upstream
from tests.test_accessibility import Site, chromium, page, scheme, violations  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


@pytest.fixture
def buttons(transactional_db: Any) -> Iterator[None]:
    fake_upstream.register()
    for order, title in enumerate(["Acme", "Globex"]):
        Authenticator.objects.create(name=title.lower(), auth_type=fake_upstream.TYPE, title=title, sort_order=20 + order)
    yield
    fake_upstream.unregister()


def with_buttons(site: Site) -> None:
    site.sign_in_page()
    site.page.get_by_role("button", name="Continue with Acme").wait_for()


def callback_error(site: Site) -> None:
    site.go("/auth/acme/callback?state=forged&code=x")
    site.page.get_by_role("link", name="Start again").wait_for()


PAGES: dict[str, Callable[[Site], None]] = {"sign-in with buttons": with_buttons, "callback error": callback_error}


@pytest.mark.parametrize("name", PAGES)
def test_the_upstream_pages_pass_axe(live_server, user, buttons, scheme, page, name):  # noqa: F811
    PAGES[name](Site(live_server.url, page, user))
    assert violations(page) == [], f"{name} ({scheme})"
