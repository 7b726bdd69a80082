"""The second-factor pages (part mfa) pass axe-core's WCAG 2.1 A/AA rules in light and dark mode, as
every hosted page does (tests/test_accessibility.py: its browser, its checks)."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from experience.policy import MfaPolicy, Policy
from tests.helpers import PASSWORD, give_totp, totp_now
from tests.test_accessibility import Site, chromium, page, scheme, violations  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


class MfaSite(Site):
    def password(self) -> None:
        self.sign_in_page()
        self.page.get_by_label("E-mail or username").fill("alice")
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()

    def second_factor_with_error(self) -> None:
        give_totp(self.user)
        self.password()
        self.page.wait_for_url("**/second-factor/")
        self.page.get_by_label("Code from your authenticator app").fill("12")
        self.page.get_by_role("button", name="Verify").click()
        self.page.get_by_role("alert").wait_for()

    def email_code(self) -> None:
        give_totp(self.user)
        self.password()
        self.page.get_by_role("link", name="Code by e-mail").click()
        self.page.get_by_role("button", name="Send code").click()
        self.page.get_by_role("button", name="Resend code").wait_for()

    def enrolment(self) -> None:
        self.password()
        self.page.wait_for_url("**/enrol/")

    def backup_codes(self) -> None:
        self.enrolment()
        secret = self.page.locator("#totp-secret").inner_text()
        key = base64.b32decode(secret + "=" * (-len(secret) % 8))
        self.page.get_by_label("Code from your authenticator app").fill(totp_now(key))
        self.page.get_by_role("button", name="Confirm").click()
        self.page.get_by_role("button", name="Create backup codes").click()
        self.page.locator("ul.codes").wait_for()

    def account(self) -> None:
        give_totp(self.user)
        self.go("/sign-in/?next=/account/security/")
        self.page.get_by_label("E-mail or username").fill("alice")
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_label("Code from your authenticator app").fill(totp_now())
        self.page.get_by_role("button", name="Verify").click()
        self.page.wait_for_url(self.base + "/account/security/")

    def account_confirm(self) -> None:
        self.account()
        self.page.get_by_role("button", name="Remove Authenticator app").click()
        self.page.get_by_label("Password").wait_for()

    def account_add_app(self) -> None:
        from django_otp.plugins.otp_totp.models import TOTPDevice

        self.account()
        TOTPDevice.objects.all().delete()
        self.go("/account/security/totp/")
        self.page.get_by_role("img", name="QR code for your authenticator app").wait_for()


PAGES: dict[str, Callable[[MfaSite], None]] = {
    "second factor with an error": MfaSite.second_factor_with_error,
    "e-mail code sent": MfaSite.email_code,
    "enrolment": MfaSite.enrolment,
    "backup codes": MfaSite.backup_codes,
    "account security": MfaSite.account,
    "account confirm": MfaSite.account_confirm,
    "account add app": MfaSite.account_add_app,
}


@pytest.mark.parametrize("name", PAGES)
def test_every_mfa_page_passes_axe(live_server, transactional_db, user, second_factors, scheme, page, name,  # noqa: F811
                                   monkeypatch):
    if name in ("enrolment", "backup codes"):
        policy = Policy(mfa=MfaPolicy(policy="required"))
        monkeypatch.setattr("experience.policy.resolve", lambda client_id: policy)
    PAGES[name](MfaSite(live_server.url, page, user))
    assert violations(page) == [], f"{name} ({scheme})"
