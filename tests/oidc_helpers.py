"""Helpers for the ID token, logout, discovery and bad-input tests: issue tokens through the real
flow and check JWTs the way a relying party would (with the published JWKS only)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from django.test import Client
from jwcrypto import jwk, jwt

from tests.conftest import ClientApp, Flow, authorize_params, pkce_pair


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_header(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[0]))


def jwt_payload(token: str) -> dict[str, Any]:
    """The claims, unverified (for tests that build tampered tokens)."""
    return json.loads(b64url_decode(token.split(".")[1]))


def fetch_jwks(client: Client) -> tuple[dict[str, Any], jwk.JWKSet]:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200, response.content
    document = response.json()
    return document, jwk.JWKSet.from_json(response.content)


def verify_id_token(client: Client, id_token: str) -> dict[str, Any]:
    """Verify the signature against the published JWKS, as a relying party would; the claims."""
    _document, keyset = fetch_jwks(client)
    token = jwt.JWT(jwt=id_token, key=keyset, algs=["RS256"], check_claims=False)
    return json.loads(token.claims)


def expected_at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return b64url_encode(digest[: len(digest) // 2])


def issue_tokens(flow: Flow, app: ClientApp, scope: str = "openid profile email phone", **extra: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Run authorize → sign-in → token for ``app``; the token response body and the request."""
    verifier, challenge = pkce_pair()
    params = authorize_params(app, challenge, scope=scope, **extra)
    code, params = flow.code_for(app, params)
    response = flow.token(app, code, params, code_verifier=verifier)
    assert response.status_code == 200, response.content
    return response.json(), params


def userinfo(client: Client, access_token: str) -> Any:
    return client.get("/oauth/userinfo", HTTP_AUTHORIZATION=f"Bearer {access_token}")
