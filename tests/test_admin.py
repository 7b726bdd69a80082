"""An admin sets things up in Django admin, with no shell, and a user signs in through it."""

from __future__ import annotations

import logging
import re
from html import unescape as html_unescape
from typing import Any

import pytest
from oauth2_provider.models import get_application_model

from authenticators.models import Authenticator
from identity.models import ApplicationSettings, SigningKey
from tests.helpers import (
    REDIRECT_URI,
    TOKEN_URL,
    ClientApp,
    authorize_params,
    basic_auth,
    error_of,
    pkce_pair,
    tokens_for,
)

pytestmark = pytest.mark.django_db
Application = get_application_model()


def form_value(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html) or re.search(rf'value="([^"]*)"[^>]*name="{name}"', html)
    return match.group(1) if match else ""


ADD_URL = "/admin/oauth2_provider/application/add/"


def application_form(admin_client: Any, **overrides: str) -> dict[str, str]:
    """What the add form posts for a confidential web application, with ``overrides``."""
    data = {
        "client_id": form_value(admin_client.get(ADD_URL).content.decode(), "client_id"), "name": "Shop", "client_type": "confidential", "authorization_grant_type": "authorization-code",
        "redirect_uris": REDIRECT_URI, "post_logout_redirect_uris": "", "allowed_origins": "", "algorithm": "RS256",
        "portcullis_settings-TOTAL_FORMS": "1", "portcullis_settings-INITIAL_FORMS": "0",
        "portcullis_settings-MIN_NUM_FORMS": "0", "portcullis_settings-MAX_NUM_FORMS": "1",
        "portcullis_settings-0-first_party": "on",
    }
    data.update(overrides)
    return data


def field_errors(response: Any) -> dict[str, list[str]]:
    """The admin form's errors by field, as the page shows them."""
    form = response.context["adminform"].form
    return {name: [str(message) for message in messages] for name, messages in form.errors.items()}


def secret_on_page(response: Any) -> str:
    match = re.search(r'<textarea id="client-secret"[^>]*>([^<]+)</textarea>', response.content.decode())
    assert response.status_code == 200 and match, field_errors(response) if "adminform" in response.context else response
    return match.group(1)


def test_admin_creates_an_application_and_a_user_signs_in_through_it(admin_client, flow, user, caplog):
    caplog.set_level(logging.DEBUG)
    add_page = admin_client.get(ADD_URL)
    assert add_page.status_code == 200
    assert 'name="client_secret"' not in add_page.content.decode()  # the server makes the secret
    response = admin_client.post(ADD_URL, application_form(admin_client))
    secret = secret_on_page(response)
    assert "shown only this once" in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    application = Application.objects.get(name="Shop")
    assert ApplicationSettings.objects.get(application=application).first_party is True
    assert application.client_secret.startswith("portcullis_sha256$") and secret not in application.client_secret
    assert application.algorithm == "RS256"

    change_page = admin_client.get(f"/admin/oauth2_provider/application/{application.pk}/change/").content.decode()
    assert secret not in change_page and application.client_secret not in change_page
    assert "Rotate client secret" in change_page

    app = ClientApp(application, application.client_id, secret)
    token = tokens_for(flow, app)
    assert "id_token" in token
    # client_secret_basic, as the quick start says
    basic = flow.client.post(TOKEN_URL, {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
                             HTTP_AUTHORIZATION=basic_auth(app))
    assert basic.status_code == 200, basic.content
    assert not [record for record in caplog.records if secret in record.getMessage()]


def test_authenticator_options_are_checked_by_the_type_settings_form(admin_client):
    authenticator = Authenticator.objects.get(name="password")
    url = f"/admin/authenticators/authenticator/{authenticator.pk}/change/"
    base = {"name": "password", "title": "Password", "description": "", "enabled": "on", "sort_order": "0"}
    refused = admin_client.post(url, base)  # neither identifier allowed
    assert refused.status_code == 200
    assert "Allow at least one identifier." in refused.content.decode()
    accepted = admin_client.post(url, {**base, "title": "E-mail and password", "options-allow_email": "on"})
    assert accepted.status_code == 302
    authenticator.refresh_from_db()
    assert authenticator.title == "E-mail and password"
    assert authenticator.options == {"allow_email": True, "allow_username": False}


def test_admin_rotates_the_signing_key(admin_client, client):
    old_kid = client.get("/.well-known/jwks.json").json()["keys"][0]["kid"]
    response = admin_client.post("/admin/identity/signingkey/", {
        "action": "rotate_keys", "_selected_action": [str(SigningKey.objects.get().pk)]})
    assert response.status_code == 302
    kids = [key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]]
    assert len(kids) == 2 and kids[1] == old_kid and kids[0] != old_kid


