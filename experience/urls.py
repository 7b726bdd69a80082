from __future__ import annotations

from django.conf import settings
from django.urls import include, path

from experience import account_views, branding_views, mfa_views, upstream_views, views

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
    # part mfa: the second-factor and enrolment steps, the account page of a signed-in user's factors
    path("sign-in/<str:uid>/second-factor/", mfa_views.SecondFactorView.as_view(), name="second-factor"),
    path("sign-in/<str:uid>/enrol/", mfa_views.EnrolView.as_view(), name="mfa-enrol"),
    path("account/security/", mfa_views.AccountSecurityView.as_view(), name="account-security"),
    path("account/security/totp/", mfa_views.AccountTotpView.as_view(), name="account-totp"),
    path("account/security/confirm/", mfa_views.AccountConfirmView.as_view(), name="account-confirm"),
    # redirect-type authenticators (upstream OpenID Connect, ...): the redirect URI registered upstream
    path("auth/<slug:name>/callback", upstream_views.CallbackView.as_view(), name="auth-callback"),
    path("", include("experience.api.urls")),  # the Experience API, /api/schema/ and /api/docs/
]

if settings.MEDIA_URL.startswith("/"):  # the uploaded branding images (a MEDIA_URL on another host serves them there)
    _media = settings.MEDIA_URL.strip("/")  # "" when a project leaves MEDIA_URL unset ("/")
    urlpatterns += [
        path(f"{_media}/branding/<str:name>" if _media else "branding/<str:name>", branding_views.image,
             name="branding-image"),
    ]
