from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from config import demo

urlpatterns = [
    path("", demo.home, name="home"),
    path("admin/", admin.site.urls),
    path("", include("identity.urls")),
    path("", include("experience.urls")),
]
if settings.PORTCULLIS_DEMO:
    urlpatterns += [path("demo/", include("config.demo_urls"))]