def test_admin_pages_for_users_authenticators_and_audit_open(admin_client, user):
    for url in ("/admin/auth/user/", f"/admin/auth/user/{user.pk}/change/", "/admin/authenticators/authenticator/",
                "/admin/experience/auditevent/", "/admin/identity/consent/", "/admin/identity/signingkey/"):
        assert admin_client.get(url).status_code == 200, url


def test_dot_createapplication_command_works_unchanged(flow, user):
    from django.core.management import call_command

    secret = "s" * 40
    call_command("createapplication", "confidential", "authorization-code", "--name", "From the shell",
                 "--redirect-uris", REDIRECT_URI, "--client-secret", secret, "--algorithm", "RS256")
    application = Application.objects.get(name="From the shell")
    assert application.client_secret.startswith("portcullis_sha256$")

    class Registered:
        client_id, client_secret = application.client_id, secret

    verifier, challenge = pkce_pair()
    # No Portcullis settings row: the defaults apply (third-party), so the user is asked to consent.
    response = flow.authorize(authorize_params(Registered, challenge))
    sign_in = flow.client.post(response["Location"], {"identifier": "alice", "password": "correct horse battery staple",
                                                      "authenticator": "password"})
    consent_page = flow.client.get(sign_in["Location"])
    assert consent_page.status_code == 200 and "wants to access your account" in consent_page.content.decode()


# -- the admin's traps: only what works is offered, and nothing is saved that can never match -------

def test_add_form_offers_only_the_authorization_code_grant_and_rs256(admin_client):
    html = admin_client.get(ADD_URL).content.decode()
    grants = re.findall(r'name="authorization_grant_type"[^>]*value="([^"]*)"|value="([^"]*)"[^>]*name="authorization_grant_type"', html)
    assert {value for pair in grants for value in pair if value} == {"authorization-code"}
    assert re.search(r'<input[^>]*value="authorization-code"[^>]*checked', html)
    algorithm = re.search(r'<select name="algorithm"[^>]*>(.*?)</select>', html, re.S).group(1)
    assert re.findall(r'value="([^"]*)"', algorithm) == ["RS256"] and "selected" in algorithm
    assert "No OIDC support" not in html and "Implicit" not in html and "Client credentials" not in html


@pytest.mark.parametrize("grant", ["implicit", "password", "client-credentials", "openid-hybrid",
                                   "urn:ietf:params:oauth:grant-type:device_code"])
def test_a_grant_the_token_endpoint_refuses_is_a_field_error(admin_client, grant):
    response = admin_client.post(ADD_URL, application_form(admin_client, authorization_grant_type=grant))
    assert response.status_code == 200
    assert field_errors(response) == {"authorization_grant_type": [
        f"Portcullis supports only the authorization code grant (with refresh tokens): “{grant}” would be "
        "refused by its token endpoint."]}
    assert not Application.objects.filter(name="Shop").exists()


@pytest.mark.parametrize("algorithm", ["", "HS256"])
def test_an_algorithm_other_than_rs256_is_a_field_error(admin_client, algorithm):
    response = admin_client.post(ADD_URL, application_form(admin_client, algorithm=algorithm))
    assert response.status_code == 200
    assert list(field_errors(response)) == ["algorithm"]
    assert "Portcullis signs every ID token with RS256" in field_errors(response)["algorithm"][0]
    assert not Application.objects.filter(name="Shop").exists()


NEVER_MATCHING_URIS = [
    ("https://rp.example.com/callback,https://rp.example.com/other", "Put one URI per line: this looks like several URIs joined by commas."),
    ("https://rp.example.com/callback,", "Put one URI per line: this looks like several URIs joined by commas."),
    ("https://*.example.com/callback", "Wildcards are not supported: register each URI exactly as the application sends it."),
    ("rp.example.com/callback", "Enter an absolute URI with its scheme, like https://app.example.com/callback."),
    ("/callback", "Enter an absolute URI with its scheme, like https://app.example.com/callback."),
    ("https:/rp.example.com/callback", "Enter an absolute URI with its scheme, like https://app.example.com/callback."),
    ("http://rp.example.com/callback", "Plain http is allowed only for 127.0.0.1, [::1] and localhost; use https."),
    ("https://rp.example.com/callback#done", "A redirect URI must not contain a fragment (#…)."),
    ("https://user@rp.example.com/callback", "A redirect URI must not contain a user name or password."),
    ("https://rp.example.com:99999/callback", "This is not a valid URI."),
    ("javascript:alert(1)", "The scheme “javascript” is not allowed here; use https."),
]


