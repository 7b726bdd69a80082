"""The safe django-oauth-toolkit policy Portcullis installs as DOT's defaults.

``IdentityConfig.ready()`` puts these under DOT's own defaults, so a project that adds the apps gets
them without copying anything; a project's ``OAUTH2_PROVIDER`` setting still overrides each key.
Every choice is explained in docs/configuration.md ("OAuth policy").
"""

from __future__ import annotations

from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

from identity.hashers import ClientSecretHasher


def _active_private_pem() -> str:
    from identity.keys import active_private_pem

    return active_private_pem()


OAUTH2_PROVIDER_DEFAULTS: dict[str, object] = {
    "OIDC_ENABLED": True,
    # DOT's own RS256 pieces (its application validation, its key helpers) see our database key.
    "OIDC_RSA_PRIVATE_KEY": lazy(_active_private_pem, str)(),
    "OAUTH2_VALIDATOR_CLASS": "identity.validators.PortcullisValidator",
    "SCOPES": {
        "openid": _("Sign you in"),
        "profile": _("Your name and username"),
        "email": _("Your e-mail address"),
        "phone": _("Your phone number"),
    },
    "DEFAULT_SCOPES": ["openid"],
    # Client secrets are high-entropy random strings: a fast salted hash is right for them.
    "CLIENT_SECRET_HASHER": ClientSecretHasher(),
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
    "ID_TOKEN_EXPIRE_SECONDS": 3600,
    # 256 random bits from one read of the system's generator (oauthlib's default draws 30
    # characters one system call each: 178 bits).
    "ACCESS_TOKEN_GENERATOR": "identity.tokens.random_token",
    "REFRESH_TOKEN_GENERATOR": "identity.tokens.random_token",
    # Idle lifetime: a refresh token dies this long after its last access token expired.
    "REFRESH_TOKEN_EXPIRE_SECONDS": 30 * 24 * 3600,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "PKCE_REQUIRED": True,  # for public clients; see PortcullisValidator.is_pkce_required
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "http"],
    "ALLOW_URI_WILDCARDS": False,
    "REQUEST_APPROVAL_PROMPT": "force",
    "OIDC_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OIDC_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": ["client_secret_basic", "client_secret_post", "none"],
    "OIDC_RP_INITIATED_LOGOUT_ENABLED": True,
    "OIDC_RP_INITIATED_LOGOUT_STRICT_REDIRECT_URIS": True,
    "OIDC_RP_INITIATED_LOGOUT_ALWAYS_PROMPT": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    # http stays allowed for loopback callbacks only (native apps, RFC 8252): DOT can only allow or
    # forbid the scheme, so PortcullisValidator enforces the loopback rule and DOT's check warns.
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": False,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
}
