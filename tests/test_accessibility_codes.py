"""The code tabs of the sign-in page (address step, code step with an error) pass axe-core's WCAG
2.1 A/AA rules in light and dark mode, like every hosted page (tests/test_accessibility.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from authenticators.models import Authenticator
from tests.test_accessibility import Site, chromium, page, scheme, violations  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


def address_step(site: Site) -> None:
    site.sign_in_page()
    site.page.get_by_role("link", name="E-mail code").click()
    site.page.get_by_label("E-mail").wait_for()


def code_step_with_error(site: Site) -> None:
    address_step(site)
    site.page.get_by_label("E-mail").fill("alice@example.com")
    site.page.get_by_role("button", name="Send code").click()
    site.page.get_by_label("Code").fill("000000" if "000000" not in mail.outbox[-1].body else "111111")
    site.page.get_by_role("button", name="Sign in").click()
    site.page.get_by_role("alert").wait_for()


@pytest.mark.parametrize("step", [address_step, code_step_with_error], ids=["address", "code with error"])
def test_the_code_steps_pass_axe(live_server: Any, transactional_db: Any, user: Any, scheme: str, page: Any,  # noqa: F811
                                 step: Any) -> None:
    Authenticator.objects.get_or_create(name="email-code", defaults={
        "auth_type": "email-code", "title": "E-mail code", "enabled": True, "sort_order": 10})
    step(Site(live_server.url, page, user))
    assert violations(page) == [], f"{step.__name__} ({scheme})"