@pytest.mark.parametrize(("uri", "problem"), NEVER_MATCHING_URIS)
@pytest.mark.parametrize("field", ["redirect_uris", "post_logout_redirect_uris"])
def test_a_uri_that_can_never_match_is_a_field_error(admin_client, field, uri, problem):
    lines = f"https://rp.example.com/fine\n{uri}"
    response = admin_client.post(ADD_URL, application_form(admin_client, **{field: lines}))
    assert response.status_code == 200
    assert field_errors(response) == {field: [f"“{uri}”: {problem}"]}
    assert f"“{uri}”: {problem}" in html_unescape(response.content.decode())
    assert not Application.objects.filter(name="Shop").exists()


@pytest.mark.parametrize(("uri", "problem"), NEVER_MATCHING_URIS[:4])
def test_the_authorization_endpoint_refuses_what_the_admin_refuses(flow, user, uri, problem):
    """The same rule at both ends: registered behind the admin's back, such a URI still never redirects."""
    from tests.helpers import make_application

    app = make_application(redirect_uri=uri)
    response = flow.authorize(authorize_params(app, pkce_pair()[1], redirect_uri=uri))
    assert response.status_code == 400 and not response.has_header("Location")


def test_redirect_uris_are_saved_one_per_line(admin_client):
    uris = "https://rp.example.com/callback  https://rp.example.com/cb?tenant=1\r\nhttp://127.0.0.1:8000/cb\nhttp://localhost/cb\nhttp://[::1]/cb\n"
    response = admin_client.post(ADD_URL, application_form(admin_client, redirect_uris=uris,
                                                           post_logout_redirect_uris="http://localhost/bye"))
    secret_on_page(response)
    application = Application.objects.get(name="Shop")
    assert application.redirect_uris == ("https://rp.example.com/callback\nhttps://rp.example.com/cb?tenant=1\n"
                                         "http://127.0.0.1:8000/cb\nhttp://localhost/cb\nhttp://[::1]/cb")
    assert application.post_logout_redirect_uris == "http://localhost/bye"


def test_an_application_needs_a_redirect_uri(admin_client):
    response = admin_client.post(ADD_URL, application_form(admin_client, redirect_uris="  \n"))
    assert field_errors(response) == {"redirect_uris": [
        "Register at least one redirect URI: the authorization code flow sends the user back to it."]}


@pytest.mark.parametrize(("origin", "problem"), [
    ("https://spa.example.com/app", "An origin is only scheme://host[:port], without a path or a query."),
    ("https://spa.example.com?x=1", "An origin is only scheme://host[:port], without a path or a query."),
    ("http://spa.example.com", "Plain http is allowed only for 127.0.0.1, [::1] and localhost; use https."),
    ("https://*.example.com", "Wildcards are not supported: register each origin exactly."),
    ("spa.example.com", "An origin is scheme://host[:port], like https://app.example.com."),
    ("https://bücher.example", "Write the host in its ASCII form (xn--…), as browsers send it."),
    ("https://spa_app.example.com", "This is not a valid origin."),
    ("https://a.example.com,https://b.example.com", "Put one origin per line: this looks like several origins joined by commas."),
])
def test_an_allowed_origin_that_can_never_match_is_a_field_error(admin_client, origin, problem):
    response = admin_client.post(ADD_URL, application_form(admin_client, allowed_origins=origin))
    assert response.status_code == 200
    assert field_errors(response) == {"allowed_origins": [f"“{origin}”: {problem}"]}


def test_allowed_origins_accept_https_and_loopback_http(admin_client):
    origins = ("https://spa.example.com\nhttp://localhost:5173\nhttp://127.0.0.1:8080\nhttp://[::1]:3000\n"
               "https://Admin.Example.com:443/")  # what a browser sends, give or take case, port and slash
    response = admin_client.post(ADD_URL, application_form(admin_client, allowed_origins=origins))
    secret_on_page(response)
    assert Application.objects.get(name="Shop").allowed_origins == origins


