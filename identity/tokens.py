"""Tokens outside the token endpoint: issuing them for a sign-in the engine completed, when a token
is alive (one rule for the token endpoint, userinfo and introspection), introspection, and
revocation of a whole sign-in."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import router, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.module_loading import import_string
from oauth2_provider.models import (
    get_access_token_model,
    get_refresh_token_model,
    refresh_token_expire_timedelta,
)
from oauth2_provider.oauth2_backends import get_oauthlib_core
from oauthlib.common import Request as OauthlibRequest

from identity import keys
from identity.app_settings import app_settings
from identity.models import AuthorizationRecord
from identity.subjects import subject_of

AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()


def issue_user_token(request: HttpRequest, application: Any, user: Any, scopes: Iterable[str], amr: list[str],
                     acr: str, *, authenticator: str = "") -> dict[str, Any]:
    """A token response (SPEC's UserToken) for ``user``, whom the engine has just signed in, to
    ``application``: what the headless and auth APIs answer.

    It goes through django-oauth-toolkit's own machinery (the server's token generator and
    lifetimes, the validator's storage and ID-token signing), in a token family of its own that
    an :class:`~identity.models.AuthorizationRecord` starts, so the tokens are refreshed, revoked
    and introspected at the standard endpoints like any others, and a refreshed ID token keeps
    this sign-in's ``auth_time``, ``amr`` and ``acr``. ``authenticator`` (the name of the
    authenticator the user signed in with) is remembered on the family (:func:`family_authenticator`).
    """
    core = get_oauthlib_core()
    server = core.server
    uri, _method, _body, headers = core._extract_params(request)
    oauth_request = OauthlibRequest(uri, "POST", "", headers)
    scopes = list(dict.fromkeys(scopes))
    oauth_request.client, oauth_request.client_id = application, application.client_id
    oauth_request.user, oauth_request.scopes = user, scopes
    oauth_request.grant_type = "portcullis_user_token"
    oauth_request._portcullis_record = AuthorizationRecord.objects.create(
        application=application, user=user, auth_time=timezone.now(), amr=list(amr), acr=acr,
        authenticator=authenticator[:64], redeemed_at=timezone.now())
    token = server.bearer.create_token(oauth_request, refresh_token=True)
    server.request_validator.save_user_token(token, oauth_request)
    if "openid" in scopes:
        id_token = {"at_hash": _left_half_hash(token["access_token"])}
        token["id_token"] = server.request_validator.finalize_id_token(id_token, token, server.bearer, oauth_request)
    return dict(token)


def random_token(request: Any = None, refresh_token: bool = False) -> str:
    """An access or refresh token value: 256 random bits, base64url (43 characters)."""
    return secrets.token_urlsafe(32)


def issuance_refusal(user: Any, application: Any, request: HttpRequest | None, grant_type: str) -> str | None:
    """Why the project's ``PORTCULLIS_TOKEN_CHECK`` refuses to issue ``user`` tokens for ``application``
    by ``grant_type`` (``authorization_code``, ``refresh_token``) now, or None. The experience app's
    access rules are applied this way (identity does not know them): a rule changed after the
    sign-in refuses the next refresh."""
    path = app_settings.TOKEN_CHECK
    return import_string(path)(user, application, request, grant_type) if path else None


def _left_half_hash(value: str) -> str:
    """``at_hash`` (OpenID Connect Core 3.1.3.6): the left half of SHA-256, base64url."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return keys.base64url(digest[: len(digest) // 2]).decode()


def token_checksum(token: str) -> str:
    """The SHA-256 a token is stored and looked up by (django-oauth-toolkit's ``token_checksum``)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def user_active(user: Any) -> bool:
    return user is not None and user.is_active


def access_token_alive(access: Any) -> bool:
    """The rule for an access token, at userinfo (the validator) and at introspection: not
    expired, and its user still active."""
    return not access.is_expired() and user_active(access.user)


def family_record(refresh: Any) -> AuthorizationRecord | None:
    """The sign-in a refresh token's family came from (None for a token Portcullis did not issue)."""
    if not refresh.token_family:
        return None
    return AuthorizationRecord.objects.filter(family=refresh.token_family).first()


def family_authenticator(access: Any) -> str:
    """The authenticator name remembered for the sign-in an access token's family came from (""
    when unknown: a family the browser's code flow started, or one without a refresh token)."""
    families = RefreshToken.objects.filter(access_token=access).values("token_family")
    name = AuthorizationRecord.objects.filter(family__in=families).values_list("authenticator", flat=True).first()
    return name or ""


def revoke_access_token_family(access: Any) -> None:
    """Sign-out with an access token: revoke it and its refresh family (the family's other access
    tokens, issued by refreshes, too); an access token without a refresh token is deleted."""
    refresh = RefreshToken.objects.filter(access_token=access).values_list("token_family", flat=True).first()
    if refresh:
        revoke_family(refresh)
    AccessToken.objects.filter(pk=access.pk).delete()


