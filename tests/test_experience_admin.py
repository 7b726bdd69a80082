"""The default sign-in experience, edited in Django admin, and how fast every face sees the change."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest
from django.core.cache import cache

from authenticators.models import Authenticator
from experience import policy
from experience.models import Experience
from tests.helpers import authorize_params, sign_in_url_from

pytestmark = pytest.mark.django_db
ADD_URL = "/admin/experience/experience/add/"
LIST_URL = "/admin/experience/experience/"


def form_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "authenticators": "password", "sign_up_enabled": "on", "sign_up_identifiers": ["email"], "sign_up_verify": "on",
        "password_min_length": "8", "password_blocklist": "on", "password_similarity": "on", "mfa_policy": "optional",
        "mfa_factors": ["totp", "backup_code", "email_code"], "captcha_policy": "risk", "sign_in_url": "",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def field_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200, response
    form = response.context["adminform"].form
    return {name: [str(message) for message in messages] for name, messages in form.errors.items()}


def effective_on_page(html: str) -> dict[str, Any]:
    match = re.search(r'<pre class="readonly">(.*?)</pre>', html, re.S)
    assert match, html
    return json.loads(unescape(match.group(1)))


def tab_names(html: str) -> list[str]:
    return re.findall(r'<a href="\?authenticator=([^"]+)"', html)


def test_the_list_leads_to_the_one_default_experience(admin_client, password_authenticator):
    assert admin_client.get(LIST_URL)["Location"] == ADD_URL
    add_page = admin_client.get(ADD_URL).content.decode()
    # The list the sign-in page shows now: the enabled first factors (the built-in second factors are
    # mfa_factors' choice, sms-code is disabled).
    assert 'value="password, email-code"' in add_page
    assert "Available: password (Password), email-code (E-mail code), sms-code (SMS code, disabled)." in add_page
    assert "Names of the authenticators shown on the sign-in page, in display order" in add_page
    assert "Available: password (Password)" in add_page
    assert "Required: users without a second factor enrol during sign-in." in add_page
    assert effective_on_page(add_page)["captcha"] == {"policy": "risk"}
    assert admin_client.post(ADD_URL, form_data()).status_code == 302
    row = Experience.objects.get()
    assert row.key == "default" and row.authenticators == ["password"]
    assert admin_client.get(LIST_URL)["Location"] == f"/admin/experience/experience/{row.pk}/change/"
    assert admin_client.get(ADD_URL).status_code == 403  # one default experience


def test_a_change_in_admin_applies_at_once(admin_client, flow, confidential_app, user):
    """Sign-up off, captcha always, MFA required, the tabs' order: the policy and the sign-in page follow."""
    Authenticator.objects.create(name="staff", auth_type="password", title="Staff password", sort_order=9)
    url = sign_in_url_from(flow.authorize(authorize_params(confidential_app)))
    assert tab_names(flow.client.get(url).content.decode()) == ["password", "staff", "email-code"]  # sort order
    before = policy.policy_for(confidential_app.client_id)  # warm: this process remembers the default
    assert before.sign_up.enabled and before.captcha == "risk"

    response = admin_client.post(ADD_URL, form_data(authenticators="staff, password", sign_up_enabled=None,
                                                     captcha_policy="always", mfa_policy="required",
                                                     mfa_factors=["totp", "backup_code"], password_min_length="12"))
    assert response.status_code == 302, field_errors(response)
    now = policy.policy_for(confidential_app.client_id)
    assert now.sign_up.enabled is False and now.captcha == "always" and now.mfa.required
    assert now.mfa.factors == ("totp", "backup_code") and now.password.min_length == 12
    assert [a.name for a in now.first_factors()] == ["staff", "password"]
    page = flow.client.get(sign_in_url_from(flow.authorize(authorize_params(confidential_app)))).content.decode()
    assert tab_names(page) == ["staff", "password"]
    assert 'aria-current="page">Staff password<' in page  # the first one is the open tab

    row = Experience.objects.get()
    change_page = admin_client.get(f"/admin/experience/experience/{row.pk}/change/").content.decode()
    effective = effective_on_page(change_page)
    assert effective["authenticators"] == ["staff", "password"]
    assert effective["sign_up"]["enabled"] is False and effective["mfa"]["policy"] == "required"

    response = admin_client.post(f"/admin/experience/experience/{row.pk}/change/", form_data(authenticators="password"))
    assert response.status_code == 302, field_errors(response)
    assert tab_names(flow.client.get(sign_in_url_from(flow.authorize(authorize_params(confidential_app)))).content.decode()) == []
    assert policy.resolve("").sign_up.enabled is True

    admin_client.post(f"/admin/experience/experience/{row.pk}/delete/", {"post": "yes"})
    assert not Experience.objects.exists()
    assert policy.resolve("") == policy.Policy()  # no row: the built-in defaults


