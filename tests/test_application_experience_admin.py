"""The sign-in experiences in admin: the default's branding, language and access rules; each
application's overrides (empty means inherit), its effective experience with sources, and the
preview of its sign-in page."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from authenticators.models import Authenticator
from experience import policy
from experience.branding import MAX_IMAGE_BYTES
from experience.models import ApplicationExperience, Experience, Interaction
from tests.test_experience_admin import ADD_URL, field_errors, form_data

pytestmark = pytest.mark.django_db
APP_ADD_URL = "/admin/experience/applicationexperience/add/"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
SVG_WITH_SCRIPT = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@pytest.fixture(autouse=True)
def media(tmp_path):
    with override_settings(MEDIA_ROOT=tmp_path):
        yield tmp_path


def upload(data: bytes = PNG, name: str = "logo.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/png")


def change_url(row: ApplicationExperience) -> str:
    return f"/admin/experience/applicationexperience/{row.pk}/change/"


def preview_url(client_id: str) -> str:
    return f"/admin/experience/applicationexperience/preview/{client_id}/"


def effective_rows(html: str) -> dict[str, tuple[str, str]]:
    """The effective table: path -> (value, source)."""
    table = re.search(r'<table class="portcullis-effective">(.*?)</table>', html, re.S)
    assert table, html
    rows = re.findall(r'<tr><th scope="row"><code>(.*?)</code></th><td>(.*?)</td><td>(.*?)</td></tr>', table.group(1), re.S)
    return {unescape(path): (unescape(value), unescape(source)) for path, value, source in rows}


# -- the default experience's new fields ------------------------------------------------------------

def test_the_default_form_saves_branding_language_and_access_rules(admin_client, password_authenticator, media):
    response = admin_client.post(ADD_URL, form_data(
        display_name="Acme", primary_color="#112233", terms_url="https://acme.example/terms", language="ru",
        logo=upload(), ip_allow="203.0.113.0/24\n2001:db8::/32", regions_deny="RU, BY",
        email_domains_allow="acme.example\n*.acme.example"))
    assert response.status_code == 302, field_errors(response)
    row = Experience.objects.get()
    assert row.ip_allow == ["203.0.113.0/24", "2001:db8::/32"] and row.regions_deny == ["RU", "BY"]
    assert row.email_domains_allow == ["acme.example", "*.acme.example"] and row.language == "ru"
    assert re.fullmatch(r"branding/[0-9a-f]{32}\.png", row.logo.name)  # a random name, the sniffed type
    assert (media / row.logo.name).read_bytes() == PNG
    effective = policy.resolve("")
    assert effective.branding.display_name == "Acme" and effective.branding.logo_url == f"/media/{row.logo.name}"
    assert effective.access.ip_allow  # the rules reach the policy

    page = admin_client.get(f"/admin/experience/experience/{row.pk}/change/").content.decode()
    assert "203.0.113.0/24\n2001:db8::/32</textarea>" in page  # one entry per line
    for legend in ("Branding", "Language", "Access rules"):
        assert f">{legend}</h2>" in page
    rows = effective_rows(page)
    assert rows["branding.primary_color"] == ("#112233", "default experience")
    assert rows["access_rules.regions_deny"] == ("RU, BY", "default experience")
    assert 'href="/admin/experience/applicationexperience/preview/?scheme=dark"' in page  # the default's preview

    # Clearing the logo: no image any more (the built-in look).
    response = admin_client.post(f"/admin/experience/experience/{row.pk}/change/",
                                 form_data(display_name="Acme", **{"logo-clear": "on"}))
    assert response.status_code == 302, field_errors(response)
    assert Experience.objects.get().logo.name == "" and policy.resolve("").branding.logo_url == ""


BAD_INPUT = [
    ({"primary_color": "blue"}, "primary_color"),
    ({"primary_color_dark": "#12345"}, "primary_color_dark"),
    ({"terms_url": "javascript:x"}, "terms_url"),
    ({"privacy_url": "http://evil.example/privacy"}, "privacy_url"),
    ({"support_email": "not an address"}, "support_email"),
    ({"custom_css": "body { background: url(https://evil.example/x.png) }"}, "custom_css"),
    ({"ip_allow": "10.0.0.1/8"}, "ip_allow"),
    ({"ip_deny": "10.0.0.0/33"}, "ip_deny"),
    ({"regions_allow": "de"}, "regions_allow"),
    ({"regions_deny": "ZZ"}, "regions_deny"),
    ({"email_domains_deny": "not a domain"}, "email_domains_deny"),
    ({"authenticators": "password, ghost"}, "authenticators"),
    ({"language": "xx"}, "language"),
    ({"logo": upload(b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_IMAGE_BYTES)}, "logo"),
    ({"logo_dark": upload(SVG_WITH_SCRIPT, "logo.svg")}, "logo_dark"),
    ({"favicon": upload(b"GIF? no, text", "favicon.ico")}, "favicon"),
]


@pytest.mark.parametrize(("data", "field"), BAD_INPUT)
def test_the_default_form_refuses_bad_input_on_its_field(admin_client, password_authenticator, media, data, field):
    response = admin_client.post(ADD_URL, form_data(**data))
    errors = field_errors(response)
    assert list(errors) == [field], errors
    assert not Experience.objects.exists() and not list(media.rglob("*.*"))  # nothing saved, no file stored


def test_a_list_entry_error_names_the_entry(admin_client, password_authenticator):
    errors = field_errors(admin_client.post(ADD_URL, form_data(ip_allow="203.0.113.0/24\n10.0.0.1/8", regions_allow="DE de")))
    assert errors == {"ip_allow": ['"10.0.0.1/8": has host bits set: did you mean 10.0.0.0/8?'],
                      "regions_allow": ['"de": must be written in upper case ("DE")']}


def test_an_svg_with_a_script_is_refused_with_the_reason(admin_client, password_authenticator):
    errors = field_errors(admin_client.post(ADD_URL, form_data(logo=upload(SVG_WITH_SCRIPT, "logo.svg"))))
    assert "script" in errors["logo"][0]
    errors = field_errors(admin_client.post(ADD_URL, form_data(logo=upload(b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_IMAGE_BYTES))))
    assert errors["logo"] == [f"must be at most {MAX_IMAGE_BYTES // 1024} KiB"]


# -- an application's overrides ------------------------------------------------------------------------

def app_form(application: Any, **values: Any) -> dict[str, Any]:
    """An application experience form: every override empty (inherit) but ``values``."""
    data = {"application": application.pk, **values}
    return {key: value for key, value in data.items() if value is not None}


def test_an_application_overrides_only_what_its_form_fills_in(admin_client, password_authenticator, confidential_app, media):
    Experience.objects.create(authenticators=["password", "email-code"], captcha_policy="off", display_name="Acme")
    Authenticator.objects.create(name="staff", auth_type="password", title="Staff password")
    add_page = admin_client.get(f"{APP_ADD_URL}?application={confidential_app.application.pk}").content.decode()
    assert "Empty: inherits the default, now: off." in add_page  # the captcha's inherited value
    assert "Empty: inherits the default, now: password, email-code." in add_page
    assert re.search(r"Available: [^<]*staff \(Staff password\)", add_page)  # the names it may list
    assert '<option value="" selected>inherit</option>' in add_page

    response = admin_client.post(APP_ADD_URL, app_form(
        confidential_app.application, authenticators="staff, password", primary_color="#aa0000",
        sign_up_enabled="false", mfa_policy="required", mfa_factors=["totp"], ip_deny="198.51.100.0/24",
        password_min_length="12", logo=upload()))
    assert response.status_code == 302, field_errors(response)
    row = ApplicationExperience.objects.get()
    assert row.overrides == {  # the empty fields are absent: they inherit
        "authenticators": ["staff", "password"], "branding": {"primary_color": "#aa0000"},
        "sign_up": {"enabled": False}, "password_policy": {"min_length": 12},
        "mfa": {"policy": "required", "factors": ["totp"]}, "access_rules": {"ip_deny": ["198.51.100.0/24"]},
    }
    assert re.fullmatch(r"branding/[0-9a-f]{32}\.png", row.logo.name)

    effective = policy.resolve(confidential_app.client_id)
    assert [a.name for a in effective.first_factors()] == ["staff", "password"]
    assert effective.captcha == "off" and effective.branding.display_name == "Acme"  # inherited
    assert effective.branding.primary_color == "#aa0000" and effective.sign_up.enabled is False
    assert policy.resolve("").sign_up.enabled is True  # the default is untouched

    page = admin_client.get(change_url(row)).content.decode()
    rows = effective_rows(page)
    assert rows["branding.primary_color"] == ("#aa0000", "this application")
    assert rows["branding.display_name"] == ("Acme", "default experience")
    assert rows["branding.logo_url"] == (f"/media/{row.logo.name}", "this application")
    assert rows["captcha.policy"] == ("off", "default experience")
    assert rows["sign_up.enabled"] == ("no", "this application")
    assert rows["sign_up.verify"] == ("yes", "default experience")
    assert "Sign-in methods shown: <strong>staff, password</strong>" in page
    assert '<option value="false" selected>no</option>' in page  # the stored override, shown again
    simulator = re.search(r'<a href="(/admin/experience/experience/simulate/[^"]*)">Simulate the access rules', page)
    assert simulator is not None
    simulated = admin_client.get(unescape(simulator.group(1)) + "&ip=198.51.100.9").content.decode()
    assert "Refused" in simulated and "ip_deny" in simulated  # the application's own rule decides

    # The list: what it overrides, the preview links; search by client ID, filter by what is overridden.
    listing = admin_client.get("/admin/experience/applicationexperience/",
                               {"q": confidential_app.client_id, "overrides": "mfa"}).content.decode()
    assert "branding.logo_url, branding.primary_color, authenticators, sign_up.enabled, password_policy.min_length" in listing
    assert f'{preview_url(confidential_app.client_id)}?scheme=dark' in listing
    assert "0 application sign-in experiences" in admin_client.get(
        "/admin/experience/applicationexperience/", {"overrides": "captcha"}).content.decode()


def test_emptying_a_field_makes_it_inherit_again(admin_client, password_authenticator, confidential_app, media):
    response = admin_client.post(APP_ADD_URL, app_form(confidential_app.application, captcha_policy="always",
                                                       language="-", display_name="Shop", favicon=upload()))
    assert response.status_code == 302, field_errors(response)
    row = ApplicationExperience.objects.get()
    assert row.overrides == {"captcha": {"policy": "always"}, "language": "", "branding": {"display_name": "Shop"}}
    assert policy.resolve(confidential_app.client_id).captcha == "always"

    page = admin_client.get(change_url(row)).content.decode()
    assert '<option value="-" selected>' in page  # "site default" chosen, not "inherit"
    response = admin_client.post(change_url(row), {"display_name": "Shop", "favicon-clear": "on"})
    assert response.status_code == 302, field_errors(response)
    row.refresh_from_db()
    assert row.overrides == {"branding": {"display_name": "Shop"}} and row.favicon.name == ""
    effective = policy.resolve(confidential_app.client_id)
    assert effective.captcha == "risk" and effective.branding.favicon_url == ""  # the default's again
    assert effective_rows(admin_client.get(change_url(row)).content.decode())["captcha.policy"] == ("risk", "built-in")


APP_BAD_INPUT = [
    ({"primary_color": "red"}, "primary_color"),
    ({"terms_url": "javascript:x"}, "terms_url"),
    ({"ip_allow": "10.0.0.1/8"}, "ip_allow"),
    ({"regions_allow": "de"}, "regions_allow"),
    ({"regions_deny": "ZZ"}, "regions_deny"),
    ({"authenticators": "password, carrier-pigeon"}, "authenticators"),
    ({"authenticators": "totp"}, "authenticators"),
    ({"password_min_length": "4"}, "password_min_length"),
    ({"password_min_length": "many"}, "password_min_length"),
    ({"sign_up_enabled": "maybe"}, "sign_up_enabled"),
    ({"language": "xx"}, "language"),
    ({"mfa_policy": "required", "mfa_factors": ["email_code"]}, "mfa_factors"),
    ({"sign_in_url": "https://evil.example/"}, "sign_in_url"),
    ({"logo": upload(b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_IMAGE_BYTES)}, "logo"),
    ({"logo_dark": upload(SVG_WITH_SCRIPT, "logo.svg")}, "logo_dark"),
]


@pytest.mark.parametrize(("data", "field"), APP_BAD_INPUT)
def test_an_application_form_refuses_bad_input_on_its_field(admin_client, password_authenticator, confidential_app,
                                                           media, data, field):
    row = ApplicationExperience.objects.create(application=confidential_app.application,
                                               overrides={"captcha": {"policy": "always"}})
    policy.resolve(confidential_app.client_id)
    # a valid change alongside the bad one: nothing of it is applied
    response = admin_client.post(change_url(row), {"display_name": "Changed", **data})
    errors = field_errors(response)
    assert list(errors) == [field], errors
    row.refresh_from_db()
    assert row.overrides == {"captcha": {"policy": "always"}} and not row.logo and not row.logo_dark
    assert not list(media.rglob("*.*"))
    assert policy.resolve(confidential_app.client_id).branding.display_name == ""


def test_a_required_second_factor_is_checked_against_the_inherited_factors(admin_client, password_authenticator,
                                                                          confidential_app):
    """The overrides are checked merged over the default: "required" with the default's e-mail code only is refused."""
    Experience.objects.create(authenticators=["password"], mfa_factors=["email_code"])
    errors = field_errors(admin_client.post(APP_ADD_URL, app_form(confidential_app.application, mfa_policy="required")))
    assert errors == {"mfa_factors": ["a required second factor needs a factor besides email_code "
                                      "(totp, backup_code or sms_code)"]}
    assert not ApplicationExperience.objects.exists()


