"""Every hosted page of the sign-in experience (part p2pages), rendered in Russian (the browser's
Accept-Language) and in Ukrainian (the language switcher), shows no English: each text of the page
and each attribute a person meets (alt, aria-label, title, placeholder) is checked for English words,
so a msgid left untranslated, an empty msgstr or a string outside gettext fails here
(tests/test_translations.py checks the templates' msgids exist in the catalogues)."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
from django.core import mail
from django.test import Client, RequestFactory
from django.urls import reverse

from experience import risk
from experience.policy import MfaPolicy, Policy
from tests.helpers import PASSWORD, authorize_params, code_in_mail, give_totp, sign_in_url_from, totp_now

pytestmark = pytest.mark.django_db

# Words that are not English sentences: names (the brand, the application, the languages'
# own names), addresses, the "TOTP" acronym, the authenticator apps named on the enrolment page.
ALLOWED = {"Portcullis", "Relying", "party", "English", "alice", "example", "com", "new", "TOTP", "otpauth",
           "Aegis", "Google", "Authenticator", "FreeOTP"}  # the apps the enrolment page names
SHOWN_ATTRIBUTES = {"alt", "aria-label", "title", "placeholder"}
WORD = re.compile(r"[A-Za-z][A-Za-z']{2,}")


class Text(HTMLParser):
    """The words a person reads on a page: text outside <style>/<script>/<code>, and the shown attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "code", "pre", "svg"):
            self.skipping.append(tag)
        self.parts += [value for name, value in attrs if name in SHOWN_ATTRIBUTES and value]

    def handle_endtag(self, tag: str) -> None:
        if self.skipping and self.skipping[-1] == tag:
            self.skipping.pop()

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def english(html: str) -> list[str]:
    parser = Text()
    parser.feed(html)
    words = [word for part in parser.parts for word in WORD.findall(part)]
    return sorted({word for word in words if word not in ALLOWED})


class Browser:
    """A person in ``language``: ru by the browser's Accept-Language, uk by the switcher."""

    def __init__(self, language: str, app: Any, user: Any) -> None:
        self.app, self.user = app, user
        self.client = Client(HTTP_ACCEPT_LANGUAGE="ru-RU,ru;q=0.9") if language == "ru" else Client()
        if language == "uk":
            switched = self.client.post("/language/", {"language": "uk", "next": "/"})
            assert switched.status_code == 302 and self.client.cookies["django_language"].value == "uk"

    def sign_in(self) -> str:
        response = self.client.get("/oauth/authorize", authorize_params(self.app))
        return sign_in_url_from(response)

    def html(self, response: Any, status: int = 200) -> str:
        assert response.status_code == status, (response.status_code, response.content[:300])
        return response.content.decode()

    def get(self, url: str) -> str:
        return self.html(self.client.get(url))

    def password(self) -> Any:
        return self.client.post(self.sign_in(), {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})


def sign_in_with_error(b: Browser) -> str:
    return b.html(b.client.post(b.sign_in(), {"identifier": "alice", "password": "wrong", "authenticator": "password"}), 400)


def code_tab_address(b: Browser) -> str:
    return b.get(b.sign_in() + "?authenticator=email-code")


def code_tab_code(b: Browser) -> str:
    url = b.sign_in() + "?authenticator=email-code"
    sent = b.client.post(url, {"authenticator": "email-code", "action": "send", "email": "alice@example.com"})
    return b.get(sent["Location"])


def captcha_with_error(b: Browser) -> str:
    url = b.sign_in()
    return b.html(b.client.post(url, {"identifier": "alice", "password": "wrong", "authenticator": "password",
                                      "captcha_id": "0" * 40, "captcha_answer": "x"}), 400)


def lockout(b: Browser) -> str:
    request = RequestFactory(REMOTE_ADDR="192.0.2.8").get("/")
    for _ in range(risk.lockout_threshold()):
        risk.failed(request, "alice")
    return b.html(b.password(), 429)


def address_page(b: Browser, name: str) -> str:
    return reverse(f"experience:{name}", args=[b.sign_in().rstrip("/").rsplit("/", 1)[-1]])


def sign_up_address(b: Browser) -> str:
    return b.get(address_page(b, "sign-up"))


def sign_up_captcha(b: Browser) -> str:
    url = address_page(b, "sign-up")
    return b.html(b.client.post(url, {"authenticator": "email-code", "email": "new@example.com", "action": "send"}), 400)


