"""Pages the provider itself shows (errors it must not redirect to a client)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from identity.security import deny_framing


def error_page(request: HttpRequest, error: str, description: str, status: int = 400) -> HttpResponse:
    """An error shown to the user, for requests we must not redirect back to the client."""
    response = render(
        request, "identity/error.html", {"error": error, "description": description}, status=status
    )
    return deny_framing(response)
