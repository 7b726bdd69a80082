"""Pages the provider itself shows: consent, sign-out, errors it must not redirect to a client.

They are branded like the sign-in pages without identity knowing how: :func:`render_page` adds
the context of the ``PORTCULLIS_PAGE_CONTEXT`` seam, a dotted path of
``page_context(request, application) -> dict`` (default ``experience.branding.page_context``: the
application's effective branding; empty: Portcullis' own look).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.module_loading import import_string

from identity.app_settings import app_settings
from identity.security import deny_framing


def page_context(request: HttpRequest, application: Any) -> dict[str, Any]:
    path = app_settings.PAGE_CONTEXT
    return dict(import_string(path)(request, application)) if path else {}


def render_page(request: HttpRequest, template: str, context: dict[str, Any], application: Any = None,
                status: int = 200) -> HttpResponse:
    """``template`` rendered with ``context`` over the seam's branding (not yet framed: the caller
    applies ``deny_framing`` with the form targets it knows)."""
    return render(request, template, {**page_context(request, application), **context}, status=status)


def error_page(request: HttpRequest, error: str, description: str, status: int = 400) -> HttpResponse:
    """An error shown to the user, for requests we must not redirect back to the client."""
    return deny_framing(render_page(request, "identity/error.html", {"error": error, "description": description},
                                    status=status))
