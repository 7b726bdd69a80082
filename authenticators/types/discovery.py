"""Discovery documents and signing keys of upstream OpenID Connect providers, cached.

``metadata(issuer)`` reads ``issuer`` + ``/.well-known/openid-configuration`` (checked: its issuer is
the configured one, the endpoints are URLs), ``signing_keys(jwks_uri)`` the provider's JWKS; both are
kept in the Django cache for ``PORTCULLIS_OIDC_DISCOVERY_TTL`` seconds (JSON, never objects). All
fetching goes through :mod:`authenticators.types.outbound` (the issuer rule).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from django.core.cache import cache
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from authenticators.types import outbound
from authenticators.types.outbound import UpstreamUnavailable
from identity.app_settings import setting

TENANT_ID = "{tenantid}"


def cache_key(kind: str, url: str) -> str:
    return f"portcullis:oidc:{kind}:{hashlib.sha256(url.encode()).hexdigest()}"


def cache_ttl() -> int:
    """``PORTCULLIS_OIDC_DISCOVERY_TTL``: how long discovery documents and JWKS are kept (300 s)."""
    return int(setting("OIDC_DISCOVERY_TTL", 300))


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def issuer_matches(published: str, configured: str) -> bool:
    """Whether the discovery document's issuer is the one configured. Entra ID's multi-tenant
    endpoints (``common``, ``organizations``) publish ``.../{tenantid}/v2.0``: any tenant segment."""
    if TENANT_ID in published:
        pattern = re.escape(published).replace(re.escape(TENANT_ID), "[^/]+")
        return re.fullmatch(pattern, configured) is not None
    return published == configured


def fetch_metadata(issuer: str) -> dict[str, Any]:
    """The provider's discovery document, checked (issuer, endpoints); not cached."""
    document = outbound.get_json(discovery_url(issuer))
    if not isinstance(document, dict) or not isinstance(document.get("issuer"), str):
        raise UpstreamUnavailable("bad_metadata")
    if not issuer_matches(document["issuer"], issuer):
        raise UpstreamUnavailable("issuer_mismatch")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(document.get(name), str) or not document[name].startswith(("https://", "http://")):
            raise UpstreamUnavailable("bad_metadata")
    return document


def metadata(issuer: str) -> dict[str, Any]:
    key = cache_key("discovery", issuer)
    document = cache.get(key)
    if not isinstance(document, dict):
        document = fetch_metadata(issuer)
        cache.set(key, document, cache_ttl())
    return document


def signing_keys(jwks_uri: str, *, refresh: bool = False) -> KeySet:
    """The provider's signature keys (``use`` absent or ``sig``); refetched when ``refresh``."""
    key = cache_key("jwks", jwks_uri)
    document = None if refresh else cache.get(key)
    if not isinstance(document, dict):
        document = outbound.get_json(jwks_uri)
        cache.set(key, document, cache_ttl())
    keys = document.get("keys") if isinstance(document, dict) else None
    usable = [item for item in keys if isinstance(item, dict) and item.get("use", "sig") == "sig"] \
        if isinstance(keys, list) else []
    try:
        return KeySet.import_key_set({"keys": usable})
    except (JoseError, ValueError, TypeError, KeyError):
        raise UpstreamUnavailable("bad_jwks") from None
