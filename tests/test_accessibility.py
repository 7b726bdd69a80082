"""Every hosted page passes axe-core's WCAG 2.1 A/AA rules in a real browser, in light and dark mode.

axe-core comes from the npm registry (tests/axe/package.json and its lock; `make test` installs it
with `npm ci --prefix tests/axe`) and is injected into each page, as a browser extension would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from experience.models import Interaction
from identity.models import Consent
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, PASSWORD, authorize_params, make_application

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21aa"]
RUN_AXE = "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread while it lives; the ORM calls of these
    # tests (and the database flush after each) are plain synchronous code all the same.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(params=["light", "dark"])
def scheme(request: Any) -> str:
    return request.param


@pytest.fixture
def page(chromium: Any, scheme: str) -> Iterator[Any]:
    # bypass_csp: the pages' Content-Security-Policy would refuse the injected axe-core script.
    context = chromium.new_context(color_scheme=scheme, bypass_csp=True)
    browser_page = context.new_page()
    browser_page.set_default_timeout(15000)
    yield browser_page
    context.close()


class Site:
    """A person's way to each hosted page."""

    def __init__(self, base: str, page: Any, user: Any) -> None:
        self.base, self.page, self.user = base, page, user
        self.app = make_application(name="Relying party")
        self.third_party = make_application(first_party=False, name="Third party")

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def sign_in_page(self) -> None:
        self.go("/oauth/authorize?" + urlencode(authorize_params(self.app)))
        self.page.wait_for_url("**/sign-in/**")

    def sign_in_with_errors(self) -> None:
        self.sign_in_page()
        self.page.get_by_label("E-mail or username").fill("alice")
        self.page.get_by_label("Password").fill("not the password")
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("alert").wait_for()

    def sign_in(self, next_url: str = "/account/connected-apps/") -> None:
        self.go("/sign-in/?" + urlencode({"next": next_url}))
        self.page.get_by_label("E-mail or username").fill("alice")
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(self.base + next_url)

    def expired(self) -> None:
        self.sign_in_page()
        Interaction.objects.update(expires_at=timezone.now())
        self.page.reload()
        self.page.get_by_role("link", name="Start again").wait_for()

    def consent(self) -> None:
        self.go("/oauth/authorize?" + urlencode(authorize_params(self.third_party)))
        self.page.get_by_label("E-mail or username").fill("alice")
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("button", name="Allow").wait_for()

    def logout_confirm(self) -> None:
        self.sign_in()
        self.go("/oauth/logout?" + urlencode({"client_id": self.app.client_id}))
        self.page.get_by_role("button", name="Stay signed in").wait_for()

    def logged_out(self) -> None:
        self.logout_confirm()
        self.page.get_by_role("button", name="Sign out", exact=True).click()
        self.page.get_by_role("heading", name="You are signed out").wait_for()

    def connected_apps(self) -> None:
        Consent.objects.create(user=self.user, application=self.third_party.application, scopes="openid profile")
        self.sign_in()
        self.page.get_by_role("button", name="Remove access").wait_for()

    def error_page(self) -> None:
        self.go("/oauth/authorize?client_id=unknown&response_type=code")
        self.page.get_by_role("heading", name="We can't continue").wait_for()

    def signed_in(self) -> None:
        self.sign_in()
        self.go("/sign-in/")
        self.page.get_by_role("link", name="Continue").wait_for()

    # -- sign-up and forgot password (the built-in e-mail code type) -----------------------------------
    def mail_code(self) -> None:
        from authenticators.models import Authenticator

        Authenticator.objects.update_or_create(
            name="email-code", defaults={"auth_type": "email-code", "title": "E-mail code", "enabled": True})

    def code_sent(self, address: str) -> str:
        """Send a code to ``address`` on the page; the code, from the mail outbox."""
        from django.core import mail

        from tests.helpers import code_in_mail

        self.page.get_by_label("E-mail address").fill(address)
        self.page.get_by_role("button", name="Send code").click()
        self.page.get_by_label("Code").wait_for()
        return code_in_mail(mail.outbox[-1])

    def sign_up_address(self) -> None:
        self.mail_code()
        self.sign_in_page()
        self.page.get_by_role("link", name="Create an account").click()
        self.page.get_by_label("E-mail address").wait_for()

    def sign_up_code_with_errors(self) -> None:
        self.sign_up_address()
        code = self.code_sent("new@example.com")
        self.page.get_by_label("Code").fill(f"{(int(code) + 1) % 10**6:06d}")
        self.page.get_by_role("button", name="Continue").click()
        self.page.get_by_role("alert").wait_for()

    def profile_with_errors(self) -> None:
        self.sign_up_address()
        self.page.get_by_label("Code").fill(self.code_sent("new@example.com"))
        self.page.get_by_role("button", name="Continue").click()
        self.page.get_by_label("New password").fill("password1")
        self.page.get_by_role("button", name="Create account").click()
        self.page.get_by_role("alert").wait_for()

    def new_password(self) -> None:
        self.mail_code()
        self.sign_in_page()
        self.page.get_by_role("link", name="Forgot password?").click()
        self.page.get_by_label("Code").fill(self.code_sent("alice@example.com"))
        self.page.get_by_role("button", name="Continue").click()
        self.page.get_by_label("New password").wait_for()


