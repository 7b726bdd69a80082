"""The auth API (SPEC §4, the NocoBase verbs) and the Data2fa's ``check-code`` (SPEC §3): thin faces
over the headless interactions of ``experience.headless``, for applications an admin marked
first-party and headless.

Each view reads its body (``experience.api.auth_serializers``), names the calling application
(``client_id``, its secret for a confidential one) and the authenticator (the ``X-Authenticator``
header), calls one engine function and answers a UserToken, a Data2fa or an OtpCode. Errors are the
engine's, in SPEC's shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from authenticators.models import Authenticator
from experience import headless, upstream
from experience.api import auth_serializers as a
from experience.api import serializers as s
from experience.api.authentication import BearerAccessToken
from experience.api.views import JsonView, sent, type_fields, with_captcha
from experience.errors import EngineError
from identity import tokens
from identity.claims import user_claims

HEADER = "X-Authenticator"
TAG = ["auth"]


class AuthApiView(JsonView):
    """The auth API's base: no session, no CSRF (the application authenticates itself, and no
    cookie is ever set), JSON in and out, SPEC's errors, the JSON APIs' rate limit."""

    throttle_scope = "auth"

    def application(self, data: dict[str, Any]) -> Any:
        return headless.api_application(self.request._request, data)

    def named(self) -> str | None:
        """The ``X-Authenticator`` header (None when absent)."""
        value = self.request._request.headers.get(HEADER)
        return value.strip() if value is not None else None


def one_kind(authenticator: Authenticator, *kinds: str) -> None:
    """An authenticator driven the way the verb drives it; a redirect type signs in through
    ``/api/auth/<name>/authorize-url`` instead."""
    kind = authenticator.type.kind if authenticator.type is not None else ""
    if kind not in kinds:
        raise EngineError("invalid", fields={HEADER: [str(_("This method does not sign in with these fields."))]})


# -- the schema's shared parts ------------------------------------------------------------------------------
AUTHENTICATOR = OpenApiParameter(
    HEADER, str, OpenApiParameter.HEADER, required=False,
    description="The authenticator's name (`password`, `email-code`, ...). Absent: the application's first "
                "`password` method, or for a `code_id` the method that sent the code.")
ERRORS_400 = s.errors_of(400, "validation", "key", "captcha_answer", "sso", "requirement",
                         description="A bad body, credentials or a code that do not check out, a captcha to solve, "
                                     "single sign-on, or a gate the API cannot meet (`requirement`).")
CLIENT_ERRORS = {
    401: s.errors_of(401, "key", description="`invalid_client`: the application could not be authenticated."),
    403: s.errors_of(403, "forbidden", description="`headless_not_allowed`, or the method is disabled (`method_disabled`)."),
    429: s.errors_of(429, "rate_limited", description="Too many attempts or requests; `Retry-After`."),
}
BEARER_ERRORS = {
    401: s.errors_of(401, "key", description="`invalid_token`: no live access token."),
    403: s.errors_of(403, "forbidden", description="`headless_not_allowed`: the token's application may not use the API."),
    429: s.errors_of(429, "rate_limited", description="Too many requests; `Retry-After`."),
}


def verb(summary: str, request: Any, response: Any, examples: str, description: str = "",
         header: bool = True) -> Callable[..., Any]:
    responses = {200: response, 400: ERRORS_400, **CLIENT_ERRORS,
                 404: s.errors_of(404, "not_found", description="An unknown `X-Authenticator` (`authenticator`).")}
    return extend_schema(summary=summary, description=description, request=request, responses=responses, tags=TAG,
                         parameters=[AUTHENTICATOR] if header else [], examples=a.EXAMPLES[examples], auth=[])


# -- the verbs -----------------------------------------------------------------------------------------------
class SignInView(AuthApiView):
    """`POST /api/auth/sign-in`: a password (or another form type's fields), or a code's `code_id`
    and `code`; a UserToken, or a Data2fa when the user has a second factor."""

    throttle_scope = "auth.sign-in"

    @verb("Sign in", a.SignInRequest, a.USER_TOKEN_OR_DATA_2FA, "sign_in", description=(
        "Password types: `identifier`, `password` (and a `captcha` a `captcha_answer` error asked for). Code "
        "types: `code_id`, `code` after `send-code`. Answers a UserToken, or a Data2fa (`{\"data_2fa\", "
        "\"timeout\", \"methods\"}`) to finish at `/api/authorization/check-code`. Unknown accounts and wrong "
        "passwords get the same `key.invalid_credentials`."))
    def post(self, request: Request) -> Response:
        data = self.valid(a.SignInRequest)
        django_request = request._request
        application = self.application(data)
        scopes = headless.requested_scopes(application, data.get("scope"))
        if data.get("code_id"):
            authenticator = headless.authenticator_named(django_request, application, self.named())
            if authenticator is not None:
                one_kind(authenticator, "code")
            checked = {"code_id": data["code_id"], "code": data.get("code", "")}
            return Response(headless.sign_in_with_code(django_request, application, authenticator, checked, scopes))
        authenticator = headless.authenticator_named(django_request, application, self.named(), "password")
        assert authenticator is not None
        one_kind(authenticator, "form")
        checked = type_fields(authenticator, {"identifier": data.get("identifier", ""),
                                              "password": data.get("password", "")})
        return Response(headless.sign_in(django_request, application, authenticator, with_captcha(data, checked),
                                         scopes))


class SendCodeView(AuthApiView):
    """`POST /api/auth/send-code`: a one-time code (sign-in, sign-up, or a Data2fa's e-mail code)."""

    throttle_scope = "auth.send-code"

    @verb("Send a one-time code", a.SendCodeRequest, s.OtpCode, "send_code", description=(
        "`email` (an `email-code` method) or `phone_number` (`sms-code`), for `purpose` `sign_in` or `sign_up`; an "
        "address without an account gets the same answer. With `data_2fa` instead: a second-factor code to that "
        "user's verified e-mail. During the cool-down: 429 `rate_limited` with `retry_after`."))
    def post(self, request: Request) -> Response:
        data = self.valid(a.SendCodeRequest)
        django_request = request._request
        application = self.application(data)
        if data.get("data_2fa"):
            return sent(headless.send_second_factor_code(django_request, application, data["data_2fa"]))
        field, auth_type = ("email", "email-code") if data.get("email") else ("phone_number", "sms-code")
        authenticator = headless.authenticator_named(django_request, application, self.named(), auth_type)
        assert authenticator is not None
        one_kind(authenticator, "code")
        checked = with_captcha(data, {field: data[field]})
        return sent(headless.send_code(django_request, application, authenticator, checked, data["purpose"]))


class SignUpView(AuthApiView):
    """`POST /api/auth/sign-up`: a new account (its address verified by a sign-up code, when the
    experience verifies addresses), answered with its UserToken."""

    throttle_scope = "auth.sign-up"

    @verb("Sign up", a.SignUpRequest, a.UserToken, "sign_up", description=(
        "When the experience verifies addresses (the default): `send-code` with `purpose: sign_up` first, then "
        "`code_id`, `code` and the profile (`password`, and `username` when the sign-up identifiers include it; "
        "`name`). A profile a rule refuses (`validation` with `fields`) may be sent again with the same code. "
        "Without verification: the profile alone (`username` or `email` / `phone_number`, `password`). Missing "
        "values: `requirement` (`identify`: a code is needed; `profile_incomplete` with `missing`)."))
    def post(self, request: Request) -> Response:
        data = self.valid(a.SignUpRequest)
        django_request = request._request
        application = self.application(data)
        scopes = headless.requested_scopes(application, data.get("scope"))
        code = {"code_id": data["code_id"], "code": data["code"]} if data.get("code_id") else None
        authenticator = headless.authenticator_named(django_request, application, self.named(),
                                                     "" if code else "password")
        if authenticator is not None:
            one_kind(authenticator, "code" if code else "form")
        profile = {name: data[name] for name in ("username", "email", "phone_number", "name", "password")
                   if name in data}
        return Response(headless.sign_up(django_request, application, authenticator, code, profile, scopes))


class CheckCodeView(AuthApiView):
    """`POST /api/authorization/check-code`: finish a Data2fa with a second factor; a UserToken."""

    throttle_scope = "auth.check-code"

    @verb("Finish a Data2fa with a second factor", a.CheckCodeRequest, a.UserToken, "check_code", header=False,
          description=("`method` one of the Data2fa's `methods` (`email_code` also needs the `code_id` of "
                       "`send-code` with `data_2fa`). A `data_2fa` is single use, for the application that obtained "
                       "it, expires after its `timeout` and is spent by 5 wrong codes (the fifth answers "
                       "`key.attempts_exceeded`); then `key.data_2fa_expired`."))
    def post(self, request: Request) -> Response:
        data = self.valid(a.CheckCodeRequest)
        application = self.application(data)
        checked = {"code": data["code"], **({"code_id": data["code_id"]} if data.get("code_id") else {})}
        return Response(headless.check_code(request._request, application, data["data_2fa"], checked,
                                            data.get("method")))


class BearerView(AuthApiView):
    """A verb of the signed-in user: the UserToken's access token in ``Authorization: Bearer``."""

    authentication_classes = [BearerAccessToken]


class CheckView(BearerView):
    """`GET /api/auth/check`: who the access token's user is, and how they signed in."""

    throttle_scope = "auth.check"

    @extend_schema(summary="The signed-in user", tags=TAG, responses={200: a.CheckAnswer, **BEARER_ERRORS},
                   examples=a.EXAMPLES["check"])
    def get(self, request: Request) -> Response:
        access: Any = request.auth
        return Response({"user": user_claims(access.user, access.scope.split(), request._request),
                         "authenticator": tokens.family_authenticator(access) or None})


class SignOutView(BearerView):
    """`POST /api/auth/sign-out`: revoke the access token and its refresh family."""

    throttle_scope = "auth.sign-out"

    @extend_schema(summary="Sign out (revoke the token and its refresh family)", tags=TAG, request=None,
                   responses={204: OpenApiResponse(description="Revoked."), **BEARER_ERRORS})
    def post(self, request: Request) -> Response:
        access: Any = request.auth
        tokens.revoke_access_token_family(access)
        return Response(status=204)


# -- the third-party flow of redirect-type authenticators -------------------------------------------------
class AuthorizeUrlView(AuthApiView):
    """`GET /api/auth/<authenticator>/authorize-url?client_id=&redirect=`: the upstream URL for an API
    client's front end. The upstream calls back `/auth/<authenticator>/callback`, which sends the
    browser to `redirect` with `?authenticator=<name>&code=<exchange code>` (or `&error=<code>`)."""

    throttle_scope = "auth.authorize-url"

    @extend_schema(
        summary="The upstream authorization URL (third-party flow)", tags=TAG,
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
        application = self.application({"client_id": data["client_id"]})
        url = upstream.begin_for_client(request._request, application, name, data["redirect"], data["state"])
        return Response({"url": url})


class ExchangeTokenView(AuthApiView):
    """`POST /api/auth/token` `{"client_id", "code"}`: the callback's exchange code for a UserToken."""

    throttle_scope = "auth.token"

    @extend_schema(
        summary="Trade an exchange code for tokens (third-party flow)", tags=TAG, request=s.ExchangeRequest,
        description="The code is single use, lives 60 s and belongs to the application it was made for. A user with "
                    "a second factor gets a Data2fa, finished at `/api/authorization/check-code` as after a password.",
        responses={200: a.USER_TOKEN_OR_DATA_2FA,
                   400: s.errors_of(400, "validation", "key", "requirement",
                                    description="A bad body; a used, expired or another application's code "
                                                "(`key.invalid_code`); a gate not met."),
                   401: s.errors_of(401, "key", description="`invalid_client`."),
                   403: s.errors_of(403, "forbidden", description="`headless_not_allowed`."),
                   429: s.errors_of(429, "rate_limited")},
    )
    def post(self, request: Request) -> Response:
        data = self.valid(s.ExchangeRequest)
        application = self.application(data)
        return Response(upstream.redeem(request._request, application, data["code"]))
