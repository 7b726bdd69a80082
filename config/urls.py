from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config import demo
from experience.admin_sign_in import admin_login

urlpatterns = [
    path("", demo.home, name="home"),
    path("admin/login/", admin_login),  # staff sign in through the hosted sign-in (experience.admin_sign_in)
    path("admin/", admin.site.urls),
    path("captcha/", include("captcha.urls")),  # the captcha images (experience.captcha)
    path("", include("identity.urls")),
    path("", include("experience.urls")),
    path("demo/", include("config.demo_urls")),  # answers 404 unless PORTCULLIS_DEMO is on
]

# Error pages that never read the request body (see config/errors.py).
handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
