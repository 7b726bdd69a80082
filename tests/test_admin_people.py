"""Admin for people (the user's page) and the audit-event admin: each action is performed through the
admin as a staff member would, and its effect checked where the user (or their application) notices
it: a browser that signed in for real is signed out, a revoked refresh token no longer refreshes, a
removed second factor is no longer asked for. Permission, CSRF and bad input are refused cleanly."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice
from oauth2_provider.models import get_grant_model, get_refresh_token_model

from authenticators.models import BackupCode, SecondFactorState
from authenticators.types import backup_code
from experience.models import AuditEvent
from identity.models import Consent, UserSession
from tests.helpers import (
    PASSWORD,
    Flow,
    authorize_params,
    error_of,
    follow_to_code,
    pkce_pair,
    refresh,
    sign_in_url_from,
    tokens_for,
    totp_now,
    userinfo_status,
)

pytestmark = pytest.mark.django_db
RefreshToken = get_refresh_token_model()
SIGNED_IN_PAGE = "/account/connected-apps/"  # answers 200 to a signed-in browser, else sends it to sign in


def people_url(user: Any, action: str, target: Any = "") -> str:
    return f"/admin/auth/user/{user.pk}/people/{action}/" + (f"{target}/" if target != "" else "")


def signed_in(browser: Client) -> bool:
    response = browser.get(SIGNED_IN_PAGE)
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


def browser_with_tokens(app: Any) -> tuple[Client, dict[str, Any]]:
    """The user's own browser: signs in for real on the hosted page, and the app gets tokens."""
    browser = Client()
    return browser, tokens_for(Flow(browser), app)


