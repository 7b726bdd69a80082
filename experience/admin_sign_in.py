"""The Django admin signs in through the hosted sign-in, so staff meet the same limits, captcha and
second factor as everyone (``PORTCULLIS_STAFF_MFA_REQUIRED`` makes the second factor required for
staff: ``experience.gates.mfa_required``).

``config/urls.py`` routes ``admin/login/`` here ahead of the admin's own URLs; a host project does
the same (``path("admin/login/", admin_login)`` before ``path("admin/", admin.site.urls)``), or sets
``admin.site.login = admin_login`` before the admin's URLs are built.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from experience import branding
from identity.security import deny_framing


@never_cache
def admin_login(request: HttpRequest, extra_context: object = None) -> HttpResponseBase:
    """``/admin/login/?next=…``: staff already in go on; anyone else signed in is told the account
    has no access (never a redirect loop between the admin and the sign-in page); nobody signed in
    goes to ``/sign-in/?next=…``."""
    next_url = request.GET.get("next") or reverse("admin:index")
    if admin.site.has_permission(request):
        return deny_framing(HttpResponse(status=302, headers={"Location": reverse("admin:index")}))
    if request.user.is_authenticated:
        context = {"account": request.user.get_username(), "next": next_url, **branding.for_client(request, "")}
        return deny_framing(render(request, "experience/admin_denied.html", context, status=403))
    target = f"{reverse('experience:sign-in-start')}?{urlencode({'next': next_url})}"
    return deny_framing(HttpResponse(status=302, headers={"Location": target}))
