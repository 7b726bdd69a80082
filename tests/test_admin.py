"""An admin sets things up in Django admin, with no shell, and a user signs in through it."""

from __future__ import annotations

import re

import pytest
from oauth2_provider.models import get_application_model

from authenticators.models import Authenticator
from identity.models import ApplicationSettings, SigningKey
from tests.conftest import REDIRECT_URI, authorize_params, pkce_pair

pytestmark = pytest.mark.django_db
Application = get_application_model()


def form_value(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html) or re.search(rf'value="([^"]*)"[^>]*name="{name}"', html)
    return match.group(1) if match else ""


def test_admin_creates_an_application_and_a_user_signs_in_through_it(admin_client, flow, user):
    add_page = admin_client.get("/admin/oauth2_provider/application/add/")
    assert add_page.status_code == 200
    html = add_page.content.decode()
    client_id, client_secret = form_value(html, "client_id"), form_value(html, "client_secret")
    assert client_id and client_secret
    response = admin_client.post("/admin/oauth2_provider/application/add/", {
        "client_id": client_id, "client_secret": client_secret, "hash_client_secret": "on",
        "name": "Shop", "client_type": "confidential", "authorization_grant_type": "authorization-code",
        "redirect_uris": REDIRECT_URI, "post_logout_redirect_uris": "", "allowed_origins": "", "algorithm": "RS256",
        "portcullis_settings-TOTAL_FORMS": "1", "portcullis_settings-INITIAL_FORMS": "0",
        "portcullis_settings-MIN_NUM_FORMS": "0", "portcullis_settings-MAX_NUM_FORMS": "1",
        "portcullis_settings-0-first_party": "on",
    })
    assert response.status_code == 302, re.findall(r"errorlist[^>]*>(.*?)</ul>", response.content.decode(), re.S)
    application = Application.objects.get(name="Shop")
    assert ApplicationSettings.objects.get(application=application).first_party is True
    assert application.client_secret.startswith("portcullis_sha256$")

    class Registered:
        pass

    app = Registered()
    app.client_id, app.client_secret = client_id, client_secret
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(app, authorize_params(app, challenge))
    token = flow.token(app, code, params, code_verifier=verifier)
    assert token.status_code == 200 and "id_token" in token.json()


def test_authenticator_options_are_checked_by_the_type_settings_form(admin_client):
    authenticator = Authenticator.objects.get(name="password")
    url = f"/admin/authenticators/authenticator/{authenticator.pk}/change/"
    base = {"name": "password", "auth_type": "password", "title": "Password", "description": "",
            "enabled": "on", "sort_order": "0"}
    refused = admin_client.post(url, {**base, "options": '{"allow_email": false, "allow_username": false}'})
    assert refused.status_code == 200
    assert "Allow at least one identifier." in refused.content.decode()
    accepted = admin_client.post(url, {**base, "title": "E-mail and password", "options": '{"allow_email": true}'})
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
