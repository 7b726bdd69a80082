"""Middleware of the experience app."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from experience import notifications

PATH = "experience.middleware.DeviceCookieMiddleware"


class DeviceCookieMiddleware:
    """Sets the device cookie a sign-in asked for (``experience.notifications``), as Django's CSRF
    middleware sets the cookie ``get_token`` asked for. ``ExperienceConfig.ready()`` appends it to
    ``MIDDLEWARE`` when a project does not list it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        notifications.set_device_cookie(request, response)
        return response