def refresh_token_expires_at(refresh: Any, record: AuthorizationRecord) -> datetime | None:
    """The earlier of the idle expiry, REFRESH_TOKEN_EXPIRE_SECONDS after the token's access token
    expires (as django-oauth-toolkit's validate_refresh_token measures it: the expiry slides with
    every refresh), and the absolute expiry, PORTCULLIS_REFRESH_TOKEN_ABSOLUTE_SECONDS after the
    sign-in however often the family was refreshed. None when neither lifetime is set."""
    deadlines = []
    idle = refresh_token_expire_timedelta()
    if idle and refresh.access_token is not None:
        deadlines.append(refresh.access_token.expires + idle)
    absolute = app_settings.REFRESH_TOKEN_ABSOLUTE_SECONDS
    if absolute:
        deadlines.append(record.created_at + timedelta(seconds=absolute))
    return min(deadlines, default=None)


def refresh_token_alive(refresh: Any, record: AuthorizationRecord | None) -> bool:
    """The one rule for a refresh token, at the token endpoint and at introspection: not revoked,
    from a sign-in Portcullis recorded, still paired with its access token (an orphan has nothing
    to refresh, as DOT says), its user active, and not past ``refresh_token_expires_at``."""
    if refresh.revoked is not None or record is None or refresh.access_token is None:
        return False
    if not user_active(refresh.user):
        return False
    expires_at = refresh_token_expires_at(refresh, record)
    return expires_at is None or timezone.now() < expires_at


def introspect(token: str, client: Any, issuer: str) -> dict[str, Any]:
    """RFC 7662 answer for ``token`` as seen by ``client``: inactive unless the client owns it."""
    checksum = token_checksum(token)
    access = AccessToken.objects.select_related("user__portcullis_profile", "application").filter(token_checksum=checksum).first()
    if access is not None and access.application_id == client.pk and access_token_alive(access):
        return {
            "active": True,
            "token_type": "Bearer",
            "scope": access.scope,
            "client_id": client.client_id,
            "username": access.user.get_username(),
            "sub": subject_of(access.user),
            "exp": int(access.expires.timestamp()),
            "iat": int(access.created.timestamp()),
            "iss": issuer,
            "aud": access.resource or [client.client_id],
        }
    refresh = (
        RefreshToken.objects.select_related("user", "access_token")
        .filter(token_checksum=checksum, revoked__isnull=True)
        .first()
    )
    record = family_record(refresh) if refresh is not None and refresh.application_id == client.pk else None
    if refresh is None or record is None or not refresh_token_alive(refresh, record):
        return {"active": False}
    answer = {"active": True, "token_type": "refresh_token", "client_id": client.client_id,
              "sub": subject_of(refresh.user), "iss": issuer}
    expires_at = refresh_token_expires_at(refresh, record)
    if expires_at is not None:
        answer["exp"] = int(expires_at.timestamp())  # the earlier of the idle and absolute expiry
    return answer


def revoke_family(family: Any, *, access_token: Any = None) -> None:
    """Revoke one token family (and ``access_token``, a pair written for a replayed code).

    Revocations of one family are serialised on its ``AuthorizationRecord`` row: two of them at
    once (parallel redemptions of a leaked code each revoke the family) would otherwise lock the
    family's refresh tokens in different orders, which PostgreSQL answers with a deadlock.
    """
    with transaction.atomic(using=router.db_for_write(RefreshToken)):
        list(AuthorizationRecord.objects.select_for_update().filter(family=family).values_list("pk", flat=True))
        if access_token is not None:
            access_token.delete()
        RefreshToken.revoke_family(family)


def revoke_session_families(sid: str) -> None:
    """Revoke every token family that came from one browser sign-in (sign-out)."""
    if not sid:
        return
    for family in AuthorizationRecord.objects.filter(sid=sid).values_list("family", flat=True):
        revoke_family(family)


def revoke_user_tokens(user: Any, application: Any = None) -> int:
    """Revoke every token of the user (password change, reset, account disabled, sign-out
    everywhere), or only those one application holds (consent withdrawn); how many refresh tokens
    were still live."""
    now = timezone.now()
    refresh_tokens = RefreshToken.objects.filter(user=user, revoked__isnull=True)
    access_tokens = AccessToken.objects.filter(user=user)
    if application is not None:
        refresh_tokens = refresh_tokens.filter(application=application)
        access_tokens = access_tokens.filter(application=application)
    revoked = refresh_tokens.update(revoked=now, updated=now)
    access_tokens.delete()
    return revoked


def revoke_refresh_token(refresh: Any) -> None:
    """An administrator revokes one refresh token: its whole family (the sign-in it came from: the
    tokens earlier and later refreshes made of it), or the token alone outside a family."""
    if refresh.token_family:
        revoke_family(refresh.token_family)
    else:
        refresh.revoke()