PAGES: dict[str, Callable[[Site], None]] = {
    "sign-in": Site.sign_in_page,
    "sign-in with errors": Site.sign_in_with_errors,
    "expired": Site.expired,
    "consent": Site.consent,
    "logout confirm": Site.logout_confirm,
    "logged out": Site.logged_out,
    "connected apps": Site.connected_apps,
    "error": Site.error_page,
    "signed in": Site.signed_in,
    "sign-up address": Site.sign_up_address,
    "sign-up code with errors": Site.sign_up_code_with_errors,
    "profile with errors": Site.profile_with_errors,
    "new password": Site.new_password,
}


def violations(page: Any) -> list[str]:
    assert AXE.exists(), f"{AXE} is missing: `make test` installs it (npm ci --prefix tests/axe)"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(RUN_AXE, TAGS)
    assert any(rule["id"] == "color-contrast" for rule in result["passes"]), "axe checked no text contrast"
    return [f"{rule['id']}: {rule['help']} at {[node['target'] for node in rule['nodes']]}: "
            f"{rule['nodes'][0]['failureSummary']}" for rule in result["violations"]]


@pytest.mark.parametrize("name", PAGES)
def test_every_hosted_page_passes_axe(live_server, transactional_db, user, scheme, page, name):
    PAGES[name](Site(live_server.url, page, user))
    assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") is (scheme == "dark")
    assert violations(page) == [], f"{name} ({scheme})"


# -- the pages a person meets outside the sign-in steps: the start page, the demo client, a sign-up
# switched off, a signed-in account that may not use the admin --------------------------------------
def sign_up_switched_off(site: Site, monkeypatch: Any) -> None:
    from experience.policy import Policy, SignUpPolicy

    monkeypatch.setattr("experience.policy.resolve", lambda client_id: Policy(sign_up=SignUpPolicy(enabled=False)))
    site.sign_in_page()
    site.page.goto(site.page.url.split("?")[0].rstrip("/") + "/create-account/")
    site.page.get_by_text("New accounts cannot be created here.").wait_for()


def admin_denied(site: Site, monkeypatch: Any) -> None:
    site.sign_in()
    site.go("/admin/login/")
    site.page.get_by_role("heading").first.wait_for()
    assert "alice" in site.page.content()


def start_page(site: Site, monkeypatch: Any) -> None:
    site.go("/")
    site.page.get_by_role("heading").first.wait_for()


def demo_signed_in(site: Site, monkeypatch: Any) -> None:
    site.go("/demo/")
    site.page.get_by_role("link", name="Sign in with Portcullis").click()
    site.page.get_by_label("E-mail or username").fill("alice")
    site.page.get_by_label("Password").fill(PASSWORD)
    site.page.get_by_role("button", name="Sign in").click()
    site.page.locator("#claims").wait_for()


OTHER_PAGES: dict[str, Callable[[Site, Any], None]] = {
    "sign-up switched off": sign_up_switched_off,
    "admin denied": admin_denied,
    "start page": start_page,
    "demo signed out": lambda site, monkeypatch: site.go("/demo/"),
    "demo signed in": demo_signed_in,
}


@pytest.mark.parametrize("name", OTHER_PAGES)
def test_the_pages_outside_the_sign_in_steps_pass_axe(live_server, demo_client, user, scheme, page, name, monkeypatch):
    OTHER_PAGES[name](Site(live_server.url, page, user), monkeypatch)
    assert violations(page) == [], f"{name} ({scheme})"
