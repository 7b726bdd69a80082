from __future__ import annotations

from django.urls import path

from experience import account_views, views

app_name = "experience"

urlpatterns = [
    path("sign-in/", views.SignInStartView.as_view(), name="sign-in-start"),
    path("sign-in/switch-account/", views.SwitchAccountView.as_view(), name="switch-account"),
    path("sign-in/<str:uid>/", views.SignInView.as_view(), name="sign-in"),
    # part signup
    path("sign-in/<str:uid>/create-account/", account_views.SignUpView.as_view(), name="sign-up"),
    path("sign-in/<str:uid>/forgot-password/", account_views.ForgotPasswordView.as_view(), name="forgot-password"),
    path("sign-in/<str:uid>/profile/", account_views.ProfileView.as_view(), name="profile"),
    path("sign-in/<str:uid>/new-password/", account_views.NewPasswordView.as_view(), name="new-password"),
]