def test_a_disabled_authenticator_listed_stays_hidden(admin_client, flow, confidential_app, user):
    Authenticator.objects.create(name="staff", auth_type="password", title="Staff", enabled=False)
    assert admin_client.post(ADD_URL, form_data(authenticators="staff,password")).status_code == 302
    assert [a.name for a in policy.resolve("").first_factors()] == ["password"]
    # methods: the first factors, then the second factors mfa.factors allows (never listed themselves)
    assert [a.name for a in policy.resolve("").methods()] == ["password", "totp", "backup_code", "email_code"]


def test_a_second_factor_stored_in_the_list_is_never_a_sign_in_method(password_authenticator):
    """A list saved before the rule (or written around it): the second factor is not a first factor,
    and methods names it once, among the second factors, only while mfa.factors allows it."""
    Experience.objects.create(authenticators=["totp", "password"], mfa_factors=["backup_code"])
    effective = policy.resolve("")
    assert [a.name for a in effective.first_factors()] == ["password"]
    assert [a.name for a in effective.methods()] == ["password", "backup_code"]
    assert policy.describe(effective)["authenticators"] == ["password"]


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"authenticators": ""}, "authenticators", "This field is required."),
    ({"authenticators": "password, ghost"}, "authenticators", 'no authenticator is named "ghost"'),
    ({"authenticators": "password password"}, "authenticators", '"password" is listed twice'),
    ({"authenticators": "password, totp"}, "authenticators",
     '"totp" is a second factor: it cannot sign in on its own (list sign-in methods here; second factors are '
     'chosen by mfa.factors)'),
    ({"password_min_length": "6"}, "password_min_length", "must be between 8 and 128, not 6"),
    ({"sign_up_identifiers": []}, "sign_up_identifiers", "must name at least one"),
    ({"sign_in_url": "https://evil.example/login"}, "sign_in_url", "must be a path on this site, starting with a single /"),
    ({"sign_in_url": "//evil.example"}, "sign_in_url", "must be a path on this site, starting with a single /"),
    ({"mfa_policy": "required", "mfa_factors": ["email_code"]}, "mfa_factors",
     "a required second factor needs a factor besides email_code (totp, backup_code or sms_code)"),
    ({"mfa_policy": "sometimes"}, "mfa_policy", "Select a valid choice. sometimes is not one of the available choices."),
    ({"captcha_policy": "never"}, "captcha_policy", "Select a valid choice. never is not one of the available choices."),
    ({"mfa_factors": ["totp", "carrier_pigeon"]}, "mfa_factors",
     "Select a valid choice. carrier_pigeon is not one of the available choices."),
])
def test_admin_refuses_values_outside_the_rules(admin_client, password_authenticator, overrides, field, message):
    policy.resolve("")
    response = admin_client.post(ADD_URL, form_data(**overrides))
    assert field_errors(response) == {field: [message]}
    assert not Experience.objects.exists() and policy.resolve("") == policy.Policy()


def test_a_warm_process_asks_nothing_of_the_database(password_authenticator, django_assert_num_queries):
    Experience.objects.create(authenticators=["password"], captcha_policy="off")
    assert policy.resolve("").captcha == "off"
    assert policy.resolve("app").captcha == "off"  # an application met once: its overrides are remembered
    with django_assert_num_queries(0):
        for _ in range(50):
            assert policy.resolve("app").captcha == "off"


def test_another_process_sees_a_change_once_the_shared_version_moves(password_authenticator, monkeypatch):
    """A save in another worker moves the version in the shared cache: this process reads the row again
    within VERSION_CHECK_SECONDS (here: at once, the clock moved on)."""
    row = Experience.objects.create(authenticators=["password"], captcha_policy="off")
    assert policy.resolve("").captcha == "off"
    Experience.objects.filter(pk=row.pk).update(captcha_policy="always")  # the other worker's write (no signal here)
    assert policy.resolve("").captcha == "off"  # remembered: no query per request
    monkeypatch.setattr(policy, "_checked_at", policy._checked_at - policy.VERSION_CHECK_SECONDS - 1)
    assert policy.resolve("").captcha == "off"  # the version did not move: still the memory
    cache.set(policy.VERSION_KEY, "moved by the other worker", None)
    monkeypatch.setattr(policy, "_checked_at", policy._checked_at - policy.VERSION_CHECK_SECONDS - 1)
    assert policy.resolve("").captcha == "always"


def test_a_save_moves_the_shared_version_again_when_it_commits(password_authenticator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        Experience.objects.create(authenticators=["password"])
    moved = cache.get(policy.VERSION_KEY)
    assert moved is not None and len(callbacks) == 1
    callbacks[0]()
    assert cache.get(policy.VERSION_KEY) != moved  # a worker that read the row before the commit reads it again
