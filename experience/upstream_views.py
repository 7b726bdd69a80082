"""The redirect-type authenticators' way back: ``/auth/<authenticator>/callback`` (SPEC §4)."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.views import View


class CallbackView(View):
    """Where an upstream provider sends the browser back (the redirect URI registered there)."""

    def get(self, request: HttpRequest, name: str, *args: Any, **kwargs: Any) -> HttpResponse:
        raise Http404  # the flows that use it land next (issue 7)