def sign_up_code(b: Browser) -> str:
    url = address_page(b, "sign-up")
    b.client.post(url, {"authenticator": "email-code", "email": "new@example.com", "action": "send"})
    return b.get(url)


def profile(b: Browser) -> str:
    url = address_page(b, "sign-up")
    b.client.post(url, {"authenticator": "email-code", "email": "new@example.com", "action": "send"})
    verified = b.client.post(url, {"action": "verify", "code": code_in_mail(mail.outbox[-1])})
    return b.get(verified["Location"])


def forgot_password_address(b: Browser) -> str:
    return b.get(address_page(b, "forgot-password"))


def forgot_password_code(b: Browser) -> str:
    url = address_page(b, "forgot-password")
    b.client.post(url, {"authenticator": "email-code", "email": "alice@example.com", "action": "send"})
    return b.get(url)


def new_password(b: Browser) -> str:
    url = address_page(b, "forgot-password")
    b.client.post(url, {"authenticator": "email-code", "email": "alice@example.com", "action": "send"})
    verified = b.client.post(url, {"action": "verify", "code": code_in_mail(mail.outbox[-1])})
    return b.get(verified["Location"])


def second_factor(method: str) -> Callable[[Browser], str]:
    def page(b: Browser) -> str:
        give_totp(b.user)
        return b.get(b.password()["Location"] + f"?authenticator={method}")
    page.__name__ = f"second factor {method}"
    return page


def enrolment(b: Browser) -> str:
    return b.get(b.password()["Location"])


def account_security(b: Browser) -> str:
    give_totp(b.user)
    response = b.client.get("/sign-in/?next=/account/security/")
    url = response["Location"]
    done = b.client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    done = b.client.post(done["Location"] + "?authenticator=totp",
                         {"authenticator": "totp", "action": "verify", "code": totp_now()})
    while done.status_code in (302, 303) and "/account/security/" not in done["Location"]:
        done = b.client.get(done["Location"])
    return b.get("/account/security/")


PAGES: dict[str, Callable[[Browser], str]] = {
    "sign-in with an error": sign_in_with_error,
    "code tab address": code_tab_address,
    "code tab code": code_tab_code,
    "captcha with an error": captcha_with_error,
    "lockout": lockout,
    "sign-up address": sign_up_address,
    "sign-up captcha": sign_up_captcha,
    "sign-up code": sign_up_code,
    "profile": profile,
    "forgot password address": forgot_password_address,
    "forgot password code": forgot_password_code,
    "new password": new_password,
    "second factor app": second_factor("totp"),
    "second factor backup code": second_factor("backup_code"),
    "second factor e-mail code": second_factor("email_code"),
    "enrolment": enrolment,
    "account security": account_security,
}
CAPTCHA_ALWAYS = {"captcha with an error", "sign-up captcha"}


@pytest.mark.parametrize("language", ["ru", "uk"])
@pytest.mark.parametrize("name", PAGES)
def test_every_page_of_the_experience_is_translated(confidential_app, user, mail_code, second_factors, monkeypatch,
                                                    language, name):
    if name in CAPTCHA_ALWAYS:
        monkeypatch.setattr("experience.policy.resolve", lambda client_id: Policy(client_id=client_id, captcha="always"))
    elif name == "enrolment":
        monkeypatch.setattr("experience.policy.resolve", lambda client_id: Policy(mfa=MfaPolicy(policy="required")))
    html = PAGES[name](Browser(language, confidential_app, user))
    assert f'<html lang="{language}">' in html
    leftovers = english(html)
    assert leftovers == [], f"{name} in {language}: {leftovers}"


def test_the_check_finds_english(confidential_app, user):
    assert english('<main><h1>Вход</h1><p>Sign in</p><img alt="Picture"></main>') == ["Picture", "Sign"]
    html = sign_in_with_error(Browser("en", confidential_app, user))
    assert {"Sign", "Password"} <= set(english(html))


def test_ui_locales_work_beside_a_function_middleware(confidential_app, user, settings):
    """A project's MIDDLEWARE may list plain functions (tests.live_settings does): finding the locale
    middleware among them must not fail the sign-in page."""
    settings.MIDDLEWARE = ["tests.live_settings.worker_pid", *settings.MIDDLEWARE]
    client = Client()
    response = client.get("/oauth/authorize", {**authorize_params(confidential_app), "ui_locales": "uk"})
    for _ in range(3):
        if response.status_code not in (302, 303):
            break
        response = client.get(response["Location"])
    assert response.status_code == 200
    assert '<html lang="uk"' in response.content.decode()
