"""Token lookups shared by the endpoints: introspection and revocation of a whole sign-in."""

from __future__ import annotations

import hashlib
from typing import Any

from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from identity.models import AuthorizationRecord
from identity.subjects import subject_of

AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()


def _checksum(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def introspect(token: str, client: Any, issuer: str) -> dict[str, Any]:
    """RFC 7662 answer for ``token`` as seen by ``client``: inactive unless the client owns it."""
    checksum = _checksum(token)
    access = AccessToken.objects.select_related("user__portcullis_profile", "application").filter(token_checksum=checksum).first()
    if access is not None and access.application_id == client.pk and access.is_valid() and access.user.is_active:
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
    if refresh is not None and refresh.application_id == client.pk and refresh.user.is_active:
        return {"active": True, "token_type": "refresh_token", "client_id": client.client_id,
                "sub": subject_of(refresh.user), "iss": issuer}
    return {"active": False}


def revoke_session_families(sid: str) -> None:
    """Revoke every token family that came from one browser sign-in (sign-out)."""
    if not sid:
        return
    for family in AuthorizationRecord.objects.filter(sid=sid).values_list("family", flat=True):
        RefreshToken.revoke_family(family)


def revoke_user_tokens(user: Any, application: Any = None) -> None:
    """Revoke every token of the user (password change, reset, account disabled), or only those
    one application holds (consent withdrawn)."""
    now = timezone.now()
    refresh_tokens = RefreshToken.objects.filter(user=user, revoked__isnull=True)
    access_tokens = AccessToken.objects.filter(user=user)
    if application is not None:
        refresh_tokens = refresh_tokens.filter(application=application)
        access_tokens = access_tokens.filter(application=application)
    refresh_tokens.update(revoked=now, updated=now)
    access_tokens.delete()
