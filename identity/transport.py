"""Credentials travel in headers and form bodies, never in the URL (RFC 6750 §5.3, RFC 9700 §4.3.2):
a URL ends up in access logs, proxies, browser history and ``Referer`` headers.

- userinfo refuses ``access_token`` in the query string (``400 invalid_request``, with the RFC 6750
  ``WWW-Authenticate: Bearer`` challenge); the header, or the form body of a POST, is the way;
- token, revocation and introspection take no query parameters at all (their parameters and client
  credentials belong in the body or the ``Authorization`` header), as oauthlib already insists for
  the first two: ``400 invalid_request``.

The value has leaked by then; the refusal makes sure nothing works that way, so clients get fixed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponseBase, JsonResponse, QueryDict

View = Callable[..., HttpResponseBase]

TOKEN_IN_URL = "The access token must be sent in the Authorization header, never in the URL."
PARAMETERS_IN_URL = "Parameters and credentials belong in the request body, never in the URL."


def _query(request: HttpRequest) -> QueryDict | None:
    """The parsed query string; None when it cannot be parsed (too many fields)."""
    try:
        return request.GET
    except TooManyFieldsSent:
        return None


def oauth_error(error: str, description: str, status: int = 400) -> JsonResponse:
    """An OAuth error in the RFCs' shape (``error``, ``error_description``), never cached."""
    return JsonResponse({"error": error, "error_description": description}, status=status,
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def invalid_request(description: str, *, bearer: bool = False) -> JsonResponse:
    response = oauth_error("invalid_request", description)
    if bearer:
        response["WWW-Authenticate"] = f'Bearer error="invalid_request", error_description="{description}"'
    return response


def no_token_in_query(view: View) -> View:
    """For a protected resource (userinfo): refuse an access token in the query string."""

    @functools.wraps(view)
    def wrapper(self: Any, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        query = _query(request)
        if query is None or "access_token" in query:
            return invalid_request(TOKEN_IN_URL, bearer=True)
        return view(self, request, *args, **kwargs)

    return wrapper


def no_query_parameters(view: View) -> View:
    """For the token, revocation and introspection endpoints: the URL carries no parameters."""

    @functools.wraps(view)
    def wrapper(self: Any, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        query = _query(request)
        if query is None or len(query):
            return invalid_request(PARAMETERS_IN_URL)
        return view(self, request, *args, **kwargs)

    return wrapper
