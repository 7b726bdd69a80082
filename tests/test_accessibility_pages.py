"""The risk and code pages (part p2pages) pass axe-core's WCAG 2.1 A/AA rules in light and dark mode
(the captcha, the lockout page, the code tab's address and code steps, the captcha on sign-up and
forgot-password), their errors are tied to their fields and focused; and every hosted page fits a
phone's screen (360x740) in Chromium without scrolling sideways."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core import mail
from django.test import RequestFactory

from experience import risk
from experience.policy import MfaPolicy, Policy
from tests import test_accessibility, test_accessibility_mfa
from tests.test_accessibility import chromium, page, scheme, violations  # noqa: F401  (fixtures)
from tests.test_accessibility_mfa import MfaSite

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}


class PagesSite(MfaSite):
    # -- captcha and lockout ------------------------------------------------------------------------------
    def captcha(self) -> None:
        self.sign_in_page()
        self.page.get_by_label("Type the characters in the picture").wait_for()

    def captcha_with_error(self) -> None:
        self.captcha()
        self.page.get_by_label("E-mail or username").fill("alice")
        self.page.get_by_label("Password").fill("not the password")
        self.page.get_by_label("Type the characters in the picture").fill("wrong")
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("alert").wait_for()

    def locked(self) -> None:
        request = RequestFactory(REMOTE_ADDR="192.0.2.7").get("/")  # another IP: no captcha here
        for _ in range(risk.lockout_threshold()):
            risk.failed(request, "alice")
        self.sign_in_page()
        self.page.get_by_label("E-mail or username").fill("alice")
        self.page.get_by_label("Password").fill("not the password")
        with self.page.expect_response(lambda response: response.status == 429):
            self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("heading", name="Too many attempts").wait_for()

    # -- the sign-in page's code tab ----------------------------------------------------------------------
    def code_address(self) -> None:
        self.mail_code()
        self.sign_in_page()
        self.page.get_by_role("link", name="E-mail code").click()
        self.page.get_by_label("E-mail").wait_for()

    def code_with_error(self) -> None:
        self.code_address()
        self.page.get_by_label("E-mail").fill("alice@example.com")
        self.page.get_by_role("button", name="Send code").click()
        self.page.get_by_label("Code").fill("000000" if "000000" not in mail.outbox[-1].body else "111111")
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("alert").wait_for()

    # -- sign-up and forgot password with the captcha -----------------------------------------------------
    def sign_up_captcha_with_error(self) -> None:
        self.sign_up_address()
        self.page.get_by_label("E-mail address").fill("new@example.com")
        self.page.get_by_label("Type the characters in the picture").fill("wrong")
        self.page.get_by_role("button", name="Send code").click()
        self.page.get_by_role("alert").wait_for()

    def forgot_password_address(self) -> None:
        self.mail_code()
        self.sign_in_page()
        self.page.get_by_role("link", name="Forgot password?").click()
        self.page.get_by_label("E-mail address").wait_for()

    def forgot_password_code(self) -> None:
        self.forgot_password_address()
        self.code_sent("alice@example.com")
        self.page.get_by_role("button", name="Resend code").wait_for()


PAGES: dict[str, Callable[[PagesSite], None]] = {
    "captcha": PagesSite.captcha,
    "captcha with an error": PagesSite.captcha_with_error,
    "lockout": PagesSite.locked,
    "code tab address": PagesSite.code_address,
    "code tab code with an error": PagesSite.code_with_error,
    "sign-up captcha with an error": PagesSite.sign_up_captcha_with_error,
    "forgot password address": PagesSite.forgot_password_address,
    "forgot password code": PagesSite.forgot_password_code,
}
CAPTCHA_ALWAYS = {"captcha", "captcha with an error", "sign-up captcha with an error"}
MFA_REQUIRED = {"enrolment", "backup codes"}
EVERY_PAGE: dict[str, Callable[[Any], None]] = {**test_accessibility.PAGES, **test_accessibility_mfa.PAGES, **PAGES}


def use_policy(monkeypatch: Any, name: str) -> None:
    if name in CAPTCHA_ALWAYS:
        policy = Policy(captcha="always")
    elif name in MFA_REQUIRED:
        policy = Policy(mfa=MfaPolicy(policy="required"))
    else:
        return
    monkeypatch.setattr("experience.policy.resolve", lambda client_id: policy)


@pytest.mark.parametrize("name", PAGES)
def test_the_risk_and_code_pages_pass_axe(live_server, transactional_db, user, second_factors, scheme, page,  # noqa: F811
                                          name, monkeypatch):
    use_policy(monkeypatch, name)
    PAGES[name](PagesSite(live_server.url, page, user))
    assert violations(page) == [], f"{name} ({scheme})"


@pytest.mark.parametrize("scheme", ["light"], indirect=True)
@pytest.mark.parametrize("name", ["captcha with an error", "code tab code with an error",
                                  "sign-up captcha with an error"])
def test_errors_are_focused_and_tied_to_their_fields(live_server, transactional_db, user, second_factors, scheme,  # noqa: F811
                                                     page, name, monkeypatch):  # noqa: F811
    use_policy(monkeypatch, name)
    PAGES[name](PagesSite(live_server.url, page, user))
    focused = page.evaluate("document.activeElement.id || document.activeElement.getAttribute('aria-invalid')")
    assert focused == "form-error", f"{name}: the error summary is focused"
    for field in page.locator("[aria-invalid=true]").all():  # each invalid input names its error
        described = field.get_attribute("aria-describedby") or ""
        assert described and all(page.locator(f"#{part}").count() == 1 for part in described.split()), name


@pytest.fixture
def phone(chromium: Any) -> Iterator[Any]:  # noqa: F811
    context = chromium.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                   bypass_csp=True)
    browser_page = context.new_page()
    browser_page.set_default_timeout(15000)
    yield browser_page
    context.close()


@pytest.mark.parametrize("name", EVERY_PAGE)
def test_every_hosted_page_fits_a_phone_without_scrolling_sideways(live_server, transactional_db, user,
                                                                    second_factors, phone, name, monkeypatch):
    use_policy(monkeypatch, name)
    EVERY_PAGE[name](PagesSite(live_server.url, phone, user))
    width = phone.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[1] == PHONE["width"] and width[0] <= width[1], f"{name}: {width[0]}px wide on a {width[1]}px screen"
