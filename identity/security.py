"""Headers every page of the sign-in flow carries."""

from __future__ import annotations

from typing import TypeVar

from django.http import HttpResponseBase

R = TypeVar("R", bound=HttpResponseBase)


def deny_framing(response: R) -> R:
    """No site may frame sign-in, consent, code or error pages (clickjacking)."""
    response["X-Frame-Options"] = "DENY"
    policy = response.get("Content-Security-Policy")
    if not policy:
        response["Content-Security-Policy"] = "frame-ancestors 'none'; form-action 'self' http: https:; base-uri 'self'; object-src 'none'"
    response["Referrer-Policy"] = "same-origin"  # no-referrer would make browsers send Origin: null, failing CSRF
    return response
