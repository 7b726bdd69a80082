from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config import demo

urlpatterns = [
    path("", demo.home, name="home"),
    path("admin/", admin.site.urls),
    path("", include("identity.urls")),
    path("", include("experience.urls")),
    path("demo/", include("config.demo_urls")),  # answers 404 unless PORTCULLIS_DEMO is on
]
