"""Claims by scope, for ID tokens and userinfo, with a hook for custom claims."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest
from django.utils.module_loading import import_string

from identity.app_settings import app_settings
from identity.models import Profile
from identity.subjects import ensure_profile

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "given_name", "family_name", "preferred_username", "updated_at"),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
}
SUPPORTED_CLAIMS = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid"] + [
    claim for claims in SCOPE_CLAIMS.values() for claim in claims
]


def _profile_claims(user: Any, profile: Profile) -> dict[str, Any]:
    given = getattr(user, "first_name", "") or ""
    family = getattr(user, "last_name", "") or ""
    claims: dict[str, Any] = {"preferred_username": user.get_username()}
    if given or family:
        claims["name"] = " ".join(part for part in (given, family) if part)
    if given:
        claims["given_name"] = given
    if family:
        claims["family_name"] = family
    if profile.updated_at:
        claims["updated_at"] = int(profile.updated_at.timestamp())
    return claims


def _email_claims(user: Any, profile: Profile) -> dict[str, Any]:
    email = getattr(user, "email", "") or ""
    if not email:
        return {}
    return {"email": email, "email_verified": bool(profile.email_verified)}


def _phone_claims(user: Any, profile: Profile) -> dict[str, Any]:
    if not profile.phone_number:
        return {}
    return {"phone_number": profile.phone_number, "phone_number_verified": bool(profile.phone_number_verified)}


_BUILDERS = {"profile": _profile_claims, "email": _email_claims, "phone": _phone_claims}


def user_claims(user: AbstractBaseUser, scopes: list[str] | set[str], request: HttpRequest | None = None) -> dict[str, Any]:
    """``sub`` plus the claims the granted scopes allow, plus the project's hook."""
    profile = ensure_profile(user)
    claims: dict[str, Any] = {"sub": profile.subject}
    for scope, build in _BUILDERS.items():
        if scope in scopes:
            claims.update(build(user, profile))
    if app_settings.CLAIMS_HOOK:
        extra = import_string(app_settings.CLAIMS_HOOK)(user, set(scopes), request)
        claims.update({key: value for key, value in extra.items() if key != "sub"})
    return claims
