"""Helpers for the token-endpoint tests (test_tokens.py, test_refresh.py, test_concurrency.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import string
from typing import Any

from django.test import Client

from tests.conftest import ClientApp, Flow, authorize_params, pkce_pair

TOKEN_URL = "/oauth/token"
USERINFO_URL = "/oauth/userinfo"
REVOKE_URL = "/oauth/revoke"
INTROSPECT_URL = "/oauth/introspect"

UNRESERVED = set(string.ascii_letters + string.digits + "-._~")


def basic_auth(app: ClientApp, secret: str | None = None) -> str:
    raw = f"{app.client_id}:{secret if secret is not None else app.client_secret}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def jwt_payload(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def error_of(response: Any) -> str | None:
    try:
        return response.json().get("error")
    except ValueError:
        return None


def tokens_for(flow: Flow, app: ClientApp, *, pkce: bool = True, **authorize_extra: str) -> dict[str, Any]:
    """Authorize (signing in when needed) and redeem the code; the token response body."""
    verifier, challenge = pkce_pair() if pkce else (None, None)
    code, params = flow.code_for(app, authorize_params(app, challenge, **authorize_extra))
    extra = {"code_verifier": verifier} if verifier else {}
    response = flow.token(app, code, params, **extra)
    assert response.status_code == 200, response.content
    return response.json()


def refresh(client: Client, app: ClientApp, refresh_token: str, *, secret: str | None = None) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": app.client_id}
    secret = secret if secret is not None else app.client_secret
    if secret:
        data["client_secret"] = secret
    return client.post(TOKEN_URL, data)


def userinfo_status(client: Client, access_token: str) -> int:
    return client.get(USERINFO_URL, HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code


def revoke(client: Client, app: ClientApp, token: str, hint: str | None = None) -> Any:
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    return client.post(REVOKE_URL, data, HTTP_AUTHORIZATION=basic_auth(app))


def introspect(client: Client, app: ClientApp | None, token: str, *, secret: str | None = None) -> Any:
    headers = {} if app is None else {"HTTP_AUTHORIZATION": basic_auth(app, secret)}
    return client.post(INTROSPECT_URL, {"token": token}, **headers)


def entropy_bits(samples: list[str]) -> float:
    """A lower bound of the randomness of tokens shaped like ``samples``: the shortest length times
    log2 of the smallest usual alphabet that holds every character seen."""
    seen = set("".join(samples))
    alphabets = [
        set(string.digits),
        set(string.hexdigits.lower()),
        set(string.hexdigits),
        set(string.ascii_letters + string.digits),
        set(string.ascii_letters + string.digits + "-_"),
        UNRESERVED,
    ]
    for alphabet in alphabets:
        if seen <= alphabet:
            return min(len(s) for s in samples) * math.log2(len(alphabet))
    raise AssertionError(f"unexpected characters in tokens: {sorted(seen - UNRESERVED)}")


def checksum(token: str) -> str:
    """How DOT finds a token stored hashed at rest."""
    return hashlib.sha256(token.encode()).hexdigest()