def test_one_experience_per_application(admin_client, password_authenticator, confidential_app):
    ApplicationExperience.objects.create(application=confidential_app.application)
    errors = field_errors(admin_client.post(APP_ADD_URL, app_form(confidential_app.application, captcha_policy="off")))
    assert list(errors) == ["application"]


def test_the_application_page_links_to_its_experience_and_preview(admin_client, password_authenticator, confidential_app):
    application = confidential_app.application
    page = admin_client.get(f"/admin/oauth2_provider/application/{application.pk}/change/").content.decode()
    assert f'href="{APP_ADD_URL}?application={application.pk}">Customise sign-in experience<' in page
    assert f'href="{preview_url(confidential_app.client_id)}">Preview sign-in page<' in page
    row = ApplicationExperience.objects.create(application=application)
    page = admin_client.get(f"/admin/oauth2_provider/application/{application.pk}/change/").content.decode()
    assert f'href="{change_url(row)}">Sign-in experience<' in page


# -- the preview -----------------------------------------------------------------------------------------

def test_the_preview_shows_the_applications_sign_in_page_without_a_flow(admin_client, password_authenticator,
                                                                       confidential_app):
    Authenticator.objects.create(name="staff", auth_type="password", title="Staff password")
    ApplicationExperience.objects.create(application=confidential_app.application, overrides={
        "authenticators": ["staff", "password", "email-code"], "captcha": {"policy": "always"},
        "branding": {"display_name": "Shop", "primary_color": "#aa0000", "primary_color_dark": "#ffcc00"}})
    response = admin_client.get(preview_url(confidential_app.client_id))
    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r'<a href="\?authenticator=([^"]+)"', html) == ["staff", "password", "email-code"]
    assert "<h1>Sign in to Shop</h1>" in html and "Preview — signing in is disabled" in html
    assert "<fieldset class=\"preview\" disabled>" in html and "--primary: #aa0000; --on-primary: #fff" in html
    assert '<meta name="robots" content="noindex, nofollow">' in html and response["X-Robots-Tag"] == "noindex, nofollow"
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert "form-action 'self';" in response["Content-Security-Policy"]  # no client origin: it ends nowhere
    assert "@media not all {" in html and "color-scheme: light;" in html  # light, whatever the browser prefers
    assert not Interaction.objects.exists()
    assert 'action="?authenticator=staff"' in html  # its own URL, which answers only GET:
    assert admin_client.post(preview_url(confidential_app.client_id) + "?authenticator=staff",
                             {"authenticator": "staff", "identifier": "a@example.com", "password": "x"}).status_code == 405
    assert not Interaction.objects.exists()

    dark = admin_client.get(preview_url(confidential_app.client_id), {"scheme": "dark", "authenticator": "email-code"})
    html = dark.content.decode()
    assert "@media all {" in html and "color-scheme: dark;" in html and "--primary: #ffcc00; --on-primary: #000" in html
    assert 'aria-current="page">E-mail code<' in html and "Send code" in html
    assert not Interaction.objects.exists()