# -- the client secret: shown once, rotated on demand, never again ------------------------------------

def change_url(application: Any) -> str:
    return f"/admin/oauth2_provider/application/{application.pk}/change/"


def rotate_url(application: Any) -> str:
    return f"/admin/oauth2_provider/application/{application.pk}/rotate-secret/"


def test_a_public_client_gets_no_secret(admin_client, confidential_app):
    response = admin_client.post(ADD_URL, application_form(admin_client, client_type="public"))
    assert response.status_code == 302
    application = Application.objects.get(name="Shop")
    page = admin_client.get(change_url(application)).content.decode()
    assert "None: a public client does not authenticate" in page and "Rotate client secret" not in page
    refused = admin_client.post(rotate_url(application))
    assert refused.status_code == 302 and refused["Location"] == change_url(application)
    assert Application.objects.get(pk=application.pk).client_secret == application.client_secret


def test_a_secret_stored_unhashed_outside_the_admin_is_pointed_out(admin_client):
    application = Application.objects.create(name="Legacy", client_type="confidential", hash_client_secret=False,
                                             authorization_grant_type="authorization-code", redirect_uris=REDIRECT_URI,
                                             client_secret="l" * 40, algorithm="RS256")
    page = admin_client.get(change_url(application)).content.decode()
    assert "stored unhashed" in page and "l" * 40 not in page
    secret_on_page(admin_client.post(rotate_url(application)))
    assert Application.objects.get(pk=application.pk).client_secret.startswith("portcullis_sha256$")


