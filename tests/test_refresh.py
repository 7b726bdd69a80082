"""SECURITY.md "Codes, PKCE, tokens": refresh token rotation, replay detection, client binding,
idle and absolute lifetimes, and what a refreshed ID token says."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_refresh_token_model
from oauth2_provider.settings import oauth2_settings

from identity.app_settings import app_settings
from identity.models import AuthorizationRecord
from identity.subjects import subject_of
from tests.helpers import (
    authorize_params,
    checksum,
    entropy_bits,
    error_of,
    introspect,
    jwt_payload,
    pkce_pair,
    refresh,
    tokens_for,
    userinfo_status,
)

AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()


def record_of(refresh_token: str) -> AuthorizationRecord:
    rt = RefreshToken.objects.get(token_checksum=checksum(refresh_token))
    return AuthorizationRecord.objects.get(family=rt.token_family)


def assert_refused(response: Any) -> None:
    assert response.status_code == 400, response.content
    assert error_of(response) == "invalid_grant"
    assert "access_token" not in response.json()


# -- rotation -----------------------------------------------------------------------------------------------
def test_refresh_token_rotates_on_every_use(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    seen_refresh, seen_access = [body["refresh_token"]], [body["access_token"]]
    current = body["refresh_token"]
    for _ in range(3):
        response = refresh(flow.client, confidential_app, current)
        assert response.status_code == 200, response.content
        assert "no-store" in response["Cache-Control"]
        new = response.json()
        assert new["refresh_token"] not in seen_refresh
        assert new["access_token"] not in seen_access
        assert userinfo_status(flow.client, new["access_token"]) == 200
        seen_refresh.append(new["refresh_token"])
        seen_access.append(new["access_token"])
        current = new["refresh_token"]
    assert entropy_bits(seen_refresh[1:]) >= 128
    assert entropy_bits(seen_access[1:]) >= 128


def test_a_refresh_ends_the_old_access_token_and_chains_the_new_pair_in_the_family(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    old = RefreshToken.objects.get(token_checksum=checksum(body["refresh_token"]))
    new = refresh(flow.client, confidential_app, body["refresh_token"]).json()
    assert userinfo_status(flow.client, body["access_token"]) == 401  # deleted with the rotation, as DOT does
    assert not AccessToken.objects.filter(token_checksum=checksum(body["access_token"])).exists()
    old.refresh_from_db()
    assert old.revoked is not None and old.access_token_id is None
    fresh = RefreshToken.objects.select_related("access_token").get(token_checksum=checksum(new["refresh_token"]))
    assert fresh.revoked is None and fresh.token_family == old.token_family
    assert fresh.access_token.token_checksum == checksum(new["access_token"])
    assert fresh.access_token.source_refresh_token_id == old.pk
    assert fresh.user_id == user.pk and fresh.application_id == confidential_app.application.pk
    assert userinfo_status(flow.client, new["access_token"]) == 200


def test_a_receiver_of_refresh_token_saves_sees_the_rotation_revoke_the_old_token(flow, confidential_app, user):
    from django.db.models.signals import post_save

    saved = []

    def receiver(sender, instance, created, **kwargs):
        saved.append((instance.pk, created, instance.revoked is not None))

    body = tokens_for(flow, confidential_app)
    old = RefreshToken.objects.get(token_checksum=checksum(body["refresh_token"]))
    post_save.connect(receiver, sender=RefreshToken)
    try:
        new = refresh(flow.client, confidential_app, body["refresh_token"])
    finally:
        post_save.disconnect(receiver, sender=RefreshToken)
    assert new.status_code == 200, new.content
    fresh = RefreshToken.objects.get(token_checksum=checksum(new.json()["refresh_token"]))
    assert (old.pk, False, True) in saved and (fresh.pk, True, False) in saved, saved
    assert userinfo_status(flow.client, body["access_token"]) == 401
    assert userinfo_status(flow.client, new.json()["access_token"]) == 200


def test_with_rotation_off_a_refresh_keeps_its_token_and_renews_the_access_token(flow, confidential_app, user,
                                                                                   monkeypatch):
    monkeypatch.setattr(oauth2_settings, "ROTATE_REFRESH_TOKEN", False)  # DOT's own path, which Portcullis keeps
    body = tokens_for(flow, confidential_app)
    new = refresh(flow.client, confidential_app, body["refresh_token"])
    assert new.status_code == 200, new.content
    assert new.json()["refresh_token"] == body["refresh_token"]
    assert userinfo_status(flow.client, new.json()["access_token"]) == 200
    again = refresh(flow.client, confidential_app, body["refresh_token"])
    assert again.status_code == 200, again.content


@pytest.mark.parametrize("seconds_ago, family_survives", [(5, True), (120, False)])
def test_a_grace_period_spares_the_family_of_a_token_rotated_just_now_but_refreshes_nothing(
        flow, confidential_app, user, monkeypatch, seconds_ago, family_survives):
    monkeypatch.setattr(oauth2_settings, "REFRESH_TOKEN_GRACE_PERIOD_SECONDS", 60)
    body = tokens_for(flow, confidential_app)
    newest = refresh(flow.client, confidential_app, body["refresh_token"]).json()
    RefreshToken.objects.filter(token_checksum=checksum(body["refresh_token"])).update(
        revoked=timezone.now() - timedelta(seconds=seconds_ago))
    assert_refused(refresh(flow.client, confidential_app, body["refresh_token"]))
    assert (userinfo_status(flow.client, newest["access_token"]) == 200) is family_survives
    assert (refresh(flow.client, confidential_app, newest["refresh_token"]).status_code == 200) is family_survives


def test_a_revoked_refresh_token_that_never_refreshed_is_a_replay_even_in_the_grace_period(
        flow, confidential_app, user, monkeypatch):
    from tests.helpers import revoke

    monkeypatch.setattr(oauth2_settings, "REFRESH_TOKEN_GRACE_PERIOD_SECONDS", 60)
    first, second = tokens_for(flow, confidential_app), tokens_for(flow, confidential_app)
    assert revoke(flow.client, confidential_app, first["refresh_token"], "refresh_token").status_code == 200
    assert_refused(refresh(flow.client, confidential_app, first["refresh_token"]))
    assert userinfo_status(flow.client, second["access_token"]) == 200  # another family: untouched


def test_refreshed_tokens_live_at_most_one_hour(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    new = refresh(flow.client, confidential_app, body["refresh_token"]).json()
    assert 0 < new["expires_in"] <= 3600
    claims = jwt_payload(new["id_token"])
    assert 0 < claims["exp"] - claims["iat"] <= 3600


def test_replaying_a_rotated_refresh_token_revokes_the_family(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    first = refresh(flow.client, confidential_app, body["refresh_token"])
    assert first.status_code == 200, first.content
    second = refresh(flow.client, confidential_app, first.json()["refresh_token"])
    assert second.status_code == 200, second.content
    newest = second.json()
    assert userinfo_status(flow.client, newest["access_token"]) == 200

    # The attacker replays the original, already rotated refresh token.
    assert_refused(refresh(flow.client, confidential_app, body["refresh_token"]))

    # The whole family is dead: the newest access token and the newest refresh token.
    assert userinfo_status(flow.client, newest["access_token"]) == 401
    assert_refused(refresh(flow.client, confidential_app, newest["refresh_token"]))
    assert introspect(flow.client, confidential_app, newest["refresh_token"]).json() == {"active": False}


def test_replaying_the_immediately_previous_refresh_token_revokes_the_family(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    newest = refresh(flow.client, confidential_app, body["refresh_token"]).json()
    assert_refused(refresh(flow.client, confidential_app, body["refresh_token"]))
    assert userinfo_status(flow.client, newest["access_token"]) == 401
    assert_refused(refresh(flow.client, confidential_app, newest["refresh_token"]))


def test_replay_revokes_only_its_own_family(flow, confidential_app, user):
    victim = tokens_for(flow, confidential_app)
    bystander = tokens_for(flow, confidential_app)
    refresh(flow.client, confidential_app, victim["refresh_token"])
    assert_refused(refresh(flow.client, confidential_app, victim["refresh_token"]))
    assert userinfo_status(flow.client, bystander["access_token"]) == 200
    assert refresh(flow.client, confidential_app, bystander["refresh_token"]).status_code == 200


def test_a_client_cannot_use_another_clients_refresh_token(flow, confidential_app, other_app, user):
    body = tokens_for(flow, confidential_app)
    stolen = refresh(flow.client, other_app, body["refresh_token"])
    assert_refused(stolen)
    assert not AccessToken.objects.filter(application=other_app.application).exists()


def test_a_public_client_cannot_use_a_confidential_clients_refresh_token(flow, confidential_app, public_app, user):
    body = tokens_for(flow, confidential_app)
    response = refresh(flow.client, public_app, body["refresh_token"])
    assert response.status_code in (400, 401), response.content
    assert error_of(response) in {"invalid_grant", "invalid_client"}
    assert not AccessToken.objects.filter(application=public_app.application).exists()


def test_refresh_needs_the_client_secret(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    response = refresh(flow.client, confidential_app, body["refresh_token"], secret="not-the-secret")
    assert response.status_code == 401, response.content
    assert error_of(response) == "invalid_client"


def test_public_client_refresh_rotates(flow, public_app, user):
    body = tokens_for(flow, public_app)
    response = refresh(flow.client, public_app, body["refresh_token"])
    assert response.status_code == 200, response.content
    assert response.json()["refresh_token"] != body["refresh_token"]
    assert_refused(refresh(flow.client, public_app, body["refresh_token"]))
    assert userinfo_status(flow.client, response.json()["access_token"]) == 401


# -- the refreshed ID token -------------------------------------------------------------------------------------
def test_refreshed_id_token_keeps_sub_aud_azp_and_original_auth_time(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    # The sign-in happened a while ago (well before the refresh): move it back so that "now" or
    # user.last_login cannot pass for it.
    signed_in_at = timezone.now().replace(microsecond=0) - timedelta(minutes=20)
    AuthorizationRecord.objects.filter(grant__code=code).update(auth_time=signed_in_at)
    body = flow.token(confidential_app, code, params, code_verifier=verifier).json()
    original = jwt_payload(body["id_token"])
    assert original["auth_time"] == int(signed_in_at.timestamp())

    type(user).objects.filter(pk=user.pk).update(last_login=timezone.now() + timedelta(minutes=5))
    refreshed = refresh(flow.client, confidential_app, body["refresh_token"]).json()
    claims = jwt_payload(refreshed["id_token"])
    assert claims["sub"] == original["sub"] == subject_of(user)
    assert claims["aud"] == original["aud"]
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert confidential_app.client_id in aud
    assert claims["azp"] == original["azp"] == confidential_app.client_id
    assert claims["auth_time"] == original["auth_time"]
    assert claims["iss"] == original["iss"]
    assert claims.get("amr") == original.get("amr")

    # And again, two generations down.
    again = jwt_payload(refresh(flow.client, confidential_app, refreshed["refresh_token"]).json()["id_token"])
    assert (again["sub"], again["azp"], again["auth_time"]) == (original["sub"], original["azp"], original["auth_time"])


# -- lifetimes ----------------------------------------------------------------------------------------------------
def test_refresh_token_idle_lifetime(flow, confidential_app, user):
    idle = oauth2_settings.REFRESH_TOKEN_EXPIRE_SECONDS
    assert idle and int(idle if isinstance(idle, int) else idle.total_seconds()) > 0
    seconds = idle if isinstance(idle, int) else int(idle.total_seconds())

    # An access token that expired recently: the refresh token still works.
    fresh = tokens_for(flow, confidential_app)
    AccessToken.objects.filter(token_checksum=checksum(fresh["access_token"])).update(
        expires=timezone.now() - timedelta(seconds=60))
    assert refresh(flow.client, confidential_app, fresh["refresh_token"]).status_code == 200

    # Idle for longer than REFRESH_TOKEN_EXPIRE_SECONDS after its access token expired: refused.
    stale = tokens_for(flow, confidential_app)
    AccessToken.objects.filter(token_checksum=checksum(stale["access_token"])).update(
        expires=timezone.now() - timedelta(seconds=seconds + 60))
    assert_refused(refresh(flow.client, confidential_app, stale["refresh_token"]))


def test_refresh_token_absolute_lifetime(flow, confidential_app, user):
    absolute = app_settings.REFRESH_TOKEN_ABSOLUTE_SECONDS
    assert absolute > 0
    body = tokens_for(flow, confidential_app)
    # Keep the family busy: refreshed regularly, it is never idle.
    current = refresh(flow.client, confidential_app, body["refresh_token"]).json()
    record = record_of(current["refresh_token"])

    # Just inside the absolute lifetime: still works.
    AuthorizationRecord.objects.filter(pk=record.pk).update(
        created_at=timezone.now() - timedelta(seconds=absolute - 3600))
    response = refresh(flow.client, confidential_app, current["refresh_token"])
    assert response.status_code == 200, response.content
    current = response.json()

    # Past it, measured from the sign-in whatever the last refresh: refused.
    AuthorizationRecord.objects.filter(pk=record.pk).update(
        created_at=timezone.now() - timedelta(seconds=absolute + 60))
    assert_refused(refresh(flow.client, confidential_app, current["refresh_token"]))


def test_absolute_lifetime_is_configurable(flow, confidential_app, user, settings):
    settings.PORTCULLIS_REFRESH_TOKEN_ABSOLUTE_SECONDS = 600
    body = tokens_for(flow, confidential_app)
    record = record_of(body["refresh_token"])
    AuthorizationRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - timedelta(seconds=601))
    assert_refused(refresh(flow.client, confidential_app, body["refresh_token"]))


# -- one liveness rule: the token endpoint and introspection never disagree ---------------------------------
def idle_seconds() -> int:
    idle = oauth2_settings.REFRESH_TOKEN_EXPIRE_SECONDS
    return idle if isinstance(idle, int) else int(idle.total_seconds())


def _idle_expired(body: dict[str, Any]) -> None:
    AccessToken.objects.filter(token_checksum=checksum(body["access_token"])).update(
        expires=timezone.now() - timedelta(seconds=idle_seconds() + 60))


def _absolute_expired(body: dict[str, Any]) -> None:
    AuthorizationRecord.objects.filter(pk=record_of(body["refresh_token"]).pk).update(
        created_at=timezone.now() - timedelta(seconds=app_settings.REFRESH_TOKEN_ABSOLUTE_SECONDS + 60))


def _user_disabled(body: dict[str, Any]) -> None:
    # An update, not save(): the rule itself, not the revocation the account-disable signal adds.
    get_user_model().objects.filter(pk=RefreshToken.objects.get(token_checksum=checksum(body["refresh_token"])).user_id).update(is_active=False)


def _revoked(body: dict[str, Any]) -> None:
    RefreshToken.objects.filter(token_checksum=checksum(body["refresh_token"])).update(revoked=timezone.now())


def _orphaned(body: dict[str, Any]) -> None:
    AccessToken.objects.filter(token_checksum=checksum(body["access_token"])).delete()


REFRESH_STATES: dict[str, Callable[[dict[str, Any]], None]] = {
    "fresh": lambda body: None,
    "idle-expired": _idle_expired,
    "absolute-expired": _absolute_expired,
    "user-disabled": _user_disabled,
    "revoked": _revoked,
    "orphaned": _orphaned,
}


@pytest.mark.parametrize("state", REFRESH_STATES)
def test_introspection_and_the_token_endpoint_agree_on_a_refresh_token(flow, confidential_app, user, state):
    """Introspection said an expired refresh token was active while the token endpoint refused it:
    a resource server trusting introspection kept a session alive that had ended."""
    body = tokens_for(flow, confidential_app)
    REFRESH_STATES[state](body)
    answer = introspect(flow.client, confidential_app, body["refresh_token"]).json()
    response = refresh(flow.client, confidential_app, body["refresh_token"])
    assert answer["active"] is (state == "fresh"), answer
    if state == "fresh":
        assert response.status_code == 200, response.content
    else:
        assert answer == {"active": False}
        assert_refused(response)


def test_introspection_gives_a_refresh_tokens_expiry(flow, confidential_app, user):
    """``exp`` is the earlier of the idle expiry (sliding with the access token) and the absolute
    expiry of the sign-in."""
    body = tokens_for(flow, confidential_app)
    access = AccessToken.objects.get(token_checksum=checksum(body["access_token"]))
    answer = introspect(flow.client, confidential_app, body["refresh_token"]).json()
    assert answer["active"] is True and answer["token_type"] == "refresh_token"
    assert answer["exp"] == int((access.expires + timedelta(seconds=idle_seconds())).timestamp())

    # Near the end of the sign-in's absolute lifetime, that end comes first.
    signed_in_at = timezone.now() - timedelta(seconds=app_settings.REFRESH_TOKEN_ABSOLUTE_SECONDS - 600)
    AuthorizationRecord.objects.filter(pk=record_of(body["refresh_token"]).pk).update(created_at=signed_in_at)
    answer = introspect(flow.client, confidential_app, body["refresh_token"]).json()
    expected = signed_in_at + timedelta(seconds=app_settings.REFRESH_TOKEN_ABSOLUTE_SECONDS)
    assert answer["exp"] == int(expected.timestamp())


def test_refresh_tokens_are_hashed_at_rest(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    new = refresh(flow.client, confidential_app, body["refresh_token"]).json()
    rt = RefreshToken.objects.get(token_checksum=checksum(new["refresh_token"]))
    assert rt.token == ""
    at = AccessToken.objects.get(token_checksum=checksum(new["access_token"]))
    assert at.token == ""
