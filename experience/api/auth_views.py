"""The auth API (SPEC §4, NocoBase's verbs) for applications allowed the headless API: JSON in,
JSON out, the application identified by ``client_id`` (a confidential one authenticated as at the
token endpoint: ``experience.headless.api_application``), SPEC's error shape."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from experience import upstream
from experience.api import serializers as s
from experience.api.views import ExperienceView
from experience.headless import api_application

AUTH_TAG = ["auth"]


# -- third-party flow (H2) ---------------------------------------------------------------------------------
class AuthorizeUrlView(ExperienceView):
    """`GET /api/auth/<authenticator>/authorize-url?client_id=&redirect=`: the upstream URL for an API
    client's front end. The upstream calls back `/auth/<authenticator>/callback`, which sends the
    browser to `redirect` with `?authenticator=<name>&code=<exchange code>` (or `&error=<code>`)."""

    authentication_classes: list[Any] = []  # the application authenticates itself (HTTP Basic), no session
    throttle_scope = "auth.authorize-url"

    @extend_schema(
        summary="The upstream authorization URL (third-party flow)", tags=AUTH_TAG,
        parameters=[
            OpenApiParameter("client_id", str, required=True, description="The application."),
            OpenApiParameter("redirect", str, required=True,
                             description="The front end's URL: exactly one of the application's registered redirect URIs."),
            OpenApiParameter("state", str, description="Optional: given back at `redirect` with the code."),
        ],
        description="A confidential application authenticates with HTTP Basic (never a secret in the URL).",
        responses={200: s.UpstreamUrl, 400: s.errors_of(400, "validation", description="`redirect` is not registered."),
                   401: s.errors_of(401, "key", description="`invalid_client`."),
                   403: s.errors_of(403, "forbidden", description="`headless_not_allowed`."),
                   404: s.errors_of(404, "not_found", description="Not a redirect-type method of the application."),
                   429: s.errors_of(429, "rate_limited")},
    )
    def get(self, request: Request, name: str) -> Response:
        query = s.AuthorizeUrlQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        data = query.validated_data
        application = api_application(request._request, {"client_id": data["client_id"]})
        url = upstream.begin_for_client(request._request, application, name, data["redirect"], data["state"])
        return Response({"url": url})


class ExchangeTokenView(ExperienceView):
    """`POST /api/auth/token` `{"client_id", "code"}`: the callback's exchange code for a UserToken."""

    authentication_classes: list[Any] = []
    throttle_scope = "auth.token"

    @extend_schema(
        summary="Trade an exchange code for tokens (third-party flow)", tags=AUTH_TAG, request=s.ExchangeRequest,
        description="The code is single use, lives 60 s and belongs to the application it was made for. A user with "
                    "a second factor answers `400 requirement second_factor_required`.",
        responses={200: s.TokenAnswer,
                   400: s.errors_of(400, "validation", "key", "requirement",
                                    description="A bad body; a used, expired or another application's code "
                                                "(`key.invalid_code`); a gate not met."),
                   401: s.errors_of(401, "key", description="`invalid_client`."),
                   403: s.errors_of(403, "forbidden", description="`headless_not_allowed`."),
                   429: s.errors_of(429, "rate_limited")},
    )
    def post(self, request: Request) -> Response:
        data = self.valid(s.ExchangeRequest)
        application = api_application(request._request, data)
        completed = upstream.redeem(request._request, application, data["code"])
        return Response(completed.token)