def test_rotating_the_secret_shows_the_new_one_once_and_the_old_one_stops_working(admin_client, flow, user, confidential_app, caplog):
    caplog.set_level(logging.DEBUG)
    application = confidential_app.application
    confirm = admin_client.get(rotate_url(application))
    assert confirm.status_code == 200 and "The current secret stops working" in confirm.content.decode()
    assert Application.objects.get(pk=application.pk).client_secret == application.client_secret  # GET changes nothing

    new_secret = secret_on_page(admin_client.post(rotate_url(application)))
    assert new_secret != confidential_app.client_secret
    stored = Application.objects.get(pk=application.pk).client_secret
    assert stored.startswith("portcullis_sha256$") and new_secret not in stored

    old = flow.client.post(TOKEN_URL, {"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT_URI},
                           HTTP_AUTHORIZATION=basic_auth(confidential_app))
    assert old.status_code == 401 and error_of(old) == "invalid_client"
    rotated = ClientApp(application, application.client_id, new_secret)
    assert "access_token" in tokens_for(flow, rotated)

    page = admin_client.get(change_url(application)).content.decode()
    assert new_secret not in page and stored not in page
    history = admin_client.get(change_url(application).replace("/change/", "/history/")).content.decode()
    assert "Rotated the client secret." in history and new_secret not in history
    assert not [record for record in caplog.records if new_secret in record.getMessage()]


def test_a_client_that_becomes_confidential_gets_its_secret_shown_once(admin_client, public_app, flow, user):
    application = public_app.application
    page = admin_client.get(change_url(application)).content.decode()
    data = {**application_form(admin_client), "client_id": application.client_id, "name": application.name,
            "redirect_uris": application.redirect_uris, "post_logout_redirect_uris": application.post_logout_redirect_uris,
            "portcullis_settings-INITIAL_FORMS": "1", "portcullis_settings-0-application": str(application.pk)}
    assert 'value="public"' in page
    secret = secret_on_page(admin_client.post(change_url(application), data))
    assert "access_token" in tokens_for(flow, ClientApp(application, application.client_id, secret))


def test_the_secret_of_an_application_added_from_a_popup_is_shown_before_the_popup_closes(admin_client):
    response = admin_client.post(ADD_URL + "?_popup=1", {**application_form(admin_client), "_popup": "1"})
    secret = secret_on_page(response)
    application = Application.objects.get(name="Shop")
    html = html_unescape(response.content.decode())
    assert f'"value": "{application.pk}"' in html and 'id="client-secret-done"' in html
    assert secret not in application.client_secret


# -- what a developer needs to connect ------------------------------------------------------------------

def test_the_change_page_shows_how_to_connect(admin_client, confidential_app, public_app):
    page = html_unescape(admin_client.get(change_url(confidential_app.application)).content.decode())
    for expected in ("Connect your application", "http://testserver/.well-known/openid-configuration",
                     "<code>http://testserver</code>", f"<code>{confidential_app.client_id}</code>",
                     f"<code>{REDIRECT_URI}</code>", "<code>https://rp.example.com/bye</code>", "client_secret_basic",
                     "code_challenge_method=S256", "http://testserver/oauth/authorize", "http://testserver/oauth/token",
                     f"-u '{confidential_app.client_id}:CLIENT_SECRET'"):
        assert expected in page, expected
    public_page = html_unescape(admin_client.get(change_url(public_app.application)).content.decode())
    assert "a public client must use PKCE" in public_page and f"-d client_id={public_app.client_id}" in public_page
    assert "CLIENT_SECRET" not in public_page


# -- no admin page answers 500 ------------------------------------------------------------------------

@pytest.fixture
def one_of_each(flow, user, confidential_app, third_party_app) -> None:
    """At least one row of every model the admin shows: a real sign-in makes most of them."""
    from datetime import timedelta

    from django.contrib.auth.models import Group
    from django.utils import timezone
    from oauth2_provider.models import get_id_token_model

    from authenticators.models import UserAuthenticator
    from identity.models import Consent

    tokens_for(flow, confidential_app)  # interaction, audit event, grant, authorization record, tokens
    Consent.objects.create(user=user, application=third_party_app.application, scopes="openid profile")
    Group.objects.create(name="Support")
    get_id_token_model().objects.create(user=user, application=confidential_app.application,
                                        expires=timezone.now() + timedelta(hours=1), scope="openid")
    UserAuthenticator.objects.create(authenticator=Authenticator.objects.get(name="password"), user=user, uuid="alice")
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.create(user=user, name="Phone", confirmed=True)
    from authenticators.models import BackupCode, SecondFactorState  # part mfa

    BackupCode.objects.create(user=user, digest="0" * 64)
    SecondFactorState.objects.create(user=user, authenticator=Authenticator.objects.get(name="password"))
    from experience.models import ApplicationExperience, Experience

    Experience.objects.create(authenticators=["password"])
    ApplicationExperience.objects.create(application=confidential_app.application,
                                         overrides={"branding": {"primary_color": "#112233"}})


def admin_links(html: str, base: str) -> set[str]:
    from urllib.parse import urljoin, urlsplit

    links = set()
    for href in re.findall(r'href="([^"#]+)', html):
        url = urljoin(base, html_unescape(href))
        parts = urlsplit(url)
        if parts.netloc in ("", "testserver") and parts.path.startswith("/admin/") and parts.path != "/admin/logout/":
            links.add(parts.path + (f"?{parts.query}" if parts.query else ""))
    return links


def test_no_admin_page_answers_500(admin_client, one_of_each):
    """As a superuser: every registered model's list, search, add, change, delete and history pages, the
    index and app pages, then every admin link those pages show (view on site, filters, sorting, popups)."""
    from django.contrib import admin
    from django.urls import reverse

    pages = ["/admin/"]
    for model in admin.site._registry:
        opts = model._meta
        obj = model._default_manager.order_by("pk").first()
        assert obj is not None, f"the crawler needs one {opts.label}: create it in one_of_each"
        name = f"admin:{opts.app_label}_{opts.model_name}"
        pages += [reverse("admin:app_list", args=[opts.app_label]), reverse(f"{name}_changelist"),
                  reverse(f"{name}_changelist") + "?q=alice", reverse(f"{name}_add"),
                  *(reverse(f"{name}_{view}", args=[obj.pk]) for view in ("change", "delete", "history")),
                  reverse(f"{name}_change", args=["not-a-key"])]
    pages.append("/admin/oauth2_provider/application/not-a-key/rotate-secret/")
    failures: list[str] = []
    seen: set[str] = set()

    def visit(url: str) -> str:
        seen.add(url)
        try:
            response = admin_client.get(url)
        except Exception as error:  # noqa: BLE001 - each page's failure is reported with its URL
            failures.append(f"{url}: {error!r}")
            return ""
        if response.status_code >= 500:
            failures.append(f"{url}: {response.status_code}")
        if url.startswith("/admin/r/") and response.status_code == 302:  # "view on site": the site's page too
            visit(response["Location"].removeprefix("http://testserver"))
        return response.content.decode(errors="replace") if response.status_code == 200 else ""

    found: set[str] = set()
    for url in dict.fromkeys(pages):
        found |= admin_links(visit(url), url)
    for url in sorted(found - seen):
        visit(url)
    assert len(seen) > 200 and not failures, failures
