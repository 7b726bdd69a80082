"""Each application's experience on its own pages, in the Experience API's config and in its e-mails
(SPEC §5): name, logo, colours, custom CSS, links, methods in order, sign-up on or off, language;
and the branding images' own URLs (experience.branding_views)."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from experience import branding, policy
from experience.models import ApplicationExperience
from identity.security import inline_style_hashes
from tests.helpers import authorize_params, branded, make_application, png, sign_in_url_from, svg

pytestmark = pytest.mark.django_db

SCRIPT_SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(document.cookie)</script>'
              b'<rect width="10" height="10" onload="alert(1)"/></svg>')


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def sign_in_page(flow, app, **extra):
    url = sign_in_url_from(flow.authorize(authorize_params(app, **extra)))
    return url, flow.client.get(url)


def style_elements(html: str) -> list[str]:
    return re.findall(r"<style\b[^>]*>(.*?)</style", html, re.S | re.I)


# -- pages --------------------------------------------------------------------------------------------
def test_each_application_has_its_own_name_logo_colours_links_methods_and_sign_up(flow, user, mail_code):
    shop = make_application(name="Shop")
    branded(shop, {"branding": {"display_name": "Acme Shop", "primary_color": "#0b6e4f", "primary_color_dark": "#8ce99a",
                                "terms_url": "https://acme.example/terms", "privacy_url": "/privacy",
                                "support_email": "help@acme.example"},
                   "authenticators": ["email-code", "password"], "sign_up": {"enabled": True}},
            logo=png(), logo_dark=svg(), favicon=png(1, 1))
    tools = make_application(name="Beta Tools")
    branded(tools, {"branding": {"primary_color": "#ffd43b"}, "authenticators": ["password"],
                    "sign_up": {"enabled": False}})

    url, page = sign_in_page(flow, shop)
    html = page.content.decode()
    assert "<h1>Sign in to Acme Shop</h1>" in html and "<title>Sign in to Acme Shop</title>" in html
    assert "--primary: #0b6e4f; --on-primary: #fff;" in html  # white text: more contrast on dark green
    assert "--primary: #8ce99a; --on-primary: #000;" in html  # the dark scheme's colour, black text on it
    shop_row = ApplicationExperience.objects.get(application=shop.application)
    logo, dark, icon = shop_row.logo.url, shop_row.logo_dark.url, shop_row.favicon.url
    assert re.fullmatch(r"/media/branding/[0-9a-f]{32}\.png", logo) and dark.endswith(".svg")
    assert (f'<picture class="brand-logo"><source media="(prefers-color-scheme: dark)" srcset="{dark}">'
            f'<img src="{logo}" alt="Acme Shop"></picture>') in html
    assert f'<link rel="icon" href="{icon}">' in html
    assert '<a href="https://acme.example/terms">Terms of service</a>' in html
    assert '<a href="/privacy">Privacy policy</a>' in html and 'href="mailto:help@acme.example"' in html
    tabs = re.findall(r'\?authenticator=([\w-]+)"(?: aria-current="page")?>', html)
    assert tabs == ["email-code", "password"]  # its order, the first one open
    assert "Create an account" in html
    sign_up = flow.client.get(url + "create-account/").content.decode()
    assert "<h1>Create an account for Acme Shop</h1>" in sign_up
    assert re.search(r'Before you create an account, read:\s*<a href="https://acme.example/terms">Terms of service</a>'
                     r' · <a href="/privacy">Privacy policy</a>', sign_up)

    url, page = sign_in_page(flow, tools)
    html = page.content.decode()
    assert "<h1>Sign in to Beta Tools</h1>" in html  # no display name: the application's name
    assert "--primary: #ffd43b; --on-primary: #000;" in html  # black text on yellow
    assert "--primary: #91a7ff;" in html  # no dark colour: the built-in one
    assert "<picture" not in html and 'rel="icon"' not in html and "<footer" not in html
    assert 'class="tabs"' not in html and 'name="password"' in html  # one method: its form, no tabs
    assert "Create an account" not in html
    assert flow.client.get(url + "create-account/").status_code == 403  # sign-up off for this one


def test_the_other_pages_of_the_flow_carry_the_branding_too(flow, user, mail_code):
    shop = make_application(name="Shop")
    branded(shop, {"branding": {"display_name": "Acme Shop", "primary_color": "#0b6e4f"}}, logo=png())
    url, _ = sign_in_page(flow, shop)
    for path in ("create-account/", "forgot-password/"):
        html = flow.client.get(url + path).content.decode()
        assert "--primary: #0b6e4f;" in html and 'alt="Acme Shop"' in html, path
    flow.client.get(url + "?authenticator=email-code")
    flow.client.post(url + "?authenticator=email-code", {"authenticator": "email-code", "action": "send",
                                                         "email": "alice@example.com"})
    code_step = flow.client.get(url + "?authenticator=email-code").content.decode()
    assert 'name="code_id"' in code_step and "--primary: #0b6e4f;" in code_step
    expired = flow.client.get("/sign-in/not-an-interaction/").content.decode()
    assert "--primary: #3b5bdb;" in expired  # no application known: the default experience


def test_custom_css_written_around_the_validation_cannot_leave_its_style_element(flow, user):
    shop = make_application(name="Shop")
    branded(shop, {"branding": {"custom_css": "main { border-top: 4px solid #0b6e4f; }"}})
    attack = ("</style><script>alert(1)</script><style>@import url(https://evil.example/x.css); "
              "body { background: url(https://evil.example/track.png) } .x { color: red } "
              "h1 { background: image-set('https://evil.example/a.png' 1x) } \\3c /style\\3e")
    # A raw write (QuerySet.update skips full_clean and the save signal), then a restart forgets the memo.
    ApplicationExperience.objects.filter(application=shop.application).update(
        overrides={"branding": {"custom_css": attack}})
    policy.experience_changed()

    _, page = sign_in_page(flow, shop)
    html = page.content.decode()
    assert "<script" not in html and "@import" not in html and "url(" not in html and "image-set(" not in html
    assert html.count("<style") == html.count("</style>") == 2  # the built-in one and the custom one
    custom = style_elements(html)[-1]
    assert ".x { color: red }" in custom and "<" not in custom and "\\" not in custom
    csp = page["Content-Security-Policy"]
    assert "script-src 'none'" in csp and "unsafe-inline" not in csp
    assert all(source in csp for source in inline_style_hashes(page))  # each element's hash, and only those
    assert len(re.findall(r"'sha256-", csp)) == 2


def test_an_svg_logo_with_a_script_is_refused_and_one_stored_around_the_check_cannot_run(client):
    with pytest.raises(ValidationError):
        branding.image_file(ContentFile(SCRIPT_SVG))
    name = default_storage.save("branding/" + "ab" * 16 + ".svg", ContentFile(SCRIPT_SVG))  # bypassing the check
    response = client.get("/media/" + name)
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert response["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_the_colours_and_links_are_checked_again_when_rendered(flow, user):
    shop = make_application(name="Shop")
    branded(shop, {"branding": {"display_name": "Shop"}})
    ApplicationExperience.objects.filter(application=shop.application).update(overrides={"branding": {
        "display_name": "<b>Shop</b>", "primary_color": "red; } body { display: none",
        "terms_url": "javascript:alert(1)", "support_email": "not an address"}})
    policy.experience_changed()
    _, page = sign_in_page(flow, shop)
    html = page.content.decode()
    assert "display: none" not in html and "javascript:" not in html and "not an address" not in html
    assert "Sign in to &lt;b&gt;Shop&lt;/b&gt;" in html and "<b>Shop" not in html
    assert "--primary: #3b5bdb;" in html


# -- the images' URLs -----------------------------------------------------------------------------------
def test_an_uploaded_image_is_served_with_its_type_and_safe_headers(client):
    row = branded(make_application(), {}, logo=png())
    response = client.get(row.logo.url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == png()
    assert response["Content-Type"] == "image/png" and response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert client.head(row.logo.url).status_code == 200
    assert client.post(row.logo.url).status_code == 405


@pytest.mark.parametrize("path", [
    "/media/branding/../../config/settings.py",
    "/media/branding/..%2f..%2fconfig%2fsettings.py",
    "/media/branding/%2e%2e/secret.png",
    "/media/branding/sub/" + "ab" * 16 + ".png",
    "/media/branding/" + "ab" * 16 + ".html",
    "/media/branding/" + "ab" * 16 + ".png%00.html",
    "/media/branding/not-hex-name.png",
    "/media/branding/" + "cd" * 16 + ".png",  # no such file
    "/media/other/" + "ab" * 16 + ".png",
    "/media/" + "ab" * 16 + ".png",
])
def test_nothing_else_is_served_under_media(client, media, path):
    for directory in ("branding/sub", "other", ""):
        default_storage.save(f"{directory}/{'ab' * 16}.png".lstrip("/"), ContentFile(png()))
    default_storage.save("branding/" + "ab" * 16 + ".html", ContentFile(b"<script>alert(1)</script>"))
    (media / "secret.png").write_bytes(png())
    response = client.get(path)
    assert response.status_code == 404, path


# -- the Experience API's config ------------------------------------------------------------------------
def test_the_config_endpoint_gives_each_application_its_experience(client, user, mail_code):
    shop = make_application(name="Shop")
    row = branded(shop, {"branding": {"display_name": "Acme Shop", "primary_color": "#0b6e4f",
                                      "custom_css": "main { color: #111 }", "terms_url": "/terms"},
                         "language": "uk", "authenticators": ["email-code", "password"],
                         "sign_up": {"enabled": False}}, logo=png())
    body = client.get(f"/api/experience/config?client_id={shop.client_id}").json()
    assert body["client_id"] == shop.client_id and body["language"] == "uk"
    assert body["branding"] == {"display_name": "Acme Shop", "logo_url": row.logo.url, "logo_dark_url": "",
                                "favicon_url": "", "primary_color": "#0b6e4f", "primary_color_dark": "",
                                "custom_css": "main { color: #111 }", "terms_url": "/terms", "privacy_url": "",
                                "support_email": ""}
    assert body["authenticators"] == ["email-code", "password"] and body["sign_up"]["enabled"] is False
    assert [m["name"] for m in body["methods"]][:2] == ["email-code", "password"]

    other = make_application(name="Beta Tools")
    body = client.get(f"/api/experience/config?client_id={other.client_id}").json()
    assert body["branding"]["display_name"] == "Beta Tools" and body["branding"]["logo_url"] == ""
    assert body["language"] == "" and body["sign_up"]["enabled"] is True
    default = client.get("/api/experience/config").json()
    assert default["client_id"] is None and default["branding"]["display_name"] == "Portcullis"
    unknown = client.get("/api/experience/config?client_id=nobody")
    assert unknown.status_code == 404 and unknown.json()["not_found"]["code"] == "not_found"


def test_the_config_endpoint_gives_the_css_as_the_pages_render_it(client):
    shop = make_application(name="Shop")
    branded(shop, {})
    ApplicationExperience.objects.filter(application=shop.application).update(
        overrides={"branding": {"custom_css": "</style><script>x</script>a { background: url(https://e.example) }"}})
    policy.experience_changed()
    css = client.get(f"/api/experience/config?client_id={shop.client_id}").json()["branding"]["custom_css"]
    assert "<" not in css and "url(" not in css


# -- e-mails ----------------------------------------------------------------------------------------------
def test_a_code_email_carries_the_applications_name_logo_and_support_address(flow, user, mail_code, settings):
    settings.PORTCULLIS_ISSUER = "https://id.example.com"
    shop = make_application(name="Shop")
    row = branded(shop, {"branding": {"display_name": "Acme & Co", "support_email": "help@acme.example"}}, logo=png())
    url, _ = sign_in_page(flow, shop)
    flow.client.post(url + "?authenticator=email-code", {"authenticator": "email-code", "action": "send",
                                                         "email": "alice@example.com"})
    [message] = mail.outbox
    assert message.subject == "Your sign-in code for Acme & Co"
    code = re.search(r"Your sign-in code is (\d+)\.", message.body).group(1)
    assert "Questions? Write to help@acme.example." in message.body
    [(html, kind)] = message.alternatives
    assert kind == "text/html"
    assert f'<img src="https://id.example.com{row.logo.url}" alt="Acme &amp; Co"' in html
    assert f"Your sign-in code is {code}." in html and "Questions? Write to help@acme.example." in html
    text_paragraphs = [p.strip() for p in message.body.split("\n\n")]
    html_paragraphs = [" ".join(unescape(re.sub(r"<[^>]+>", "", p)).split())
                       for p in re.findall(r"<p[^>]*>(.*?)</p>", html, re.S)]
    assert html_paragraphs[1:] == text_paragraphs  # the same words in both parts, after the logo


def test_a_code_email_without_branding_names_the_application(flow, user, mail_code):
    shop = make_application(name="Shop")
    url, _ = sign_in_page(flow, shop)
    flow.client.post(url + "?authenticator=email-code", {"authenticator": "email-code", "action": "send",
                                                         "email": "alice@example.com"})
    [message] = mail.outbox
    assert message.subject == "Your sign-in code for Shop" and "Questions?" not in message.body
    [(html, _)] = message.alternatives
    assert "<img" not in html and ">Shop</p>" in html


# -- language -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("headers", "extra", "expected"), [
    ({}, {}, "ru"),  # the browser asks for nothing: the experience's language
    ({"HTTP_ACCEPT_LANGUAGE": "de-DE,fr;q=0.8"}, {}, "ru"),  # nothing this site has
    ({"HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9"}, {}, "en"),  # the browser's, supported
    ({"HTTP_ACCEPT_LANGUAGE": "de", "HTTP_COOKIE": "django_language=uk"}, {}, "uk"),  # the user's choice
    ({"HTTP_ACCEPT_LANGUAGE": "de"}, {"ui_locales": "uk"}, "uk"),  # the client's ui_locales
])
def test_the_experience_language_is_the_default_when_nothing_else_chooses(client, user, headers, extra, expected):
    shop = make_application(name="Shop")
    branded(shop, {"language": "ru"})
    response = client.get("/oauth/authorize", authorize_params(shop, **extra), **headers)
    page = client.get(sign_in_url_from(response), **headers)
    assert f'<html lang="{expected}">' in page.content.decode()


def test_without_an_experience_language_the_site_default_holds(client, user):
    shop = make_application(name="Shop")
    response = client.get("/oauth/authorize", authorize_params(shop), HTTP_ACCEPT_LANGUAGE="de")
    assert '<html lang="en">' in client.get(sign_in_url_from(response), HTTP_ACCEPT_LANGUAGE="de").content.decode()


def test_a_second_factor_code_email_names_the_application(totp_user):
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    from authenticators.models import Authenticator
    from experience import interaction as engine
    from experience import mfa
    from tests.helpers import PASSWORD

    shop = make_application(name="Shop")
    branded(shop, {"branding": {"display_name": "Acme & Co"}})
    request = RequestFactory().post("/sign-in/x/", HTTP_USER_AGENT="pytest")
    request.session, request.user = SessionStore(), AnonymousUser()
    interaction = engine.start(request, client_id=shop.client_id)
    engine.verify(request, interaction, Authenticator.objects.get(name="password"),
                  {"identifier": "alice", "password": PASSWORD})
    mfa.send_second_factor_code(request, interaction, "email")
    assert mail.outbox[-1].subject == "Your sign-in code for Acme & Co"


def test_identitys_own_pages_carry_the_applications_branding(client, user):
    """Consent and sign-out are identity's pages: branded through its PAGE_CONTEXT seam."""
    from tests.test_consent import is_consent_page, sign_in_to_consent

    partner = make_application(first_party=False, name="Partner")
    branded(partner, {"branding": {"display_name": "Partner Portal", "primary_color": "#0b6e4f"}}, logo=png())

    consent = sign_in_to_consent(client, partner)

    assert is_consent_page(consent)
    html = consent.content.decode()
    assert "--primary: #0b6e4f;" in html and 'alt="Partner Portal"' in html
    confirm = client.get("/oauth/logout", {"client_id": partner.client_id}).content.decode()
    assert 'name="confirm"' in confirm and "--primary: #0b6e4f;" in confirm  # "sign out of Partner Portal?"
    client.logout()
    done = client.get("/oauth/logout").content.decode()
    assert "--primary: #3b5bdb;" in done and "Partner Portal" not in done  # no application: the default
