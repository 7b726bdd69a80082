"""The discovery document, built once per issuer."""

from __future__ import annotations

import functools
import json

from django.urls import reverse
from oauth2_provider.settings import oauth2_settings

from identity.app_settings import mount_path
from identity.claims import SUPPORTED_CLAIMS


@functools.lru_cache(maxsize=16)
def document(issuer: str) -> bytes:
    """Exactly what Portcullis supports, as JSON bytes (cached: it depends only on the issuer)."""

    mount = mount_path()

    def url(name: str) -> str:
        return issuer + reverse(name)[len(mount):]

    scopes = list(oauth2_settings.SCOPES)
    data = {
        "issuer": issuer,
        "authorization_endpoint": url("identity:authorize"),
        "token_endpoint": url("identity:token"),
        "userinfo_endpoint": url("identity:userinfo"),
        "jwks_uri": url("identity:jwks"),
        "revocation_endpoint": url("identity:revoke"),
        "introspection_endpoint": url("identity:introspect"),
        "end_session_endpoint": url("identity:end-session"),
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": SUPPORTED_CLAIMS,
        "prompt_values_supported": ["none", "login", "consent"],
        "display_values_supported": ["page"],
        "ui_locales_supported": ["en", "ru", "uk"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "authorization_response_iss_parameter_supported": True,
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": False,
    }
    return json.dumps(data, separators=(",", ":")).encode()
