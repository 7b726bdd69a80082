"""The Django admin signs in through the hosted sign-in (experience.admin_sign_in): staff meet the
same limits, captcha and second factor; PORTCULLIS_STAFF_MFA_REQUIRED makes MFA required for staff."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core.checks import run_checks
from django.test import Client, RequestFactory

from authenticators.models import Authenticator
from experience import interaction as engine
from experience.gates import RequirementMissing
from experience.policy import MfaPolicy, Policy
from tests.helpers import PASSWORD, form_errors

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(user: Any) -> Any:
    user.is_staff = True
    user.is_superuser = True
    user.save()
    return user


def test_the_admin_login_page_sends_to_the_hosted_sign_in(client: Client) -> None:
    admin = client.get("/admin/")
    assert admin.status_code == 302 and admin["Location"] == "/admin/login/?next=/admin/"
    login = client.get(admin["Location"])
    assert login.status_code == 302
    assert login["Location"] == "/sign-in/?next=%2Fadmin%2F"
    assert client.get("/admin/login/")["Location"] == "/sign-in/?next=%2Fadmin%2F"
    deep = client.get("/admin/login/?next=/admin/auth/user/")
    assert deep["Location"] == "/sign-in/?next=%2Fadmin%2Fauth%2Fuser%2F"


def test_the_admins_own_password_form_is_gone(client: Client, staff: Any) -> None:
    """A POST of username and password to /admin/login/ signs nobody in (no second path around
    the limits, the captcha and the second factor)."""
    response = client.post("/admin/login/", {"username": "alice", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code in (302, 405)
    assert client.get("/admin/").status_code == 302


def test_staff_sign_in_on_the_hosted_page_and_reach_the_admin(client: Client, staff: Any, settings: Any) -> None:
    settings.PORTCULLIS_STAFF_MFA_REQUIRED = False
    start = client.get(client.get("/admin/login/?next=/admin/")["Location"])
    assert start.status_code == 302
    done = client.post(start["Location"], {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert done.status_code == 303 and done["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/login/")["Location"] == "/admin/"


def test_staff_get_the_same_captcha_and_lockout(client: Client, staff: Any) -> None:
    url = client.get(client.get("/admin/login/")["Location"])["Location"]
    for _ in range(3):
        client.post(url, {"identifier": "alice", "password": "wrong", "authenticator": "password"})
    refused = client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert form_errors(refused.content.decode()) == ["Solve the captcha to continue."]


def test_staff_without_a_second_factor_are_not_signed_in_when_staff_mfa_is_required(client: Client, staff: Any) -> None:
    """The default: the right password alone does not open the admin."""
    url = client.get(client.get("/admin/login/")["Location"])["Location"]
    response = client.post(url, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code in (303, 400)
    if response.status_code == 303:  # the enrolment page (part mfa) takes over
        assert "/admin/" not in response["Location"]
    else:
        assert form_errors(response.content.decode()) == ["Set up a second factor to continue."]
    assert client.get("/admin/").status_code == 302


def request_for() -> Any:
    request = RequestFactory().post("/sign-in/x/")
    request.session = SessionStore()
    request.user = AnonymousUser()
    return request


@pytest.mark.parametrize("mfa", ["off", "optional"])
def test_staff_mfa_is_required_whatever_the_customers_policy(staff: Any, monkeypatch: Any, settings: Any, mfa: str) -> None:
    monkeypatch.setattr("experience.policy.resolve", lambda client_id: Policy(client_id=client_id, mfa=MfaPolicy(policy=mfa)))
    request = request_for()
    interaction = engine.start(request)
    with pytest.raises(RequirementMissing) as missing:
        engine.sign_in(request, interaction, Authenticator.objects.get(name="password"),
                       {"identifier": "alice", "password": PASSWORD})
    assert missing.value.gate == "mfa_enrolment_required"
    settings.PORTCULLIS_STAFF_MFA_REQUIRED = False
    assert engine.submit(request, interaction).redirect_to == "/"


def test_customers_are_not_affected_by_staff_mfa(user: Any) -> None:
    request = request_for()
    interaction = engine.start(request)
    completed = engine.sign_in(request, interaction, Authenticator.objects.get(name="password"),
                               {"identifier": "alice", "password": PASSWORD})
    assert completed.redirect_to == "/"


def test_a_signed_in_user_without_admin_access_is_told_so_without_a_loop(client: Client, user: Any) -> None:
    client.force_login(user)
    admin = client.get("/admin/")
    assert admin.status_code == 302
    page = client.get(admin["Location"])
    assert page.status_code == 403
    html = page.content.decode()
    assert "You are signed in as alice, which may not use the administration." in html
    assert 'action="/sign-in/switch-account/"' in html
    switched = client.post("/sign-in/switch-account/", {"next": "/admin/"})
    assert switched.status_code == 303 and switched["Location"] == "/sign-in/?next=%2Fadmin%2F"
    assert client.get("/admin/")["Location"] == "/admin/login/?next=/admin/"
    assert client.get("/admin/login/?next=/admin/").status_code == 302  # signed out: to the sign-in page


def test_check_deploy_warns_when_staff_mfa_is_off(settings: Any) -> None:
    assert "experience.W011" not in {m.id for m in run_checks(include_deployment_checks=True)}
    settings.PORTCULLIS_STAFF_MFA_REQUIRED = False
    assert "experience.W011" in {m.id for m in run_checks(include_deployment_checks=True)}
    assert "experience.W011" not in {m.id for m in run_checks()}
