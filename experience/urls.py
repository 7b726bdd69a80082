from __future__ import annotations

from django.urls import include, path

from experience import views

app_name = "experience"

urlpatterns = [
    path("sign-in/", views.SignInStartView.as_view(), name="sign-in-start"),
    path("sign-in/switch-account/", views.SwitchAccountView.as_view(), name="switch-account"),
    path("sign-in/<str:uid>/", views.SignInView.as_view(), name="sign-in"),
    path("", include("experience.api.urls")),  # the Experience API, /api/schema/ and /api/docs/
]
