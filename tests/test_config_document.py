"""``manage.py portcullis_config``: SPEC §5's configuration document, exported and applied."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django import forms
from django.core.management import CommandError, call_command

from authenticators.base import AuthError, BaseAuth
from authenticators.models import Authenticator
from authenticators.registry import registry
from experience import policy
from experience.models import Experience
from identity.models import ApplicationSettings

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


class VaultSettingsForm(forms.Form):
    url = forms.CharField()
    api_key = forms.CharField(min_length=8)
    retries = forms.IntegerField(min_value=0, required=False, initial=2)


class VaultAuth(BaseAuth):
    def validate(self, data: dict[str, Any]) -> Any:
        raise AuthError("invalid_credentials")


@pytest.fixture
def vault_type():
    registry.register("vault", VaultAuth, settings_form=VaultSettingsForm, title="Vault", secret_options=("api_key",))
    yield registry.get("vault")
    registry.unregister("vault")


def export() -> dict[str, Any]:
    out = io.StringIO()
    call_command("portcullis_config", "export", stdout=out)
    return json.loads(out.getvalue())


def apply(tmp_path: Path, document: Any, *flags: str) -> str:
    path = tmp_path / "portcullis.json"
    path.write_text(json.dumps(document))
    out = io.StringIO()
    call_command("portcullis_config", "apply", str(path), *flags, stdout=out)
    return out.getvalue()


def refused(tmp_path: Path, document: Any, *flags: str) -> list[str]:
    """The problems ``apply`` reports (one ``path: message`` per line) for a refused document."""
    path = tmp_path / "portcullis.json"
    path.write_text(json.dumps(document))
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was changed"):
        call_command("portcullis_config", "apply", str(path), *flags, stdout=io.StringIO(), stderr=err)
    return err.getvalue().splitlines()


def paths(problems: list[str]) -> list[str]:
    return [line.split(": ", 1)[0] for line in problems]


def state() -> tuple[Any, ...]:
    """Everything the document can change, as stored (timestamps included: a no-op saves nothing)."""
    return (list(Experience.objects.values()), list(ApplicationSettings.objects.order_by("pk").values()),
            list(Authenticator.objects.order_by("pk").values()))


def test_export_without_configuration_is_the_defaults(confidential_app, third_party_app, password_authenticator):
    document = export()
    assert set(document) == {"experience", "applications", "authenticators"}
    assert document["experience"] == {
        "branding": {"display_name": "", "logo_url": "", "logo_dark_url": "", "favicon_url": "", "primary_color": "",
                     "primary_color_dark": "", "custom_css": "", "terms_url": "", "privacy_url": "",
                     "support_email": ""},
        "language": "",
        "access_rules": {"email_domains_allow": [], "email_domains_deny": [], "ip_allow": [], "ip_deny": [],
                         "regions_allow": [], "regions_deny": []},
        "authenticators": ["password", "email-code"],  # the enabled first factors (sms-code is off)
        "sign_up": {"enabled": True, "identifiers": ["email"], "verify": True},
        "password_policy": {"min_length": 8, "blocklist": True, "similarity": True},
        "mfa": {"policy": "optional", "factors": ["totp", "backup_code", "email_code"]},
        "captcha": {"policy": "risk"},
        "sign_in_url": "",
    }
    assert document["applications"] == {
        confidential_app.client_id: {"first_party": True, "headless": False},
        third_party_app.client_id: {"first_party": False, "headless": False},
    }
    # Every authenticator, the data migrations' built-in ones included, in order.
    assert [a["name"] for a in document["authenticators"]] == \
        list(Authenticator.objects.order_by("sort_order", "name").values_list("name", flat=True))
    exported = {a["name"]: a for a in document["authenticators"]}
    assert {"password", "email-code", "sms-code", "totp", "backup_code", "email_code"} <= set(exported)
    assert exported["password"] == {"name": "password", "auth_type": "password", "title": "Password",
                                    "enabled": True, "sort_order": 0, "options": password_authenticator.options}
    # Stored as {} by the migration: exported as the type reads them, every option at its initial value.
    assert exported["email-code"]["options"] == {"code_ttl": None, "max_attempts": None, "cooldown": None,
                                                 "daily_limit": None, "notify_unknown": False}
    assert exported["sms-code"]["enabled"] is False
    assert exported["totp"]["options"] == {} and exported["totp"]["auth_type"] == "totp"


def test_an_application_without_settings_row_exports_the_defaults(confidential_app):
    ApplicationSettings.objects.all().delete()
    assert export()["applications"] == {confidential_app.client_id: {"first_party": False, "headless": False}}


def test_apply_sets_what_the_document_names_and_the_policy_follows(tmp_path, confidential_app, password_authenticator):
    policy.resolve("")  # this process holds the old default in memory
    output = apply(tmp_path, {
        "experience": {"sign_up": {"enabled": False}, "mfa": {"policy": "required", "factors": ["totp", "backup_code"]},
                       "captcha": {"policy": "always"}, "password_policy": {"min_length": 12}},
        "applications": {confidential_app.client_id: {"headless": True}},
        "authenticators": [{"name": "password", "title": "Password or e-mail", "sort_order": 3}],
    })
    assert "default experience: created" in output
    effective = policy.resolve(confidential_app.client_id)
    assert effective.sign_up.enabled is False and effective.sign_up.identifiers == ("email",)  # omitted: kept
    assert effective.mfa.required and effective.mfa.factors == ("totp", "backup_code")
    assert effective.captcha == "always" and effective.password.min_length == 12
    assert effective.password.blocklist is True
    settings = ApplicationSettings.objects.get(application=confidential_app.application)
    assert settings.headless_api is True and settings.first_party is True
    password_authenticator.refresh_from_db()
    assert (password_authenticator.title, password_authenticator.sort_order, password_authenticator.enabled) == \
        ("Password or e-mail", 3, True)


def test_apply_twice_changes_nothing_the_second_time(tmp_path, confidential_app, password_authenticator):
    document = {"experience": {"authenticators": ["password"], "sign_in_url": "/login/"},
                "applications": {confidential_app.client_id: {"first_party": True, "headless": True}},
                "authenticators": [{"name": "password", "auth_type": "password", "title": "Password",
                                    "enabled": True, "sort_order": 0, "options": {"allow_username": False,
                                                                                  "allow_email": True}}]}
    apply(tmp_path, document)
    before = state()
    assert apply(tmp_path, document).strip() == "Applied: nothing to change."
    assert state() == before
    assert apply(tmp_path, export()).strip() == "Applied: nothing to change."  # its own export too
    assert state() == before


def test_export_then_apply_reproduces_the_configuration(tmp_path, confidential_app, third_party_app, vault_type):
    Authenticator.objects.create(name="vault", auth_type="vault", title="Vault", sort_order=5, enabled=False,
                                 options={"url": "https://vault.example", "api_key": "s3cret-key", "retries": 4})
    Experience.objects.create(authenticators=["vault", "password"], sign_up_enabled=False,
                              sign_up_identifiers=["username", "phone"], mfa_policy="off", mfa_factors=[],
                              captcha_policy="off", password_min_length=10, sign_in_url="/app/sign-in")
    ApplicationSettings.objects.filter(application=third_party_app.application).update(headless_api=True)
    original = export()
    # Another database: the same applications, nothing configured (the secret is set there once).
    Experience.objects.all().delete()
    ApplicationSettings.objects.all().delete()
    Authenticator.objects.exclude(name="vault").delete()
    Authenticator.objects.filter(name="vault").update(title="Old", enabled=True, sort_order=0, options={"api_key": "s3cret-key"})
    apply(tmp_path, original)
    assert export() == original
    assert Authenticator.objects.get(name="vault").options["api_key"] == "s3cret-key"


def test_secret_options_are_exported_as_null_and_kept_when_applied_as_null(tmp_path, vault_type):
    Authenticator.objects.create(name="vault", auth_type="vault", title="Vault",
                                 options={"url": "https://vault.example", "api_key": "s3cret-key"})
    document = export()
    assert "s3cret-key" not in json.dumps(document)
    entry = next(a for a in document["authenticators"] if a["name"] == "vault")
    # retries is not stored: exported at the settings form's initial value (what a missing option means)
    assert entry["options"] == {"url": "https://vault.example", "api_key": None, "retries": 2}
    entry["options"]["url"] = "https://vault2.example"
    apply(tmp_path, document)
    assert Authenticator.objects.get(name="vault").options["api_key"] == "s3cret-key"
    assert Authenticator.objects.get(name="vault").options["url"] == "https://vault2.example"
    entry["options"]["api_key"] = "a-new-secret"  # a value replaces it
    apply(tmp_path, document)
    assert Authenticator.objects.get(name="vault").options["api_key"] == "a-new-secret"


def test_an_authenticator_of_a_type_not_registered_here_exports_no_option_value(tmp_path, password_authenticator):
    Authenticator.objects.create(name="legacy", auth_type="gone", title="Legacy", options={"token": "s3cret"})
    document = export()
    assert next(a for a in document["authenticators"] if a["name"] == "legacy")["options"] == {"token": None}
    assert "authenticator legacy" not in apply(tmp_path, document)
    assert Authenticator.objects.get(name="legacy").options == {"token": "s3cret"}
    index = [a["name"] for a in document["authenticators"]].index("legacy")
    document["authenticators"][index]["options"] = {"token": "other"}
    assert paths(refused(tmp_path, document)) == [f"authenticators[{index}].options"]
    assert paths(refused(tmp_path, {"authenticators": [{"name": "new", "auth_type": "gone"}]})) == \
        ["authenticators[0].auth_type"]


def test_a_new_authenticator_needs_its_secret(tmp_path, vault_type):
    problems = refused(tmp_path, {"authenticators": [
        {"name": "vault", "auth_type": "vault", "options": {"url": "https://v.example", "api_key": None}}]})
    assert paths(problems) == ["authenticators[0].options.api_key"]
    assert not Authenticator.objects.filter(name="vault").exists()


def test_check_validates_and_changes_nothing(tmp_path, confidential_app, password_authenticator):
    before = state()
    out = apply(tmp_path, {"experience": {"captcha": {"policy": "always"}},
                           "authenticators": [{"name": "extra", "auth_type": "password", "title": "Extra"}]}, "--check")
    assert "valid" in out and "nothing was changed" in out
    assert state() == before and policy.resolve("").captcha == "risk"
    assert paths(refused(tmp_path, {"experience": {"captcha": {"policy": "sometimes"}}}, "--check")) == \
        ["experience.captcha.policy"]


def test_an_invalid_document_changes_nothing_and_names_every_problem(tmp_path, confidential_app, password_authenticator):
    before = state()
    document = {
        "experience": {
            "authenticators": ["password", "nope", "password"],
            "sign_up": {"enabled": "yes", "identifiers": ["email", "fax"]},
            "password_policy": {"min_length": 6, "blocklist": True},
            "mfa": {"policy": "required", "factors": ["email_code"]},
            "captcha": {"policy": "sometimes"},
            "sign_in_url": "https://evil.example/login",
            "branding": {"display_name": "Acme", "primary_color": "red", "custom_css": "</style><script>",
                         "logo_url": "https://evil.example/logo.svg"},
            "access_rules": {"ip_allow": ["10.0.0.1/8"], "regions_deny": ["de"], "email_domains_deny": ["not a domain"]},
            "language": "fr",
            "colour": "red",
        },
        "applications": {
            confidential_app.client_id: {"first_party": 1, "experience": {"mfa": {"policy": "sometimes"},
                                                                          "branding": {"terms_url": "javascript:x"}}},
            "no-such-client": {"first_party": True},
        },
        # The last part: every part before it is valid on its own and would be applied otherwise.
        "authenticators": [
            {"name": "password", "title": "Password!"},
            {"name": "code", "auth_type": "carrier-pigeon"},
            {"name": "password", "auth_type": "password"},
            {"name": "bad name!", "auth_type": "password"},
            {"name": "strict", "auth_type": "password", "options": {"allow_email": False, "allow_username": False,
                                                                  "colour": "red"}},
            {"name": "ordered", "auth_type": "password", "sort_order": "first", "enabled": None, "secret": 1},
        ],
        "extra": True,
    }
    problems = refused(tmp_path, document)
    assert sorted(paths(problems)) == sorted([
        "extra",
        "experience.authenticators[1]", "experience.authenticators[2]",
        "experience.sign_up.enabled", "experience.sign_up.identifiers[1]",
        "experience.password_policy.min_length",
        "experience.mfa.factors",
        "experience.captcha.policy",
        "experience.sign_in_url",
        "experience.branding.primary_color", "experience.branding.custom_css", "experience.branding.logo_url",
        "experience.access_rules.ip_allow[0]", "experience.access_rules.regions_deny[0]",
        "experience.access_rules.email_domains_deny[0]", "experience.language", "experience.colour",
        f"applications.{confidential_app.client_id}.first_party",
        f"applications.{confidential_app.client_id}.experience.mfa.policy",
        f"applications.{confidential_app.client_id}.experience.branding.terms_url",
        "applications.no-such-client",
        "authenticators[1].auth_type", "authenticators[2].name", "authenticators[3].name",
        "authenticators[4].options", "authenticators[4].options.colour",
        "authenticators[5].sort_order", "authenticators[5].enabled", "authenticators[5].secret",
    ]), problems
    assert state() == before
    assert any("must be one of off, risk, always" in line for line in problems)


def test_an_error_only_in_the_last_part_changes_nothing(tmp_path, confidential_app, password_authenticator):
    before = state()
    problems = refused(tmp_path, {
        "experience": {"sign_up": {"enabled": False}},
        "applications": {confidential_app.client_id: {"headless": True}},
        "authenticators": [{"name": "password", "title": "New title"}, {"name": "x", "auth_type": "nope"}],
    })
    assert paths(problems) == ["authenticators[1].auth_type"]
    assert state() == before and policy.resolve("").sign_up.enabled is True


def test_wrong_shapes_are_problems_not_crashes(tmp_path, password_authenticator):
    assert paths(refused(tmp_path, [])) == ["$"]
    assert sorted(paths(refused(tmp_path, {"experience": [], "applications": [], "authenticators": {}}))) == \
        ["applications", "authenticators", "experience"]
    assert sorted(paths(refused(tmp_path, {"experience": {"sign_up": None, "mfa": {"factors": "totp"},
                                                          "password_policy": {"min_length": True},
                                                          "authenticators": [], "sign_in_url": 5},
                                           "authenticators": [None, {"title": "x"}]}))) == \
        ["authenticators[0]", "authenticators[1].name", "experience.authenticators", "experience.mfa.factors",
         "experience.password_policy.min_length", "experience.sign_in_url", "experience.sign_up"]


@pytest.mark.parametrize("url", ["//evil.example/x", "/a b", "/x?next=y", "relative", "/\\evil", "javascript:alert(1)"])
def test_sign_in_url_must_be_a_path_on_this_site(tmp_path, password_authenticator, url):
    assert paths(refused(tmp_path, {"experience": {"sign_in_url": url}})) == ["experience.sign_in_url"]


def test_the_experience_may_name_an_authenticator_the_same_document_creates(tmp_path, password_authenticator):
    apply(tmp_path, {"experience": {"authenticators": ["staff", "password"]},
                     "authenticators": [{"name": "staff", "auth_type": "password", "title": "Staff"}]})
    assert policy.resolve("").authenticators == ("staff", "password")
    assert Authenticator.objects.get(name="staff").options == {"allow_email": True, "allow_username": True}


def test_prune_removes_the_authenticators_the_document_does_not_name(tmp_path, password_authenticator, vault_type):
    Authenticator.objects.create(name="vault", auth_type="vault", title="Vault", options={"url": "u", "api_key": "k" * 8})
    Authenticator.objects.create(name="old", auth_type="password", title="Old")
    document = {"authenticators": [{"name": "password"}]}
    before = set(Authenticator.objects.values_list("name", flat=True))
    assert {"vault", "old", "email-code", "totp"} <= before  # the migrations' built-in ones too
    apply(tmp_path, document)
    assert set(Authenticator.objects.values_list("name", flat=True)) == before  # without --prune, all stay
    output = apply(tmp_path, document, "--prune")
    assert sorted(Authenticator.objects.values_list("name", flat=True)) == ["password"]
    assert "authenticator old: removed" in output and "authenticator vault: removed" in output


def test_prune_refuses_to_remove_an_authenticator_the_experience_shows(tmp_path, password_authenticator):
    Authenticator.objects.create(name="old", auth_type="password", title="Old")
    Experience.objects.create(authenticators=["old", "password"])
    assert paths(refused(tmp_path, {"authenticators": [{"name": "password"}]}, "--prune")) == \
        ["experience.authenticators"]
    assert Authenticator.objects.filter(name="old").exists()
    apply(tmp_path, {"experience": {"authenticators": ["password"]}, "authenticators": [{"name": "password"}]}, "--prune")
    assert not Authenticator.objects.filter(name="old").exists()


def test_a_second_factor_is_not_a_sign_in_method_of_the_experience(tmp_path, password_authenticator):
    problems = refused(tmp_path, {"experience": {"authenticators": ["password", "backup_code", "totp"]}})
    assert paths(problems) == ["experience.authenticators[1]", "experience.authenticators[2]"]
    assert '"backup_code" is a second factor' in problems[0] and "mfa.factors" in problems[0]
    # The same for a second factor the document itself creates.
    problems = refused(tmp_path, {"experience": {"authenticators": ["password", "app"]},
                                  "authenticators": [{"name": "app", "auth_type": "totp", "title": "App"}]})
    assert paths(problems) == ["experience.authenticators[1]"]
    assert not Experience.objects.exists() and not Authenticator.objects.filter(name="app").exists()


def test_options_stored_as_empty_merge_onto_what_the_type_reads(tmp_path, password_authenticator):
    """A row stored with ``{}`` (as the data migrations store them) reads as the form's initial values:
    a document that sets one option leaves the others at those values, and the same values are no change."""
    Authenticator.objects.create(name="plain", auth_type="password", title="Plain", options={})
    assert "authenticator plain" not in apply(tmp_path, {"authenticators": [
        {"name": "plain", "options": {"allow_email": True, "allow_username": True}}]})
    assert Authenticator.objects.get(name="plain").options == {}  # nothing rewritten
    assert "authenticator plain: changed options" in apply(tmp_path, {"authenticators": [
        {"name": "plain", "options": {"allow_email": False}}]})
    assert Authenticator.objects.get(name="plain").options == {"allow_email": False, "allow_username": True}


def test_a_fresh_export_of_the_built_in_authenticators_applies_as_no_change(tmp_path, password_authenticator):
    before = state()
    document = {"authenticators": export()["authenticators"]}  # as the migrations left them
    assert {a["auth_type"] for a in document["authenticators"]} >= \
        {"password", "email-code", "sms-code", "totp", "backup_code", "email_code"}
    assert apply(tmp_path, document).strip() == "Applied: nothing to change."
    assert state() == before


def test_a_type_change_is_refused(tmp_path, password_authenticator, vault_type):
    assert paths(refused(tmp_path, {"authenticators": [{"name": "password", "auth_type": "vault"}]})) == \
        ["authenticators[0].auth_type"]


def test_apply_reads_standard_input(monkeypatch, password_authenticator):
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"experience": {"captcha": {"policy": "off"}}})))
    call_command("portcullis_config", "apply", "-", stdout=io.StringIO())
    assert policy.resolve("").captcha == "off"


def test_unreadable_input_is_a_clear_error(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CommandError, match="not JSON"):
        call_command("portcullis_config", "apply", str(tmp_path / "bad.json"))
    with pytest.raises(CommandError, match="No such file"):
        call_command("portcullis_config", "apply", str(tmp_path / "missing.json"))


def run(database: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "DEBUG": "1"}
    env.pop("REDIS_URL", None)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.django_db(transaction=True)
def test_the_command_moves_a_configuration_to_another_database(tmp_path):
    """Two real databases and processes: exported from one, applied to the other, the same document."""
    source, target = tmp_path / "source.sqlite3", tmp_path / "target.sqlite3"
    for database in (source, target):
        assert run(database, "migrate", "-v0").returncode == 0
    configured = run(source, "portcullis_config", "apply", "-", stdin=json.dumps({
        "experience": {"authenticators": ["staff", "password"], "sign_up": {"enabled": False},
                       "mfa": {"policy": "required", "factors": ["totp"]}},
        "authenticators": [{"name": "staff", "auth_type": "password", "title": "Staff", "sort_order": 1,
                            "options": {"allow_email": False, "allow_username": True}}]}))
    assert configured.returncode == 0, configured.stderr
    exported = run(source, "portcullis_config", "export")
    assert exported.returncode == 0, exported.stderr
    bad = run(target, "portcullis_config", "apply", "-", stdin=json.dumps({"experience": {"mfa": {"policy": "maybe"}}}))
    assert bad.returncode != 0 and "experience.mfa.policy: must be one of off, optional, required" in bad.stderr
    applied = run(target, "portcullis_config", "apply", "-", stdin=exported.stdout)
    assert applied.returncode == 0, applied.stderr
    assert json.loads(run(target, "portcullis_config", "export").stdout) == json.loads(exported.stdout)
    again = run(target, "portcullis_config", "apply", "-", stdin=exported.stdout)
    assert again.stdout.strip() == "Applied: nothing to change."