def test_the_preview_of_the_default_experience_and_of_unknown_applications(admin_client, password_authenticator):
    assert "<h1>Sign in to Portcullis</h1>" in admin_client.get(
        "/admin/experience/applicationexperience/preview/").content.decode()
    assert admin_client.get(preview_url("no-such-client")).status_code == 404


def test_the_preview_is_for_staff_with_the_permission(client, confidential_app, password_authenticator):
    url = preview_url(confidential_app.client_id)
    assert client.get(url).status_code == 302  # anonymous: the admin's sign-in
    user = get_user_model().objects.create_user("bob", "bob@example.com", "a long password 1")
    client.force_login(user)
    assert client.get(url).status_code == 302  # not staff
    user.is_staff = True
    user.save()
    assert client.get(url).status_code == 403  # staff without the permission to view experiences
    user.user_permissions.add(Permission.objects.get(codename="view_applicationexperience"))
    assert client.get(url).status_code == 200


def test_an_empty_override_the_form_cannot_say_is_pointed_out(admin_client, password_authenticator, confidential_app):
    """An override to an empty value (from the configuration document) shows as empty: its help says what saving does."""
    Experience.objects.create(authenticators=["password"], ip_allow=["203.0.113.0/24"])
    row = ApplicationExperience.objects.create(application=confidential_app.application,
                                               overrides={"access_rules": {"ip_allow": []}})
    page = admin_client.get(change_url(row)).content.decode()
    assert page.count("Stored: an empty override. Saved with this field empty, it inherits instead.") == 1
    assert effective_rows(page)["access_rules.ip_allow"] == ("(none)", "this application")


def test_the_preview_shows_the_applications_logos_and_css_as_its_page_does(admin_client, password_authenticator,
                                                                          confidential_app):
    from tests.helpers import branded, png, svg

    branded(confidential_app, {"branding": {"custom_css": "h1 { letter-spacing: .05em }"}}, logo=svg(), logo_dark=png())
    logo, dark_logo = (getattr(ApplicationExperience.objects.get(), name).url for name in ("logo", "logo_dark"))

    light = admin_client.get(preview_url(confidential_app.client_id)).content.decode()
    dark = admin_client.get(preview_url(confidential_app.client_id), {"scheme": "dark"}).content.decode()

    assert f'<source media="not all" srcset="{dark_logo}"><img src="{logo}"' in light  # light: the logo
    assert f'<source media="all" srcset="{dark_logo}">' in dark  # dark: the dark-mode logo, whatever the browser
    assert "<style>h1 { letter-spacing: .05em }</style>" in light
