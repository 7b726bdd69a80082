"""The standalone server's error pages (``handler400`` ... ``handler500`` in config.urls).

Plain pages that never read the request body: Django's defaults carry ``requires_csrf_token``,
which reads ``request.POST`` again, so a body that could not be parsed raised a second time inside
the 400 handler and the answer became a 500 (``identity.middleware`` answers those bodies first;
these handlers hold even without it). No template, no database: a 500 page must not fail too.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _

from identity.middleware import plain_page as page  # also the 503 of Redis or PostgreSQL away


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return page(400, _("Bad request"), _("The request could not be read. Go back and try again."))


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return page(403, _("Forbidden"), _("You may not open this page."))


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return page(404, _("Page not found"), _("There is nothing at this address."))


def server_error(request: HttpRequest) -> HttpResponse:
    return page(500, _("Server error"), _("Something went wrong on our side. Try again in a moment."))
