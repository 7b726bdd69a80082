"""Client authentication at the token, revocation and introspection endpoints (RFC 6749 2.3).

One method per request, chosen by what the request carries, never a second chance with another:

- ``client_secret_basic``: an ``Authorization: Basic`` header (the scheme in any case). The request
  is judged by the header alone: a header that cannot be read (not base64, not UTF-8, no colon, bad
  percent-encoding), an unknown client or a wrong secret is ``401 invalid_client`` with a
  ``WWW-Authenticate: Basic`` challenge (RFC 6749 5.2). The body may repeat the header's
  ``client_id``; a different one is ``401 invalid_client``. A ``client_secret`` in the body beside
  the header is ``400 invalid_request`` (5.2: "utilizes more than one mechanism for authenticating
  the client").
- ``client_secret_post``: ``client_id`` and a non-empty ``client_secret`` in the form body (never
  the query string).
- ``none``: only a ``client_id`` in the body; oauthlib then accepts it for public clients only.

Every failure answers the same ``invalid_client`` whatever the cause, so that an answer never tells
whether a client exists.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from oauthlib.oauth2.rfc6749 import errors

BASIC_CHALLENGE = 'Basic realm="oauth", charset="UTF-8"'

BASIC = "client_secret_basic"
POST = "client_secret_post"
NONE = "none"


class InvalidClient(errors.InvalidClientError):
    """``401 invalid_client`` with the challenge of the scheme clients authenticate with."""

    description = "Client authentication failed."

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": BASIC_CHALLENGE}


class TwoMethods(errors.InvalidRequestError):
    description = "Use one client authentication method: HTTP Basic or client_secret in the body, not both."


@dataclass(frozen=True)
class Credentials:
    """What a request presents: the method, the client it names and the secret (empty for none)."""

    method: str
    client_id: str
    secret: str


def presented(authorization: str | None, body: Mapping[str, Any]) -> Credentials:
    """The one method of a request, from its ``Authorization`` header and its form body.

    Raises ``InvalidClient`` for an unreadable Basic header or a body ``client_id`` that contradicts
    it, and ``TwoMethods`` for Basic beside a body ``client_secret``.
    """
    body_id = _text(body.get("client_id"))
    body_secret = _text(body.get("client_secret"))
    scheme, _space, value = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return Credentials(POST if body_secret else NONE, body_id, body_secret)
    if body_secret:
        raise TwoMethods()
    client_id, secret = parse_basic(value)
    if body_id and body_id != client_id:
        raise InvalidClient()
    return Credentials(BASIC, client_id, secret)


def parse_basic(value: str) -> tuple[str, str]:
    """``client_id`` and ``client_secret`` from Basic credentials: base64 of the two, each
    form-urlencoded, joined by a colon (RFC 6749 2.3.1, UTF-8 as RFC 7617 says)."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        client_id, colon, secret = decoded.partition(":")
        if not colon:
            raise ValueError("no colon")
        return unquote_plus(client_id, errors="strict"), unquote_plus(secret, errors="strict")
    except ValueError:  # binascii.Error, UnicodeDecodeError and a non-ASCII header are ValueErrors
        raise InvalidClient() from None


def from_oauthlib(request: Any) -> Credentials:
    """``presented()`` for an oauthlib request: its header and its form body only, never its query
    string (where credentials would land in access logs). Remembered on the request."""
    cached = getattr(request, "_portcullis_credentials", None)
    if cached is not None:
        return cached
    headers = request.headers
    authorization = headers.get("HTTP_AUTHORIZATION") or headers.get("Authorization")
    credentials = presented(authorization, dict(request.decoded_body or []))
    request._portcullis_credentials = credentials
    return credentials


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def authenticate_application(authorization: str | None, body: Mapping[str, Any]) -> Any:
    """The application a JSON API request comes from, authenticated as at the token endpoint (the
    headless and auth APIs, SPEC §3): one method (Basic, ``client_secret`` in the body, or none); a
    confidential application must prove its secret, a public one must not send one it lacks.

    Raises ``InvalidClient`` for an unknown client, a missing or wrong secret, and ``TwoMethods``
    for two methods at once. Every failure is the same whatever the cause."""
    from oauth2_provider.models import AbstractApplication
    from oauth2_provider.oauth2_validators import OAuth2Validator

    from identity.applications import load_application

    credentials = presented(authorization, body)
    client = load_application(credentials.client_id) if credentials.client_id else None
    if client is None:
        raise InvalidClient()
    if client.client_type == AbstractApplication.CLIENT_CONFIDENTIAL or credentials.method != NONE:
        if not credentials.secret or not OAuth2Validator()._check_secret(credentials.secret, client.client_secret):
            raise InvalidClient()
    return client
