"""Per-application experiences (SPEC §5): overrides merged over the default, in the document too."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from experience import policy
from experience.configuration import patch
from experience.models import ApplicationExperience, Experience
from identity.models import ApplicationSettings
from tests.test_config_document import apply, export, refused

pytestmark = pytest.mark.django_db

SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
       b'<rect width="10" height="10" fill="#4f46e5"/></svg>')


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def upload(data: bytes = SVG, extension: str = "svg") -> str:
    """A branding image as the admin stores it (a random hex name); its URL."""
    name = default_storage.save(f"branding/{uuid.uuid4().hex}.{extension}", ContentFile(data))
    return default_storage.url(name)


def stored() -> tuple[Any, ...]:
    return (list(Experience.objects.values()), list(ApplicationExperience.objects.order_by("pk").values()),
            list(ApplicationSettings.objects.order_by("pk").values()))


def overrides(app: Any, document: dict[str, Any]) -> ApplicationExperience:
    row = ApplicationExperience(application=app.application)
    row.set_document(document)
    row.save()
    return row


# -- merging --------------------------------------------------------------------------------------------
def test_an_application_without_overrides_gets_the_default(confidential_app, password_authenticator):
    Experience.objects.create(authenticators=["password"], captcha_policy="always", display_name="Acme")

    effective = policy.resolve(confidential_app.client_id)

    assert effective.captcha == "always" and effective.branding.display_name == "Acme"
    assert effective.client_id == confidential_app.client_id


def test_overrides_merge_per_key_and_a_list_replaces(confidential_app, other_app, password_authenticator):
    Experience.objects.create(authenticators=["password"], display_name="Acme", primary_color="#4f46e5",
                              mfa_policy="optional", mfa_factors=["totp", "backup_code"], ip_deny=["10.0.0.0/8"])
    overrides(confidential_app, {"branding": {"display_name": "Acme Shop"}, "mfa": {"policy": "required"},
                                 "access_rules": {"ip_deny": ["192.0.2.0/24"]}})

    shop = policy.resolve(confidential_app.client_id)
    other = policy.resolve(other_app.client_id)

    assert shop.branding.display_name == "Acme Shop" and shop.branding.primary_color == "#4f46e5"
    assert shop.mfa.policy == "required" and shop.mfa.factors == ("totp", "backup_code")  # factors inherited
    assert shop.access.ip_deny == ("192.0.2.0/24",)  # the list replaced, not appended to
    assert other.branding.display_name == "Acme" and other.mfa.policy == "optional"
    assert other.access.ip_deny == ("10.0.0.0/8",)


def test_a_saved_override_applies_at_once(confidential_app, password_authenticator):
    assert policy.resolve(confidential_app.client_id).sign_up.enabled is True
    row = overrides(confidential_app, {"sign_up": {"enabled": False}})
    assert policy.resolve(confidential_app.client_id).sign_up.enabled is False
    row.delete()
    assert policy.resolve(confidential_app.client_id).sign_up.enabled is True


def test_the_effective_view_names_where_each_value_comes_from(confidential_app, password_authenticator):
    rows = {path: source for path, _value, source in policy.effective(confidential_app.client_id)}
    assert rows["captcha.policy"] == "built-in"
    Experience.objects.create(authenticators=["password"])
    overrides(confidential_app, {"captcha": {"policy": "always"}, "branding": {"logo_url": upload()}})

    rows = {path: (value, source) for path, value, source in policy.effective(confidential_app.client_id)}

    assert rows["captcha.policy"] == ("always", "application")
    assert rows["branding.logo_url"][1] == "application" and rows["branding.logo_url"][0].endswith(".svg")
    assert rows["mfa.policy"] == ("optional", "default")
    assert rows["authenticators"] == (["password"], "default")


def test_merge_patch_null_removes_an_override():
    stored_overrides = {"branding": {"display_name": "Shop", "primary_color": "#000000"}, "mfa": {"policy": "off"}}
    assert patch(stored_overrides, {"branding": {"display_name": None}, "mfa": None}) == \
        {"branding": {"primary_color": "#000000"}}
    assert patch(stored_overrides, {"branding": {"display_name": None, "primary_color": None}}) == \
        {"mfa": {"policy": "off"}}


# -- the document ------------------------------------------------------------------------------------------
def test_export_apply_to_an_empty_database_export_gives_the_same_document(tmp_path, confidential_app, other_app,
                                                                          password_authenticator):
    default_logo, shop_logo = upload(), upload(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "png")
    row = Experience.objects.create(authenticators=["password", "email-code"], display_name="Acme",
                                    primary_color="#4f46e5", primary_color_dark="#818cf8", custom_css="h1 { letter-spacing: .02em }",
                                    terms_url="https://acme.example/terms", privacy_url="/privacy/",
                                    support_email="help@acme.example", language="uk",
                                    email_domains_deny=["mailinator.com"], ip_allow=["203.0.113.0/24", "2001:db8::/32"],
                                    regions_deny=["T1"])
    Experience.objects.filter(pk=row.pk).update(logo=default_logo.removeprefix("/media/"))
    overrides(confidential_app, {"branding": {"display_name": "Acme Shop", "logo_url": shop_logo},
                                 "authenticators": ["email-code"], "mfa": {"policy": "required"},
                                 "access_rules": {"regions_allow": ["DE", "AT"]}})
    original = export()
    assert original["applications"][confidential_app.client_id]["experience"]["branding"] == {
        "display_name": "Acme Shop", "logo_url": shop_logo}
    assert "experience" not in original["applications"][other_app.client_id]
    assert original["experience"]["branding"]["logo_url"] == default_logo

    # Another database: the same applications and uploaded files, nothing configured.
    Experience.objects.all().delete()
    ApplicationExperience.objects.all().delete()
    ApplicationSettings.objects.all().delete()
    apply(tmp_path, original)

    assert export() == original
    assert apply(tmp_path, original).strip() == "Applied: nothing to change."
    shop = policy.resolve(confidential_app.client_id)
    assert shop.branding.display_name == "Acme Shop" and shop.branding.primary_color == "#4f46e5"
    assert [a.name for a in shop.first_factors()] == ["email-code"] and shop.mfa.required
    assert shop.access.regions_allow == ("DE", "AT") and shop.access.regions_deny == ("T1",)


def test_apply_merges_an_application_experience_and_null_inherits_again(tmp_path, confidential_app,
                                                                         password_authenticator):
    overrides(confidential_app, {"branding": {"display_name": "Shop"}, "captcha": {"policy": "always"}})

    apply(tmp_path, {"applications": {confidential_app.client_id: {"experience": {
        "branding": {"display_name": None, "primary_color": "#112233"}, "language": "ru"}}}})

    assert ApplicationExperience.objects.get().overrides == {
        "branding": {"primary_color": "#112233"}, "captcha": {"policy": "always"}, "language": "ru"}
    apply(tmp_path, {"applications": {confidential_app.client_id: {"experience": None}}})
    assert not ApplicationExperience.objects.exists()


def test_prune_removes_the_application_experiences_the_document_does_not_name(tmp_path, confidential_app,
                                                                              other_app, password_authenticator):
    overrides(confidential_app, {"captcha": {"policy": "always"}})
    overrides(other_app, {"captcha": {"policy": "off"}})

    apply(tmp_path, {"applications": {other_app.client_id: {"experience": {"captcha": {"policy": "off"}}},
                                      confidential_app.client_id: {"first_party": True}}}, "--prune")

    assert list(ApplicationExperience.objects.values_list("application__client_id", flat=True)) == [other_app.client_id]


def test_an_invalid_application_experience_changes_nothing(tmp_path, confidential_app, other_app, password_authenticator):
    overrides(other_app, {"captcha": {"policy": "off"}})
    before = stored()
    problems = refused(tmp_path, {
        "experience": {"branding": {"display_name": "Valid on its own"}},
        "applications": {
            other_app.client_id: {"experience": {"captcha": {"policy": "always"}}},  # valid: not applied either
            confidential_app.client_id: {"experience": {
                "branding": {"primary_color": "blue", "custom_css": "@import url(https://evil.example/x.css);",
                             "logo_url": "https://evil.example/logo.svg", "privacy_url": "javascript:alert(1)"},
                "authenticators": ["ghost"],
                "access_rules": {"ip_allow": ["10.0.0.1/8", "not-an-ip"], "regions_deny": ["ZZ", "de"],
                                 "email_domains_allow": ["*.", "Example.com"]},
                "mfa": {"policy": "required", "factors": ["email_code"]},
                "language": "xx",
                "unknown": 1}}}})
    prefix = f"applications.{confidential_app.client_id}.experience"
    assert sorted(line.split(": ", 1)[0] for line in problems) == sorted(f"{prefix}.{path}" for path in [
        "branding.primary_color", "branding.custom_css", "branding.logo_url", "branding.privacy_url",
        "authenticators[0]", "access_rules.ip_allow[0]", "access_rules.ip_allow[1]", "access_rules.regions_deny[0]",
        "access_rules.regions_deny[1]", "access_rules.email_domains_allow[0]", "access_rules.email_domains_allow[1]",
        "mfa.factors", "language", "unknown"]), problems
    assert any("did you mean 10.0.0.0/8?" in line for line in problems)
    assert stored() == before


def test_a_required_second_factor_is_checked_against_the_inherited_factors(tmp_path, confidential_app,
                                                                          password_authenticator):
    Experience.objects.create(authenticators=["password"], mfa_factors=["email_code"])
    problems = refused(tmp_path, {"applications": {confidential_app.client_id: {
        "experience": {"mfa": {"policy": "required"}}}}})
    assert problems[0].startswith(f"applications.{confidential_app.client_id}.experience.mfa.factors: "
                                  "a required second factor needs a factor besides email_code")


def test_prune_refuses_to_remove_an_authenticator_an_application_shows(tmp_path, confidential_app,
                                                                       password_authenticator):
    from authenticators.models import Authenticator

    Authenticator.objects.create(name="staff", auth_type="password", title="Staff", sort_order=3)
    overrides(confidential_app, {"authenticators": ["staff"]})
    document = {"authenticators": [a for a in export()["authenticators"] if a["name"] != "staff"]}

    problems = refused(tmp_path, {**document, "experience": {"authenticators": ["password"]}}, "--prune")

    assert problems[0].startswith(f"applications.{confidential_app.client_id}.experience.authenticators: "
                                  "the application's experience shows staff")
    assert Authenticator.objects.filter(name="staff").exists()
