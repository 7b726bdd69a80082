"""The hosted sign-in page, as an end user meets it."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.test import Client
from django.utils import timezone

from authenticators.models import Authenticator
from experience.models import AuditEvent, Interaction
from tests.helpers import (
    PASSWORD,
    REDIRECT_URI,
    authorize_params,
    form_errors,
    sign_in_on_page,
    sign_in_url_from,
)

pytestmark = pytest.mark.django_db


def start(flow, app, **extra):
    response = flow.authorize(authorize_params(app, **extra))
    assert response.status_code == 303
    return sign_in_url_from(response)


def test_every_input_has_a_visible_label(flow, confidential_app, user):
    html = flow.client.get(start(flow, confidential_app)).content.decode()
    inputs = re.findall(r'<input[^>]*type="(?:text|password|email)"[^>]*id="([^"]+)"', html)
    assert inputs, html
    for input_id in inputs:
        assert f'<label for="{input_id}">' in html


def test_unknown_account_and_wrong_password_look_the_same(flow, confidential_app, user):
    url = start(flow, confidential_app)
    wrong = flow.client.post(url, {"identifier": "alice", "password": "wrong password", "authenticator": "password"})
    unknown = flow.client.post(url, {"identifier": "nobody@example.com", "password": "wrong password", "authenticator": "password"})
    assert wrong.status_code == unknown.status_code == 400
    assert form_errors(wrong.content.decode()) == ["The sign-in details are incorrect."]
    assert form_errors(unknown.content.decode()) == ["The sign-in details are incorrect."]


def test_a_password_hash_is_computed_for_unknown_accounts_too(flow, confidential_app, user, monkeypatch):
    calls = []
    original_verify, original_encode = Argon2PasswordHasher.verify, Argon2PasswordHasher.encode
    monkeypatch.setattr(Argon2PasswordHasher, "verify", lambda self, *a: calls.append("verify") or original_verify(self, *a))
    monkeypatch.setattr(Argon2PasswordHasher, "encode", lambda self, *a: calls.append("encode") or original_encode(self, *a))
    url = start(flow, confidential_app)
    flow.client.post(url, {"identifier": "nobody@example.com", "password": "x" * 12, "authenticator": "password"})
    assert calls == ["encode"]
    calls.clear()
    flow.client.post(url, {"identifier": "alice", "password": "x" * 12, "authenticator": "password"})
    assert calls == ["verify"]


def test_email_is_case_insensitive_and_username_works(flow, confidential_app, user):
    for identifier in ("ALICE@EXAMPLE.COM", "alice"):
        flow.client.logout()
        code, _params = flow.code_for(confidential_app, identifier=identifier)
        assert code


def test_disabled_accounts_cannot_sign_in(flow, confidential_app, user):
    user.is_active = False
    user.save()
    url = start(flow, confidential_app)
    response = flow.client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 400
    assert "The sign-in details are incorrect." in response.content.decode()


def test_the_session_key_rotates_on_sign_in(flow, confidential_app, user):
    url = start(flow, confidential_app)
    flow.client.get(url)
    before = flow.client.session.session_key
    response = flow.client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 303
    assert flow.client.session.session_key != before


def test_an_interaction_cannot_be_used_from_another_browser(flow, confidential_app, user):
    from django.test import Client

    url = start(flow, confidential_app)
    stranger = Client()
    response = stranger.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 400
    assert "This sign-in page has expired" in response.content.decode()


def test_an_expired_interaction_offers_to_start_again(flow, confidential_app, user):
    from django.utils import timezone

    from experience.models import Interaction

    url = start(flow, confidential_app)
    Interaction.objects.update(expires_at=timezone.now())
    response = flow.client.get(url)
    assert response.status_code == 400
    assert "Start again" in response.content.decode()
    assert f"client_id={confidential_app.client_id}" in response.content.decode()


def test_a_finished_interaction_cannot_sign_in_again(flow, confidential_app, user):
    url = start(flow, confidential_app)
    assert flow.client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"}).status_code == 303
    again = flow.client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert again.status_code == 400
    assert "already finished" in again.content.decode()


def test_sign_in_successes_and_failures_are_audited_without_secrets(flow, confidential_app, user):
    url = start(flow, confidential_app)
    flow.client.post(url, {"identifier": "alice", "password": "wrong password 1", "authenticator": "password"})
    flow.client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    events = list(AuditEvent.objects.order_by("created_at", "pk").values("kind", "identifier", "reason", "client_id", "user"))
    assert events == [
        {"kind": "sign_in.failed", "identifier": "alice", "reason": "invalid_credentials",
         "client_id": confidential_app.client_id, "user": None},
        {"kind": "sign_in.new_device", "identifier": "alice", "reason": "",  # the account's first browser
         "client_id": confidential_app.client_id, "user": user.pk},
        {"kind": "sign_in.succeeded", "identifier": "alice", "reason": "",
         "client_id": confidential_app.client_id, "user": user.pk},
    ]
    stored = repr(list(AuditEvent.objects.values()))
    assert PASSWORD not in stored and "wrong password 1" not in stored


def test_the_page_lists_the_enabled_authenticators_as_tabs(flow, confidential_app, user):
    Authenticator.objects.create(name="staff-password", auth_type="password", title="Staff password", sort_order=5)
    Authenticator.objects.create(name="old-password", auth_type="password", title="Old password", enabled=False)
    html = flow.client.get(start(flow, confidential_app)).content.decode()
    assert "Staff password" in html and "?authenticator=staff-password" in html
    assert "Old password" not in html
    assert html.index(">Password<") < html.index(">Staff password<")


def disable(authenticators) -> None:
    """As the admin does it: each row saved (a save is what tells every process's memory)."""
    for authenticator in authenticators:
        authenticator.enabled = False
        authenticator.save()


def test_a_disabled_authenticator_cannot_be_used_by_posting_its_name(flow, confidential_app, user):
    disable(Authenticator.objects.filter(name="password"))
    url = start(flow, confidential_app)
    response = flow.client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 400
    # The other enabled method (the e-mail code) is shown, never the disabled one used.
    assert "This sign-in method is not available." in response.content.decode()
    assert 'name="email"' in response.content.decode() and "_auth_user_id" not in flow.client.session
    disable(Authenticator.objects.all())
    response = flow.client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 400
    assert "No sign-in method is enabled" in response.content.decode()


def test_the_page_is_translated(flow, confidential_app, user):
    url = start(flow, confidential_app)
    html = flow.client.get(url, HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert 'lang="ru"' in html
    assert "Вход в Relying party" in html and "Эл. почта или имя пользователя" in html and "Пароль" in html
    wrong = flow.client.post(url, {"identifier": "alice", "password": "nope nope", "authenticator": "password"},
                             HTTP_ACCEPT_LANGUAGE="uk")
    assert "Неправильні дані для входу." in wrong.content.decode()


# -- errors tied to their fields ---------------------------------------------------------------------
def described_by(html: str) -> dict[str, list[str]]:
    """Each input's id → the ids its aria-describedby names."""
    found = {}
    for tag in re.findall(r"<input[^>]*>", html):
        input_id = re.search(r'\bid="([^"]+)"', tag)
        described = re.search(r'aria-describedby="([^"]+)"', tag)
        if input_id and described:
            found[input_id.group(1)] = described.group(1).split()
    return found


def test_a_field_error_is_tied_to_its_input(flow, confidential_app, user):
    url = start(flow, confidential_app)
    response = flow.client.post(url, {"identifier": "", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 400
    html = response.content.decode()
    identifier = re.search(r'<input[^>]*name="identifier"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in identifier
    assert described_by(html) == {"id_identifier": ["id_identifier_error"]}
    # The id it names exists, and holds the message a screen reader reads with the input.
    error = re.search(r'<ul class="errorlist" id="id_identifier_error"><li>(.*?)</li></ul>', html)
    assert error and error.group(1) == "This field is required."
    # The summary (focused on load) links to the input.
    assert form_errors(html) == ["E-mail or username: This field is required."]
    assert '<a href="#id_identifier">' in html
    password = re.search(r'<input[^>]*name="password"[^>]*>', html).group(0)
    assert "aria-invalid" not in password and "aria-describedby" not in password


def test_every_aria_reference_on_the_page_exists(flow, confidential_app, user):
    url = start(flow, confidential_app)
    response = flow.client.post(url, {"identifier": "", "password": "", "authenticator": "password"})
    html = response.content.decode()
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    references = re.findall(r'aria-(?:describedby|labelledby)="([^"]+)"', html)
    assert len(references) == 3  # two inputs and the summary's title
    for reference in references:
        assert set(reference.split()) <= ids, reference


def test_a_fresh_page_has_no_error_marks(flow, confidential_app, user):
    body = flow.client.get(start(flow, confidential_app)).content.decode().split("</style>")[1]
    assert "aria-invalid" not in body and "form-error" not in body and "autofocus" not in body


# -- a signed-in browser ---------------------------------------------------------------------------------
def sign_in_from_start(client, next_url: str = "/account/connected-apps/") -> None:
    response = client.get("/sign-in/?" + urlencode({"next": next_url}))
    assert response.status_code == 302
    assert sign_in_on_page(client, response["Location"]).status_code == 303


def continue_href(response) -> str:
    assert response.status_code == 200, (response.status_code, response.get("Location"))
    match = re.search(r'<a class="button" id="continue" href="([^"]+)"', response.content.decode())
    assert match, response.content.decode()
    return match.group(1).replace("&amp;", "&")


def test_the_start_page_when_signed_in_offers_to_continue_not_an_empty_form(client, user):
    sign_in_from_start(client)
    response = client.get("/sign-in/?next=/account/connected-apps/")
    html = response.content.decode()
    assert "Signed in as Alice Liddell" in html and "(alice)" in html
    assert 'type="password"' not in html
    assert continue_href(response) == "/account/connected-apps/"
    assert "Not you? Sign in as someone else" in html
    assert response["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"])
def test_continue_never_leaves_the_site(client, user, next_url):
    sign_in_from_start(client)
    assert continue_href(client.get("/sign-in/?" + urlencode({"next": next_url}))) == "/"


def test_back_after_signing_in_continues_to_the_application_instead_of_looping(flow, confidential_app, user):
    params = authorize_params(confidential_app)
    url = sign_in_url_from(flow.authorize(params))
    signed = sign_in_on_page(flow.client, url)
    assert flow.client.get(signed["Location"]).status_code == 302  # the code went to the client
    back = flow.client.get(url)  # the browser's Back button
    html = back.content.decode()
    assert "You are signed in" in html and "Continue to Relying party" in html
    assert "Start again" not in html and 'type="password"' not in html
    target = continue_href(back)
    assert target.startswith("/oauth/authorize?") and f"state={params['state']}" in target
    onward = flow.client.get(target)
    assert onward.status_code == 302
    assert onward["Location"].startswith(REDIRECT_URI + "?") and "code=" in onward["Location"]


def test_a_second_tab_signed_in_elsewhere_offers_to_continue(flow, confidential_app, user):
    first = sign_in_url_from(flow.authorize(authorize_params(confidential_app)))
    second = sign_in_url_from(flow.authorize(authorize_params(confidential_app)))
    # The second tab was opened a little while before the sign-in in the first one.
    Interaction.objects.update(created_at=timezone.now() - timedelta(seconds=5))
    assert sign_in_on_page(flow.client, first).status_code == 303
    page = flow.client.get(second)
    assert "You are signed in" in page.content.decode()
    assert continue_href(page).startswith("/oauth/authorize?")


def test_prompt_login_still_shows_the_form_to_a_signed_in_user(flow, confidential_app, user):
    sign_in_from_start(flow.client)
    url = sign_in_url_from(flow.authorize(authorize_params(confidential_app, prompt="login")))
    html = flow.client.get(url).content.decode()
    assert 'type="password"' in html and "You are signed in" not in html


def test_a_django_admin_login_is_not_a_portcullis_sign_in(client, user):
    client.force_login(user)
    response = client.get("/sign-in/")
    assert response.status_code == 302 and "/sign-in/" in response["Location"]


def test_not_you_signs_out_and_shows_the_same_sign_in_again(flow, confidential_app, user):
    params = authorize_params(confidential_app)
    url = sign_in_url_from(flow.authorize(params))
    sign_in_on_page(flow.client, url)
    browser = Client(enforce_csrf_checks=True)
    browser.cookies = flow.client.cookies
    page = browser.get(url)
    form = re.search(r'<form method="post" action="/sign-in/switch-account/">(.*?)</form>', page.content.decode(), re.S)
    assert form, page.content.decode()
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(1)))
    assert fields["interaction"] == url.rstrip("/").rsplit("/", 1)[1]
    response = browser.post("/sign-in/switch-account/", fields)
    assert response.status_code == 303
    assert response["Location"].startswith("/oauth/authorize?") and f"state={params['state']}" in response["Location"]
    assert "_auth_user_id" not in browser.session
    again = browser.get(response["Location"])
    assert again.status_code == 303
    html = browser.get(sign_in_url_from(again)).content.decode()
    assert 'type="password"' in html and "You are signed in" not in html


def test_not_you_from_the_start_page_keeps_next(client, user):
    sign_in_from_start(client)
    response = client.post("/sign-in/switch-account/", {"next": "/account/connected-apps/"})
    assert response.status_code == 303
    assert response["Location"] == "/sign-in/?next=%2Faccount%2Fconnected-apps%2F"
    assert "_auth_user_id" not in client.session
    response = client.post("/sign-in/switch-account/", {"next": "https://evil.example/"})
    assert response["Location"] == "/sign-in/"


def test_not_you_needs_a_post_with_the_csrf_token(client, user):
    sign_in_from_start(client)
    browser = Client(enforce_csrf_checks=True)
    browser.cookies = client.cookies
    assert browser.post("/sign-in/switch-account/", {"next": "/"}).status_code == 403
    assert browser.get("/sign-in/switch-account/").status_code == 405
    assert "_auth_user_id" in browser.session  # still signed in: a cross-site page cannot sign anyone out


# -- languages ---------------------------------------------------------------------------------------------
def test_ui_locales_chooses_the_language_of_the_sign_in(flow, confidential_app, user):
    url = start(flow, confidential_app, ui_locales="fr-CA ru-RU uk")
    for response in (flow.client.get(url, HTTP_ACCEPT_LANGUAGE="uk"),
                     flow.client.post(url, {"identifier": "alice", "password": "nope nope", "authenticator": "password"},
                                      HTTP_ACCEPT_LANGUAGE="uk")):
        html = response.content.decode()
        assert 'lang="ru"' in html and "Вход в Relying party" in html, html
        assert response["Content-Language"] == "ru"
    assert "Неверные данные для входа." in html


def test_pages_vary_on_the_language_beside_what_else_they_vary_on(flow, confidential_app, user):
    url = start(flow, confidential_app)
    page = flow.client.get(url, HTTP_ACCEPT_LANGUAGE="uk")
    assert {part.strip() for part in page["Vary"].split(",")} >= {"Accept-Language", "Cookie"}, page["Vary"]
    assert page["Content-Language"] == "uk"
    bare = flow.client.get("/healthz")  # varies on nothing else
    assert bare["Vary"] == "Accept-Language", bare.headers


def test_each_answer_is_in_the_language_the_current_settings_choose(client, settings):
    assert client.get("/healthz", HTTP_ACCEPT_LANGUAGE="uk;q=0.9, ru;q=0.5")["Content-Language"] == "uk"
    settings.LANGUAGES = [("en", "English"), ("ru", "Русский")]  # the same header, a site without Ukrainian
    assert client.get("/healthz", HTTP_ACCEPT_LANGUAGE="uk;q=0.9, ru;q=0.5")["Content-Language"] == "ru"
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"  # the user's choice comes first
    assert client.get("/healthz", HTTP_ACCEPT_LANGUAGE="uk;q=0.9, ru;q=0.5")["Content-Language"] == "en"
    settings.LANGUAGE_COOKIE_NAME = "portcullis_language"  # that cookie is no longer the choice
    assert client.get("/healthz", HTTP_ACCEPT_LANGUAGE="uk;q=0.9, ru;q=0.5")["Content-Language"] == "ru"
    long_header = ", ".join(f"x-{index};q=0.9" for index in range(25)) + ", ru;q=0.1"  # answered, not kept
    assert len(long_header) > 256 and client.get("/healthz", HTTP_ACCEPT_LANGUAGE=long_header)["Content-Language"] == "ru"


def test_without_a_supported_ui_locale_the_browser_language_is_used(flow, confidential_app, user):
    url = start(flow, confidential_app, ui_locales="fr de-DE")
    html = flow.client.get(url, HTTP_ACCEPT_LANGUAGE="uk").content.decode()
    assert 'lang="uk"' in html


def test_ui_locales_also_sets_the_consent_page_language(client, third_party_app, user):
    response = client.get("/oauth/authorize?" + urlencode(authorize_params(third_party_app, ui_locales="uk")))
    signed = sign_in_on_page(client, response["Location"])
    page = client.get(signed["Location"]).content.decode()
    assert 'lang="uk"' in page and "Дозволити" in page


def test_the_language_switcher_is_on_the_page_and_needs_no_script(flow, confidential_app, user):
    url = start(flow, confidential_app)
    html = flow.client.get(url).content.decode()
    switcher = re.search(r'<nav class="languages" aria-label="Language">\s*<form method="post" action="/language/">(.*?)</form>', html, re.S)
    assert switcher, html
    assert f'name="next" value="{url}"' in switcher.group(1)
    assert 'name="language" value="ru" lang="ru">Русский</button>' in switcher.group(1)
    assert 'name="language" value="uk" lang="uk">Українська</button>' in switcher.group(1)
    assert '<span lang="en" aria-current="true">English</span>' in switcher.group(1)
    assert "<script" not in html


def test_the_switcher_sets_the_language_and_returns_to_the_page(flow, confidential_app, user):
    url = start(flow, confidential_app, ui_locales="uk")
    browser = Client(enforce_csrf_checks=True)
    browser.cookies = flow.client.cookies
    page = browser.get(url).content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = browser.post("/language/", {"csrfmiddlewaretoken": csrf, "language": "ru", "next": url})
    assert response.status_code == 302 and response["Location"] == url
    assert browser.cookies["django_language"].value == "ru"
    # The user's choice wins over the application's ui_locales.
    assert "Вход в Relying party" in browser.get(url).content.decode()


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/", "/\\evil.example/", "\\\\evil.example",
                                      "http:evil.example", "https:/\\evil.example", " //evil.example", "javascript:alert(1)",
                                      "/\r\nSet-Cookie: x=1", "\x00/", "/путь/"])
def test_the_switcher_redirects_only_on_this_site(client, db, next_url):
    response = client.post("/language/", {"language": "uk", "next": next_url})
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location
    assert "\r" not in location and "\n" not in location
    assert client.cookies["django_language"].value == "uk"


def test_the_switcher_ignores_unknown_languages_and_needs_csrf(db):
    browser = Client(enforce_csrf_checks=True)
    assert browser.post("/language/", {"language": "ru", "next": "/"}).status_code == 403
    plain = Client()
    response = plain.post("/language/", {"language": "xx-evil", "next": "/sign-in/"})
    assert response.status_code == 302 and "django_language" not in plain.cookies


def test_the_signed_in_page_is_translated(client, user):
    sign_in_from_start(client)
    html = client.get("/sign-in/", HTTP_ACCEPT_LANGUAGE="uk").content.decode()
    assert "Ви увійшли як Alice Liddell" in html and "Не ви? Увійдіть під іншим іменем" in html
    assert 'aria-label="Мова"' in html