def password_step(browser: Client, app: Any, **extra: str) -> Any:
    verifier, challenge = pkce_pair()
    sign_in = sign_in_url_from(browser.get("/oauth/authorize", authorize_params(app, challenge, **extra)))
    response = browser.post(sign_in, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 303, response.content
    return response


def sign_in_with_totp(browser: Client, app: Any, **extra: str) -> dict[str, Any]:
    """Password, then the authenticator app's code: the tokens."""
    verifier, challenge = pkce_pair()
    params = authorize_params(app, challenge, **extra)
    sign_in = sign_in_url_from(browser.get("/oauth/authorize", params))
    response = browser.post(sign_in, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert asks_second_factor(response), response["Location"]
    response = browser.post(f"{response['Location']}?authenticator=totp",
                            {"authenticator": "totp", "action": "verify", "code": totp_now()})
    code = follow_to_code(browser, response)
    answer = Flow(browser).token(app, code, params, code_verifier=verifier)
    assert answer.status_code == 200, answer.content
    return answer.json()


def asks_second_factor(response: Any) -> bool:
    return bool(re.search(r"/sign-in/[^/]+/second-factor/$", response["Location"]))


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    """A staff member with no permission on users."""
    return django_user_model.objects.create_user("support", "support@example.com", PASSWORD, is_staff=True)


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client


# -- the user's page ------------------------------------------------------------------------------------
def test_the_users_page_shows_what_they_hold_without_any_secret(admin_client, totp_user, confidential_app,
                                                                third_party_app):
    browser = Client()
    tokens = sign_in_with_totp(browser, confidential_app)
    Consent.objects.create(user=totp_user, application=third_party_app.application, scopes="openid")
    backup_code.replace_codes(totp_user)
    page = admin_client.get(f"/admin/auth/user/{totp_user.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    for heading in ("Browser sessions", "Active refresh tokens", "Granted applications", "Authenticator apps",
                    "Backup codes", "Linked authenticators", "Sign out everywhere", "Reset MFA", "Audit events"):
        assert heading in html, heading
    session = UserSession.objects.get(user=totp_user)
    assert session.fingerprint in html and session.session_key not in html
    assert browser.cookies["sessionid"].value not in html
    assert tokens["refresh_token"] not in html and tokens["access_token"] not in html
    assert people_url(totp_user, "revoke-refresh-token", RefreshToken.objects.get(user=totp_user).pk) in html
    assert people_url(totp_user, "remove-totp", TOTPDevice.objects.get(user=totp_user).pk) in html


def test_sign_out_everywhere_signs_the_browser_out_and_revokes_its_tokens(admin_client, user, confidential_app):
    browser, tokens = browser_with_tokens(confidential_app)
    assert signed_in(browser) and UserSession.objects.filter(user=user).count() == 1
    code, params = Flow(browser).code_for(confidential_app)  # a pending authorization code too
    confirm = admin_client.get(people_url(user, "sign-out-everywhere"))
    assert confirm.status_code == 200 and "Every browser session of this user ends" in confirm.content.decode()
    assert signed_in(browser)  # the confirmation page changes nothing

    done = admin_client.post(people_url(user, "sign-out-everywhere"))
    assert done.status_code == 302 and done["Location"] == f"/admin/auth/user/{user.pk}/change/"
    assert not signed_in(browser)
    answer = refresh(Client(), confidential_app, tokens["refresh_token"])
    assert answer.status_code == 400 and error_of(answer) == "invalid_grant"
    assert userinfo_status(Client(), tokens["access_token"]) == 401
    assert not get_grant_model().objects.filter(user=user).exists()
    assert error_of(Flow(Client()).token(confidential_app, code, params)) == "invalid_grant"
    assert not UserSession.objects.filter(user=user).exists()
    event = AuditEvent.objects.get(kind=AuditEvent.SIGNED_OUT_EVERYWHERE)
    assert event.user == user and event.reason == "admin"
    assert LogEntry.objects.filter(object_id=str(user.pk), change_message__contains="Signed alice out everywhere")


def test_a_session_whose_key_changed_after_sign_in_is_still_ended(admin_client, totp_user, confidential_app):
    """Signed in, the user starts signing in again: the key changes after the password (SECURITY.md),
    and they stop at the second factor. That new key is the one recorded, and it is ended."""
    browser = Client()
    sign_in_with_totp(browser, confidential_app)
    assert signed_in(browser)
    before = browser.cookies["sessionid"].value
    again = password_step(browser, confidential_app, prompt="login")  # signing in again, then abandoned at the second factor
    assert asks_second_factor(again)
    after = browser.cookies["sessionid"].value
    assert after != before and UserSession.objects.get(user=totp_user).session_key == after
    assert signed_in(browser)

    admin_client.post(people_url(totp_user, "sign-out-everywhere"))
    assert not signed_in(browser)


def test_ending_one_session_signs_out_that_browser_only(admin_client, user, confidential_app):
    first, _ = browser_with_tokens(confidential_app)
    second, tokens = browser_with_tokens(confidential_app)
    row = UserSession.objects.get(session_key=first.cookies["sessionid"].value)
    assert admin_client.post(people_url(user, "end-session", row.pk)).status_code == 302
    assert not signed_in(first) and signed_in(second)
    assert refresh(Client(), confidential_app, tokens["refresh_token"]).status_code == 200
    assert AuditEvent.objects.filter(kind=AuditEvent.SESSION_ENDED, user=user).count() == 1


def test_signing_out_forgets_the_session(user, confidential_app):
    browser, tokens = browser_with_tokens(confidential_app)
    assert UserSession.objects.filter(user=user).exists()
    browser.post("/oauth/logout", {"id_token_hint": tokens["id_token"]})
    assert not signed_in(browser) and not UserSession.objects.filter(user=user).exists()


def test_revoking_one_refresh_token_stops_it_and_only_it(admin_client, user, confidential_app, other_app):
    browser, tokens = browser_with_tokens(confidential_app)
    other = tokens_for(Flow(browser), other_app)
    token = RefreshToken.objects.get(application=confidential_app.application, revoked__isnull=True)
    confirm = admin_client.get(people_url(user, "revoke-refresh-token", token.pk))
    assert confirm.status_code == 200 and "Relying party" in confirm.content.decode()
    assert admin_client.post(people_url(user, "revoke-refresh-token", token.pk)).status_code == 302

    answer = refresh(Client(), confidential_app, tokens["refresh_token"])
    assert answer.status_code == 400 and error_of(answer) == "invalid_grant"
    assert userinfo_status(Client(), tokens["access_token"]) == 401
    assert refresh(Client(), other_app, other["refresh_token"]).status_code == 200
    assert signed_in(browser)
    event = AuditEvent.objects.get(kind=AuditEvent.TOKEN_REVOKED)
    assert event.client_id == confidential_app.client_id and event.user == user
    # revoked, it leaves the list; asking again is a 404, not a second revocation
    page = admin_client.get(f"/admin/auth/user/{user.pk}/change/").content.decode()
    assert people_url(user, "revoke-refresh-token", token.pk) not in page
    assert admin_client.post(people_url(user, "revoke-refresh-token", token.pk)).status_code == 404


def test_revoking_a_consent_ends_that_applications_tokens(admin_client, user, third_party_app, confidential_app):
    consent = Consent.objects.create(user=user, application=third_party_app.application, scopes="openid profile")
    browser, tokens = browser_with_tokens(confidential_app)
    assert admin_client.post(people_url(user, "revoke-consent", consent.pk)).status_code == 302
    assert not Consent.objects.filter(pk=consent.pk).exists()
    assert refresh(Client(), confidential_app, tokens["refresh_token"]).status_code == 200  # another application
    assert AuditEvent.objects.get(kind=AuditEvent.CONSENT_REVOKED).client_id == third_party_app.client_id


# -- second factors ---------------------------------------------------------------------------------------
def test_reset_mfa_lets_the_user_sign_in_with_the_password_alone(admin_client, totp_user, confidential_app,
                                                                 second_factors):
    backup_code.replace_codes(totp_user)
    SecondFactorState.objects.create(user=totp_user, authenticator=second_factors["totp"], failures=3)
    assert asks_second_factor(password_step(Client(), confidential_app))

    assert admin_client.get(people_url(totp_user, "reset-mfa")).status_code == 200
    assert admin_client.post(people_url(totp_user, "reset-mfa")).status_code == 302
    assert not TOTPDevice.objects.filter(user=totp_user).exists()
    assert not BackupCode.objects.filter(user=totp_user).exists()
    assert not SecondFactorState.objects.filter(user=totp_user).exists()
    browser = Client()
    response = password_step(browser, confidential_app)
    assert not asks_second_factor(response)
    follow_to_code(browser, browser.get(response["Location"]) if "/sign-in/" in response["Location"] else response)
    removed = AuditEvent.objects.filter(kind=AuditEvent.MFA_REMOVED, user=totp_user, reason="admin")
    assert sorted(removed.values_list("authenticator", flat=True)) == ["backup_code", "totp"]


def test_after_reset_a_required_second_factor_is_enrolled_again(admin_client, totp_user, confidential_app,
                                                                mfa_required):
    admin_client.post(people_url(totp_user, "reset-mfa"))
    response = password_step(Client(), confidential_app)
    assert re.search(r"/sign-in/[^/]+/enrol/$", response["Location"]), response["Location"]


def test_removing_the_app_leaves_the_backup_codes_which_are_still_asked_for(admin_client, totp_user, confidential_app):
    backup_code.replace_codes(totp_user)
    device = TOTPDevice.objects.get(user=totp_user)
    assert admin_client.post(people_url(totp_user, "remove-totp", device.pk)).status_code == 302
    assert not TOTPDevice.objects.filter(user=totp_user).exists()
    assert BackupCode.objects.filter(user=totp_user).count() == 10
    assert asks_second_factor(password_step(Client(), confidential_app))
    assert AuditEvent.objects.get(kind=AuditEvent.MFA_REMOVED).authenticator == "totp"

    assert admin_client.post(people_url(totp_user, "remove-backup-codes")).status_code == 302
    assert not BackupCode.objects.filter(user=totp_user).exists()
    assert not asks_second_factor(password_step(Client(), confidential_app))


# -- who may, and bad input ------------------------------------------------------------------------------
ACTIONS = ["sign-out-everywhere", "reset-mfa", "remove-backup-codes"]


@pytest.mark.parametrize("action", ACTIONS)
def test_staff_without_the_change_permission_is_refused(staff_client, staff, totp_user, confidential_app, action):
    browser = Client()
    tokens = sign_in_with_totp(browser, confidential_app)
    backup_code.replace_codes(totp_user)
    staff.user_permissions.add(Permission.objects.get(codename="view_user"))
    assert staff_client.get(f"/admin/auth/user/{totp_user.pk}/change/").status_code == 200  # may look
    assert staff_client.get(people_url(totp_user, action)).status_code == 403
    assert staff_client.post(people_url(totp_user, action)).status_code == 403
    assert signed_in(browser) and TOTPDevice.objects.filter(user=totp_user).exists()
    assert BackupCode.objects.filter(user=totp_user).exists()
    assert refresh(Client(), confidential_app, tokens["refresh_token"]).status_code == 200


def test_staff_with_the_change_permission_may(staff_client, staff, user, confidential_app):
    browser, _ = browser_with_tokens(confidential_app)
    staff.user_permissions.add(Permission.objects.get(codename="change_user"))
    assert staff_client.post(people_url(user, "sign-out-everywhere")).status_code == 302
    assert not signed_in(browser)


def test_a_user_who_is_not_staff_is_sent_to_sign_in(user, confidential_app, django_user_model):
    browser, tokens = browser_with_tokens(confidential_app)
    mallory = django_user_model.objects.create_user("mallory", "m@example.com", PASSWORD)
    client = Client()
    client.force_login(mallory)
    response = client.post(people_url(user, "sign-out-everywhere"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert signed_in(browser)
    assert refresh(Client(), confidential_app, tokens["refresh_token"]).status_code == 200


def test_the_actions_need_the_csrf_token(admin_user, user, confidential_app):
    browser, _ = browser_with_tokens(confidential_app)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(people_url(user, "sign-out-everywhere")).status_code == 403
    assert signed_in(browser)
    page = client.get(people_url(user, "sign-out-everywhere")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert client.post(people_url(user, "sign-out-everywhere"), {"csrfmiddlewaretoken": token}).status_code == 302
    assert not signed_in(browser)


@pytest.mark.parametrize("url", [
    "/admin/auth/user/999999/people/sign-out-everywhere/",
    "/admin/auth/user/not-a-user/people/reset-mfa/",
    "/admin/auth/user/{alice}/people/no-such-action/",
    "/admin/auth/user/{alice}/people/sign-out-everywhere/1/",
    "/admin/auth/user/{alice}/people/revoke-refresh-token/abc/",
    "/admin/auth/user/{alice}/people/revoke-refresh-token/99999999999999999999999/",
    "/admin/auth/user/{alice}/people/end-session/999999/",
    "/admin/auth/user/{alice}/people/remove-totp/{bob_device}/",  # someone else's
    "/admin/auth/user/{bob}/people/revoke-refresh-token/{alice_token}/",  # someone else's
])
def test_unknown_users_rows_and_actions_are_404(admin_client, user, confidential_app, django_user_model, url):
    from tests.helpers import give_totp

    bob = django_user_model.objects.create_user("bob", "bob@example.com", PASSWORD)
    device = give_totp(bob)
    browser, _ = browser_with_tokens(confidential_app)
    token = RefreshToken.objects.get(user=user)
    target = url.format(alice=user.pk, bob=bob.pk, bob_device=device.pk, alice_token=token.pk)
    assert admin_client.get(target).status_code == 404
    assert admin_client.post(target).status_code == 404
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert RefreshToken.objects.get(pk=token.pk).revoked is None and signed_in(browser)


# -- the audit events --------------------------------------------------------------------------------------
@pytest.fixture
def events(user: Any) -> dict[str, AuditEvent]:
    return {
        "ok": AuditEvent.objects.create(kind=AuditEvent.SIGN_IN_SUCCEEDED, user=user, identifier="alice",
                                        client_id="shop", ip="192.0.2.1"),
        "failed": AuditEvent.objects.create(kind=AuditEvent.SIGN_IN_FAILED, identifier="mallory", client_id="blog",
                                            ip="198.51.100.7", reason="wrong_password"),
    }


def listed(client: Client, query: str) -> set[int]:
    response = client.get(f"/admin/experience/auditevent/?{query}")
    assert response.status_code == 200, response.status_code
    return {event.pk for event in response.context["cl"].result_list}


def test_audit_events_are_read_only(admin_client, events):
    event = events["ok"]
    base = "/admin/experience/auditevent/"
    assert admin_client.get(f"{base}add/").status_code == 403
    assert admin_client.post(f"{base}add/", {"kind": "x"}).status_code == 403
    view = admin_client.get(f"{base}{event.pk}/change/")
    assert view.status_code == 200 and 'name="_save"' not in view.content.decode()
    admin_client.post(f"{base}{event.pk}/change/", {"kind": "forged", "identifier": "x"})
    assert admin_client.get(f"{base}{event.pk}/delete/").status_code == 403
    assert admin_client.post(f"{base}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.post(base, {"action": "delete_selected", "_selected_action": [str(event.pk)],
                                    "post": "yes"}).status_code in (200, 302)
    event.refresh_from_db()
    assert event.kind == AuditEvent.SIGN_IN_SUCCEEDED and AuditEvent.objects.count() == 2


def test_audit_events_filter_by_event_application_user_ip_and_date(admin_client, user, events):
    ok, failed = events["ok"].pk, events["failed"].pk
    assert listed(admin_client, "") == {ok, failed}
    assert listed(admin_client, "kind=sign_in.failed") == {failed}
    assert listed(admin_client, "client_id=shop") == {ok}
    assert listed(admin_client, f"user__id__exact={user.pk}") == {ok}
    assert listed(admin_client, "ip=198.51.100.7") == {failed}
    assert listed(admin_client, "q=mallory") == {failed}
    assert listed(admin_client, "q=192.0.2.1") == {ok}
    day = events["ok"].created_at
    assert listed(admin_client, f"created_at__year={day.year}&created_at__month={day.month}") == {ok, failed}
    assert listed(admin_client, "created_at__year=2001") == set()
    page = admin_client.get("/admin/experience/auditevent/").content.decode()
    assert f"?user__id__exact={user.pk}" in page and "?ip=198.51.100.7" in page


def test_audit_events_are_refused_to_staff_without_the_view_permission(staff_client, staff, events):
    assert staff_client.get("/admin/experience/auditevent/").status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    assert staff_client.get("/admin/experience/auditevent/").status_code == 200
    assert staff_client.get(f"/admin/experience/auditevent/{events['ok'].pk}/delete/").status_code == 403
