"""An admin adds and edits authenticators in Django admin: a type picker, then the type's own
settings as form fields, validated by the type; secrets are write-only; a redirect type shows the
redirect URI to register upstream and tests its connection; a row of an unregistered type opens."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from django import forms

from authenticators.base import AuthError, RedirectAuth
from authenticators.models import Authenticator
from authenticators.registry import registry

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/authenticators/authenticator/add/"
SECRET = "upstream-secret-4242"


def change_url(authenticator: Authenticator) -> str:
    return f"/admin/authenticators/authenticator/{authenticator.pk}/change/"


def field_errors(response: Any) -> dict[str, list[str]]:
    form = response.context["adminform"].form
    return {name: [str(message) for message in messages] for name, messages in form.errors.items()}


def common(name: str, title: str, **extra: str) -> dict[str, str]:
    return {"name": name, "title": title, "description": "", "enabled": "on", "sort_order": "3", **extra}


# -- a test-only upstream type -----------------------------------------------------------------------
class UpstreamSettingsForm(forms.Form):
    issuer = forms.URLField(label="Issuer", assume_scheme="https")
    client_id = forms.CharField(label="Client ID")
    client_secret = forms.CharField(label="Client secret", min_length=8)

    def clean_issuer(self) -> str:
        issuer = self.cleaned_data["issuer"]
        if not issuer.startswith("https://"):
            raise forms.ValidationError("The issuer must be https.")
        return issuer


class UpstreamAuth(RedirectAuth):
    def authorize_url(self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str,
                      login_hint: str = "") -> str:
        return f"{self.options['issuer']}/authorize?state={state}"

    def complete(self, params: dict[str, Any], pending: dict[str, Any]) -> Any:
        raise AuthError("invalid_state")

    def test_connection(self) -> list[tuple[bool, str]]:
        if self.options.get("issuer") == "https://broken.example":
            raise OSError("connection refused")
        return [(True, "Discovery document reachable."), (False, "The JWKS has no usable key.")]


@pytest.fixture
def upstream_type():
    registry.register("test-upstream", UpstreamAuth, settings_form=UpstreamSettingsForm, title="Test upstream",
                      secret_options=("client_secret",), replace=True)
    yield registry.get("test-upstream")
    registry.unregister("test-upstream")


@pytest.fixture
def upstream(upstream_type) -> Authenticator:
    return Authenticator.objects.create(name="corp", auth_type="test-upstream", title="Corp SSO", options={
        "issuer": "https://login.corp.example", "client_id": "portcullis", "client_secret": SECRET})


# -- the picker ------------------------------------------------------------------------------------------
def test_the_add_page_starts_with_a_type_picker_linking_to_each_type(admin_client, upstream_type):
    response = admin_client.get(ADD_URL)
    assert response.status_code == 200
    html = unescape(response.content.decode())
    links = set(re.findall(r'href="\?auth_type=([^"&]+)"', html))
    assert {"password", "email-code", "sms-code", "test-upstream"} <= links
    assert "Choose the type of the new authenticator" in html and "Test upstream" in html
    assert 'name="options' not in html  # no form yet: the type comes first


def test_an_unknown_type_shows_the_picker_again(admin_client):
    response = admin_client.get(ADD_URL + "?auth_type=saml")
    assert response.status_code == 404
    assert "There is no authenticator type “saml”" in unescape(response.content.decode())
    assert admin_client.post(ADD_URL + "?auth_type=saml", common("x", "X")).status_code == 404
    assert not Authenticator.objects.filter(name="x").exists()


def test_the_picker_keeps_the_popup_marker(admin_client):
    html = unescape(admin_client.get(ADD_URL + "?_popup=1").content.decode())
    assert 'href="?_popup=1&auth_type=password"' in html


# -- each built-in type through the add form --------------------------------------------------------------
def test_a_password_authenticator_is_created_with_its_settings_as_fields(admin_client):
    page = admin_client.get(ADD_URL + "?auth_type=password").content.decode()
    assert 'name="options-allow_email"' in page and 'name="options-allow_username"' in page
    assert 'name="options"' not in page  # no raw JSON
    assert "Sign in with e-mail" in page
    response = admin_client.post(ADD_URL + "?auth_type=password",
                                 common("staff-password", "Staff password", **{"options-allow_username": "on"}))
    assert response.status_code == 302, field_errors(response)
    created = Authenticator.objects.get(name="staff-password")
    assert created.auth_type == "password" and created.title == "Staff password"
    assert created.options == {"allow_email": False, "allow_username": True}


def test_the_settings_form_refuses_invalid_options_with_its_own_message(admin_client):
    response = admin_client.post(ADD_URL + "?auth_type=password", common("staff-password", "Staff password"))
    assert response.status_code == 200
    assert field_errors(response) == {"__all__": ["Allow at least one identifier."]}
    assert "Allow at least one identifier." in response.content.decode()
    assert not Authenticator.objects.filter(name="staff-password").exists()


@pytest.mark.parametrize("auth_type", ["email-code", "sms-code"])
def test_a_code_authenticator_is_created_and_a_wrong_value_is_an_error_on_its_field(admin_client, auth_type):
    url = ADD_URL + f"?auth_type={auth_type}"
    page = admin_client.get(url).content.decode()
    assert 'name="options-code_ttl"' in page and 'name="options-daily_limit"' in page
    refused = admin_client.post(url, common("codes-2", "Codes", **{"options-code_ttl": "5", "options-max_attempts": "x"}))
    assert refused.status_code == 200
    errors = field_errors(refused)
    assert set(errors) == {"options-code_ttl", "options-max_attempts"}
    assert errors["options-code_ttl"] == ["Ensure this value is greater than or equal to 60."]
    # the error sits on its field: the row of that input carries it
    html = refused.content.decode()
    row = re.search(r'<div class="form-row[^"]*field-options-code_ttl[^"]*">.*?</div>\s*</div>', html, re.S)
    assert row and "greater than or equal to 60" in row.group(0)
    accepted = admin_client.post(url, common("codes-2", "Codes", **{"options-code_ttl": "300"}))
    assert accepted.status_code == 302, field_errors(accepted)
    options = Authenticator.objects.get(name="codes-2").options
    assert options["code_ttl"] == 300 and options["daily_limit"] is None


def test_the_add_page_is_prefilled_with_the_type_title_and_a_free_name(admin_client, upstream_type):
    html = admin_client.get(ADD_URL + "?auth_type=test-upstream").content.decode()
    assert re.search(r'name="title"[^>]*value="Test upstream"', html)
    assert re.search(r'name="name"[^>]*value="test-upstream"', html)
    taken = admin_client.get(ADD_URL + "?auth_type=password").content.decode()  # "password" exists
    assert not re.search(r'name="name"[^>]*value="password"', taken)


def test_the_change_page_shows_the_stored_options_and_the_type_is_fixed(admin_client, password_authenticator):
    password_authenticator.options = {"allow_email": True, "allow_username": False}
    password_authenticator.save()
    html = admin_client.get(change_url(password_authenticator)).content.decode()
    assert re.search(r'<input type="checkbox" name="options-allow_email"[^>]*checked', html)
    assert not re.search(r'<input type="checkbox" name="options-allow_username"[^>]*checked', html)
    assert 'name="auth_type"' not in html and "<code>password</code>" in html
    response = admin_client.post(change_url(password_authenticator),
                                 common("password", "Password", auth_type="email-code", **{"options-allow_username": "on"}))
    assert response.status_code == 302, field_errors(response)
    password_authenticator.refresh_from_db()
    assert password_authenticator.auth_type == "password"  # a posted type is ignored: it is fixed
    assert password_authenticator.options == {"allow_email": False, "allow_username": True}


# -- secrets ---------------------------------------------------------------------------------------------
def test_a_secret_is_required_on_the_add_page_and_never_echoed_back(admin_client, upstream_type):
    url = ADD_URL + "?auth_type=test-upstream"
    page = admin_client.get(url).content.decode()
    assert re.search(r'<input type="password" name="options-client_secret"', page)
    data = common("corp", "Corp SSO", **{"options-issuer": "http://login.corp.example", "options-client_id": "portcullis",
                                         "options-client_secret": SECRET})
    refused = admin_client.post(url, data)
    assert field_errors(refused) == {"options-issuer": ["The issuer must be https."]}  # the type's clean_issuer
    assert SECRET not in refused.content.decode()  # not even the value just typed
    missing = admin_client.post(url, {**data, "options-issuer": "https://login.corp.example", "options-client_secret": ""})
    assert field_errors(missing) == {"options-client_secret": ["This field is required."]}
    created = admin_client.post(url, {**data, "options-issuer": "https://login.corp.example"})
    assert created.status_code == 302, field_errors(created)
    assert Authenticator.objects.get(name="corp").options == {
        "issuer": "https://login.corp.example", "client_id": "portcullis", "client_secret": SECRET}


def test_a_secret_left_blank_is_kept_and_a_new_one_replaces_it(admin_client, upstream):
    page = admin_client.get(change_url(upstream)).content.decode()
    assert SECRET not in page
    assert "Leave blank to keep it" in page
    assert 'value="https://login.corp.example"' in page and 'value="portcullis"' in page
    data = common("corp", "Corp SSO", **{"options-issuer": "https://login2.corp.example", "options-client_id": "portcullis",
                                         "options-client_secret": ""})
    response = admin_client.post(change_url(upstream), data)
    assert response.status_code == 302, field_errors(response)
    upstream.refresh_from_db()
    assert upstream.options["client_secret"] == SECRET and upstream.options["issuer"] == "https://login2.corp.example"
    short = admin_client.post(change_url(upstream), {**data, "options-client_secret": "short"})
    assert field_errors(short) == {"options-client_secret": ["Ensure this value has at least 8 characters (it has 5)."]}
    assert SECRET not in short.content.decode() and 'value="short"' not in short.content.decode()
    admin_client.post(change_url(upstream), {**data, "options-client_secret": "rotated-secret-1"})
    upstream.refresh_from_db()
    assert upstream.options["client_secret"] == "rotated-secret-1"
    history = admin_client.get(change_url(upstream).replace("/change/", "/history/")).content.decode()
    assert SECRET not in history and "rotated-secret-1" not in history


# -- redirect types ---------------------------------------------------------------------------------------
def test_a_redirect_type_shows_the_redirect_uri_to_register_upstream(admin_client, upstream):
    html = admin_client.get(change_url(upstream)).content.decode()
    assert '<code id="redirect-uri">http://testserver/auth/corp/callback</code>' in html
    assert "Test connection" in html


def test_the_redirect_uri_follows_the_configured_issuer(admin_client, upstream, settings):
    settings.PORTCULLIS_ISSUER = "https://id.example.com"
    html = admin_client.get(change_url(upstream)).content.decode()
    assert '<code id="redirect-uri">https://id.example.com/auth/corp/callback</code>' in html


def test_test_connection_shows_each_check_as_a_message(admin_client, upstream):
    url = f"/admin/authenticators/authenticator/{upstream.pk}/test-connection/"
    assert admin_client.get(url)["Location"] == change_url(upstream)  # a GET tests nothing
    response = admin_client.post(url, follow=True)
    shown = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert shown == [("success", "Discovery document reachable."), ("error", "The JWKS has no usable key.")]
    assert SECRET not in response.content.decode()


def test_a_failing_test_connection_is_a_message_not_a_500(admin_client, upstream):
    upstream.options = {**upstream.options, "issuer": "https://broken.example"}
    upstream.save()
    response = admin_client.post(f"/admin/authenticators/authenticator/{upstream.pk}/test-connection/", follow=True)
    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == ["The test failed: OSError"]


def test_a_form_type_has_no_redirect_uri_nor_test_connection(admin_client, password_authenticator):
    html = admin_client.get(change_url(password_authenticator)).content.decode()
    assert "redirect-uri" not in html and "Test connection" not in html
    response = admin_client.post(f"/admin/authenticators/authenticator/{password_authenticator.pk}/test-connection/",
                                 follow=True)
    assert response.status_code == 200 and "has a connection to test" in response.content.decode()


# -- rows the admin cannot read ----------------------------------------------------------------------------
def test_a_row_of_an_unregistered_type_opens_and_keeps_its_options(admin_client):
    legacy = Authenticator.objects.create(name="legacy", auth_type="gone", title="Legacy", options={"token": "s3cret"})
    response = admin_client.get(change_url(legacy))
    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert "“gone” is not registered in this installation" in html and "s3cret" not in html
    saved = admin_client.post(change_url(legacy), common("legacy", "Legacy (old)"))
    assert saved.status_code == 302, field_errors(saved)
    legacy.refresh_from_db()
    assert legacy.title == "Legacy (old)" and legacy.options == {"token": "s3cret"} and legacy.auth_type == "gone"
    for page in ("/admin/authenticators/authenticator/", f"/admin/authenticators/authenticator/{legacy.pk}/delete/",
                 f"/admin/authenticators/authenticator/{legacy.pk}/history/",
                 f"/admin/authenticators/authenticator/{legacy.pk}/test-connection/"):
        assert admin_client.get(page).status_code < 500, page


def test_stored_options_the_type_refuses_still_open_and_are_shown_to_fix(admin_client, password_authenticator):
    password_authenticator.options = {"allow_email": "not a boolean", "allow_username": False, "extra": [1, 2]}
    password_authenticator.save()
    assert admin_client.get(change_url(password_authenticator)).status_code == 200
    password_authenticator.options = ["not", "an", "object"]
    password_authenticator.save()
    assert admin_client.get(change_url(password_authenticator)).status_code == 200
    fixed = admin_client.post(change_url(password_authenticator), common("password", "Password", **{"options-allow_email": "on"}))
    assert fixed.status_code == 302, field_errors(fixed)
    password_authenticator.refresh_from_db()
    assert password_authenticator.options == {"allow_email": True, "allow_username": False}


# -- a type that is not registered: a warning, and every face skips the row ----------------------------------
@pytest.fixture
def legacy(db) -> Authenticator:
    """An enabled row of a type nobody registers, first in order and named by the default experience."""
    from experience.models import Experience

    row = Authenticator.objects.create(name="legacy", auth_type="gone", title="Legacy", sort_order=-1,
                                       options={"token": "s3cret"})
    Experience.objects.create(authenticators=["legacy", "password", "email-code"])
    return row


def test_a_row_of_an_unregistered_type_is_a_system_check_warning(legacy):
    from django.core import checks

    found = [m for m in checks.run_checks(databases=["default"]) if m.id == "authenticators.W002"]
    assert len(found) == 1 and "'legacy'" in found[0].msg and "'gone'" in found[0].msg
    assert found[0].level == checks.WARNING
    assert not [m for m in checks.run_checks() if m.id == "authenticators.W002"]  # a database check only
    Authenticator.objects.filter(name="legacy").delete()
    assert not [m for m in checks.run_checks(databases=["default"]) if m.id == "authenticators.W002"]


def test_the_hosted_sign_in_page_skips_a_row_of_an_unregistered_type(flow, confidential_app, user, legacy, mail_code):
    from tests.helpers import authorize_params

    sign_in = flow.authorize(authorize_params(confidential_app))["Location"]
    page = flow.client.get(sign_in)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Legacy" not in html and 'name="identifier"' in html  # the first tab is the password one
    assert flow.client.get(sign_in + "?authenticator=legacy").status_code == 200
    refused = flow.client.post(sign_in, {"authenticator": "legacy", "token": "x"})
    assert refused.status_code == 400
    done = flow.client.post(sign_in, {"authenticator": "password", "identifier": "alice",
                                      "password": "correct horse battery staple"})
    assert done.status_code == 303


def test_the_experience_api_skips_a_row_of_an_unregistered_type(client, legacy, mail_code):
    config = client.get("/api/experience/config")
    assert config.status_code == 200
    body = config.json()
    assert "legacy" not in body["authenticators"] and "legacy" not in [m["name"] for m in body["methods"]]
    assert body["authenticators"][:2] == ["password", "email-code"]


def test_a_code_sent_before_its_type_was_removed_is_refused_as_a_wrong_code(client, user, mail_code, settings):
    """An ``email-code`` authenticator whose type disappears between sending and checking the code."""
    import json

    from django.core import mail

    from tests.helpers import code_in_mail

    client.get("/api/experience/config")
    headers = {"X-CSRFToken": client.cookies["csrftoken"].value}
    uid = client.post("/api/experience/", json.dumps({"event": "sign_in"}), content_type="application/json",
                      headers=headers).json()["id"]
    sent = client.post(f"/api/experience/{uid}/code", json.dumps({"email": "alice@example.com"}),
                       content_type="application/json", headers=headers)
    assert sent.status_code == 200, sent.content
    code = code_in_mail(mail.outbox[-1])
    Authenticator.objects.filter(pk=mail_code.pk).update(auth_type="gone")
    verify = client.post(f"/api/experience/{uid}/code/verify", json.dumps({"code_id": sent.json()["code_id"], "code": code}),
                         content_type="application/json", headers=headers)
    assert verify.status_code == 400 and verify.json()["key"]["code"] == "invalid_code"


def test_the_default_experience_admin_page_opens_with_a_row_of_an_unregistered_type(admin_client, legacy):
    from experience.models import Experience

    row = Experience.objects.get()
    assert admin_client.get(f"/admin/experience/experience/{row.pk}/change/").status_code == 200
    assert admin_client.get("/admin/authenticators/authenticator/").status_code == 200


@pytest.mark.parametrize(("language", "expected"), [("ru", "Выберите тип нового аутентификатора"),
                                                    ("uk", "Виберіть тип нового автентифікатора")])
def test_the_type_picker_is_translated(admin_client, language, expected):
    html = admin_client.get(ADD_URL, HTTP_ACCEPT_LANGUAGE=language).content.decode()
    assert expected in html


# -- the configuration document: what the admin stored, exported and applied back -----------------------------
def test_an_authenticator_made_in_admin_exports_its_secret_as_null_and_applying_keeps_it(admin_client, upstream_type,
                                                                                         tmp_path):
    import io
    import json

    from django.core.management import call_command

    response = admin_client.post(ADD_URL + "?auth_type=test-upstream", common("corp", "Corp SSO", **{
        "options-issuer": "https://login.corp.example", "options-client_id": "portcullis",
        "options-client_secret": SECRET}))
    assert response.status_code == 302, field_errors(response)
    out = io.StringIO()
    call_command("portcullis_config", "export", stdout=out)
    assert SECRET not in out.getvalue()
    document = json.loads(out.getvalue())
    entry = next(a for a in document["authenticators"] if a["name"] == "corp")
    assert entry["options"] == {"issuer": "https://login.corp.example", "client_id": "portcullis", "client_secret": None}

    path = tmp_path / "portcullis.json"
    path.write_text(json.dumps(document))
    out = io.StringIO()
    call_command("portcullis_config", "apply", str(path), stdout=out)
    assert "authenticator corp" not in out.getvalue()  # the same settings: no change (the experience gets pinned)
    entry["options"]["client_id"] = "portcullis-2"
    path.write_text(json.dumps(document))
    call_command("portcullis_config", "apply", str(path), stdout=io.StringIO())
    stored = Authenticator.objects.get(name="corp").options
    assert stored == {"issuer": "https://login.corp.example", "client_id": "portcullis-2", "client_secret": SECRET}
    # and the admin still shows it without the secret, ready to keep it
    page = admin_client.get(change_url(Authenticator.objects.get(name="corp"))).content.decode()
    assert SECRET not in page and 'value="portcullis-2"' in page


class ListsSettingsForm(forms.Form):
    scopes = forms.MultipleChoiceField(choices=[("openid", "openid"), ("email", "email"), ("profile", "profile")],
                                       widget=forms.CheckboxSelectMultiple, initial=["openid"])
    claims = forms.JSONField(initial=dict)


def test_list_and_object_options_round_trip_through_the_form(admin_client, upstream_type):
    registry.register("test-lists", UpstreamAuth, settings_form=ListsSettingsForm, title="Lists")
    try:
        url = ADD_URL + "?auth_type=test-lists"
        response = admin_client.post(url, {**common("lists", "Lists"), "options-scopes": ["openid", "email"],
                                           "options-claims": '{"email": "mail"}'})
        assert response.status_code == 302, field_errors(response)
        row = Authenticator.objects.get(name="lists")
        assert row.options == {"scopes": ["openid", "email"], "claims": {"email": "mail"}}
        html = unescape(admin_client.get(change_url(row)).content.decode())
        assert re.search(r'value="email"[^>]*checked', html) and not re.search(r'value="profile"[^>]*checked', html)
        assert '{"email": "mail"}' in html
        bad = admin_client.post(change_url(row), {**common("lists", "Lists"), "options-scopes": ["openid", "nope"],
                                                  "options-claims": "{not json"})
        assert set(field_errors(bad)) == {"options-scopes", "options-claims"}
    finally:
        registry.unregister("test-lists")


def test_a_staff_member_who_may_only_view_sees_the_page_without_secrets(client, django_user_model, upstream, settings):
    from django.contrib.auth.models import Permission

    settings.PORTCULLIS_STAFF_MFA_REQUIRED = False
    viewer = django_user_model.objects.create_user("viewer", "viewer@example.com", "x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_authenticator"))
    client.force_login(viewer)
    response = client.get(change_url(upstream))
    assert response.status_code == 200
    html = response.content.decode()
    assert SECRET not in html and "Corp SSO" in html
    assert "Issuer: <code>&quot;https://login.corp.example&quot;</code>" in html
    assert "Client secret: <code>set (not shown)</code>" in html
    assert client.get(ADD_URL).status_code == 403  # no type picker without the add permission
    assert client.post(f"/admin/authenticators/authenticator/{upstream.pk}/test-connection/").status_code == 403


# -- the built-in oidc type through the admin ----------------------------------------------------------------
def oidc_fields(issuer: str, **extra: str) -> dict[str, str]:
    return common("corp-oidc", "Corp", **{
        "options-preset": "", "options-issuer": issuer, "options-tenant": "common", "options-client_id": "downstream",
        "options-client_secret": "downstream-secret", "options-scopes": "openid email profile",
        "options-claims": '{"email": "email", "name": "name"}', "options-sign_up": "on",
        "options-domains": "Corp.Example, @sub.corp.example", **extra})


def test_an_oidc_authenticator_is_made_in_admin_and_its_connection_tested(admin_client, settings):
    from tests.upstream import FakeProvider

    settings.PORTCULLIS_OIDC_ALLOW_INSECURE_ISSUERS = True
    provider = FakeProvider()
    try:
        page = admin_client.get(ADD_URL + "?auth_type=oidc").content.decode()
        assert 'name="options-issuer"' in page and 'name="options-client_secret"' in page
        response = admin_client.post(ADD_URL + "?auth_type=oidc", oidc_fields(provider.issuer))
        assert response.status_code == 302, field_errors(response)
        created = Authenticator.objects.get(name="corp-oidc")
        assert created.options["issuer"] == provider.issuer and created.options["client_secret"] == "downstream-secret"
        assert created.options["domains"] == ["corp.example", "sub.corp.example"]
        assert created.options["scopes"] == ["openid", "email", "profile"]

        html = admin_client.get(change_url(created)).content.decode()
        assert '<code id="redirect-uri">http://testserver/auth/corp-oidc/callback</code>' in html
        assert "downstream-secret" not in html
        tested = admin_client.post(f"/admin/authenticators/authenticator/{created.pk}/test-connection/", follow=True)
        shown = [(m.level_tag, str(m)) for m in tested.context["messages"]]
        assert [level for level, _message in shown] == ["success", "success", "success"], shown
        assert shown[-1][1] == "Signing keys published: 1"
    finally:
        provider.stop()


@pytest.mark.parametrize(("issuer", "field"), [
    ("http://login.corp.example", "options-issuer"),  # plain http off loopback
    ("https://169.254.169.254", "options-issuer"),  # the cloud metadata address: no server-side request forgery
    ("https://10.0.0.1", "options-issuer"),
])
def test_an_oidc_issuer_the_rule_refuses_is_an_error_on_its_field(admin_client, issuer, field):
    response = admin_client.post(ADD_URL + "?auth_type=oidc", oidc_fields(issuer))
    assert response.status_code == 200
    assert list(field_errors(response)) == [field], field_errors(response)
    assert not Authenticator.objects.filter(name="corp-oidc").exists()


def test_an_oidc_preset_fills_in_the_provider(admin_client):
    response = admin_client.post(ADD_URL + "?auth_type=oidc", oidc_fields("", **{"options-preset": "google"}))
    assert response.status_code == 302, field_errors(response)
    assert Authenticator.objects.get(name="corp-oidc").options["issuer"] == "https://accounts.google.com"
