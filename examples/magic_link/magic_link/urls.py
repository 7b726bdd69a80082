"""Include in the host project: ``path("magic-link/", include("magic_link.urls"))``."""

from __future__ import annotations

from django.urls import path

from magic_link import views

app_name = "magic_link"

urlpatterns = [
    path("<str:uid>/", views.FinishView.as_view(), name="finish"),
]
