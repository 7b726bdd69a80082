"""The Experience API's routes (SPEC §2's table), the OpenAPI schema and its offline docs page.
Included by ``experience.urls``: the names are ``experience:api-...``."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from experience.api import auth_views, views

urlpatterns = [
    path("api/experience/", views.StartView.as_view(), name="api-start"),
    path("api/experience/config", views.ConfigView.as_view(), name="api-config"),
    path("api/experience/<str:uid>", views.StateView.as_view(), name="api-state"),
    path("api/experience/<str:uid>/event", views.EventView.as_view(), name="api-event"),
    path("api/experience/<str:uid>/password", views.PasswordView.as_view(), name="api-password"),
    path("api/experience/<str:uid>/code", views.CodeView.as_view(), name="api-code"),
    path("api/experience/<str:uid>/code/verify", views.CodeVerifyView.as_view(), name="api-code-verify"),
    path("api/experience/<str:uid>/totp", views.TotpView.as_view(), name="api-totp"),
    path("api/experience/<str:uid>/backup-code", views.BackupCodeView.as_view(), name="api-backup-code"),
    path("api/experience/<str:uid>/profile", views.ProfileView.as_view(), name="api-profile"),
    path("api/experience/<str:uid>/mfa/totp", views.TotpEnrolView.as_view(), name="api-mfa-totp"),
    path("api/experience/<str:uid>/mfa/totp/confirm", views.TotpConfirmView.as_view(), name="api-mfa-totp-confirm"),
    path("api/experience/<str:uid>/mfa/backup-codes", views.BackupCodesView.as_view(), name="api-mfa-backup-codes"),
    path("api/experience/<str:uid>/submit", views.SubmitView.as_view(), name="api-submit"),
    # The auth API (SPEC §4, the NocoBase verbs) and the Data2fa's check-code (SPEC §3).
    path("api/auth/sign-in", auth_views.SignInView.as_view(), name="api-auth-sign-in"),
    path("api/auth/send-code", auth_views.SendCodeView.as_view(), name="api-auth-send-code"),
    path("api/auth/sign-up", auth_views.SignUpView.as_view(), name="api-auth-sign-up"),
    path("api/auth/sign-out", auth_views.SignOutView.as_view(), name="api-auth-sign-out"),
    path("api/auth/check", auth_views.CheckView.as_view(), name="api-auth-check"),
    path("api/authorization/login-by-password", auth_views.LoginByPasswordView.as_view(),
         name="api-authorization-login-by-password"),
    path("api/authorization/send-code", auth_views.AuthorizationSendCodeView.as_view(),
         name="api-authorization-send-code"),
    path("api/authorization/login", auth_views.LoginView.as_view(), name="api-authorization-login"),
    path("api/authorization/check-code", auth_views.CheckCodeView.as_view(), name="api-authorization-check-code"),
    path("api/experience/<str:uid>/redirect", views.RedirectView.as_view(), name="api-redirect"),
    # the third-party flow of redirect-type authenticators (H2)
    path("api/auth/<slug:name>/authorize-url", auth_views.AuthorizeUrlView.as_view(), name="api-auth-authorize-url"),
    path("api/auth/token", auth_views.ExchangeTokenView.as_view(), name="api-auth-token"),
    # One OpenAPI 3 schema of every JSON API, and its docs page (Swagger UI from
    # drf-spectacular-sidecar's static files: no CDN; its script is a separate, same-origin file).
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", views.DocsView.as_view(url_name="experience:api-schema"), name="api-docs"),
]
