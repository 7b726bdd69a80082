"""What the ``oidc`` type knows of common providers (its ``preset`` option).

A preset fills in only what the admin left blank: the issuer (OpenID Connect providers, found by
discovery), or the endpoints of an OAuth 2.0 provider without ID tokens (GitHub), and default scopes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext_lazy as _

DEFAULT_SCOPES = ["openid", "email", "profile"]
DEFAULT_CLAIMS = {"email": "email", "name": "name"}


@dataclass(frozen=True)
class Preset:
    """``protocol`` is ``"oidc"`` (discovery, ID token) or ``"github"`` (OAuth 2.0 and GitHub's user
    API: the numeric user id, verified e-mail addresses from ``/user/emails``)."""

    title: Any
    protocol: str = "oidc"
    issuer: str = ""  # may hold {tenant}
    scopes: list[str] = field(default_factory=lambda: list(DEFAULT_SCOPES))
    endpoints: dict[str, str] = field(default_factory=dict)
    verified_claims: tuple[str, ...] = ("email_verified",)


PRESETS: dict[str, Preset] = {
    "google": Preset(_("Google"), issuer="https://accounts.google.com"),
    # Entra ID: the tenant option (default "common": any organisation's and personal accounts).
    # "common" and "organizations" publish the issuer https://login.microsoftonline.com/{tenantid}/v2.0:
    # an ID token's iss is checked against it with the token's own tid.
    "microsoft": Preset(_("Microsoft Entra ID"), issuer="https://login.microsoftonline.com/{tenant}/v2.0",
                        verified_claims=("email_verified", "xms_edov")),
    "github": Preset(_("GitHub"), protocol="github", scopes=["read:user", "user:email"], endpoints={
        "authorization_endpoint": "https://github.com/login/oauth/authorize",
        "token_endpoint": "https://github.com/login/oauth/access_token",
        "userinfo_endpoint": "https://api.github.com/user",
        "emails_endpoint": "https://api.github.com/user/emails",
    }),
}
ENDPOINT_OPTIONS = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "emails_endpoint")


def preset_of(options: dict[str, Any]) -> Preset | None:
    return PRESETS.get(str(options.get("preset") or ""))


def apply_preset(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the blanks the preset knows filled in (the settings form saves the same)."""
    values = dict(options)
    preset = preset_of(values)
    if preset is None:
        return values
    if preset.issuer and not values.get("issuer"):
        values["issuer"] = preset.issuer.format(tenant=values.get("tenant") or "common")
    for name, url in preset.endpoints.items():
        if not values.get(name):
            values[name] = url
    scopes = values.get("scopes")
    if not scopes or (preset.protocol != "oidc" and list(scopes) == DEFAULT_SCOPES):
        values["scopes"] = list(preset.scopes)
    return values


def protocol_of(options: dict[str, Any]) -> str:
    preset = preset_of(options)
    return preset.protocol if preset else "oidc"
