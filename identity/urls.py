from __future__ import annotations

from django.urls import path
from django.views.i18n import set_language

from identity import end_session, operations, views

app_name = "identity"

urlpatterns = [
    path(".well-known/openid-configuration", views.DiscoveryView.as_view(), name="discovery"),
    path(".well-known/jwks.json", views.JwksView.as_view(), name="jwks"),
    path("oauth/authorize", views.AuthorizationView.as_view(), name="authorize"),
    path("oauth/authorize/consent", views.ConsentView.as_view(), name="consent"),
    path("oauth/token", views.TokenView.as_view(), name="token"),
    path("oauth/userinfo", views.UserInfoView.as_view(), name="userinfo"),
    path("oauth/revoke", views.RevokeTokenView.as_view(), name="revoke"),
    path("oauth/introspect", views.IntrospectView.as_view(), name="introspect"),
    path("oauth/logout", end_session.EndSessionView.as_view(), name="end-session"),
    path("account/connected-apps/", views.ConnectedAppsView.as_view(), name="connected-apps"),
    # The language switcher of every hosted page: Django's view (POST, CSRF, a same-host ``next``).
    path("language/", set_language, name="set-language"),
    # What an operator's tools ask (identity.operations): liveness, readiness, Prometheus metrics.
    path("healthz", operations.healthz, name="healthz"),
    path("readyz", operations.readyz, name="readyz"),
    path("metrics", operations.metrics, name="metrics"),
]
