"""The auth API (SPEC §4, the NocoBase verbs) and the headless Identity API (SPEC §3, the B2B
document's ``login-by-password``, ``send-code``, ``login`` and ``check-code``): thin faces over the
headless interactions of ``experience.headless``, for applications an admin marked first-party and
headless. Both share the engine and each other's steps; the §3 operations only name their fields
as the document does (``email``) and refuse fields they do not name (``Strict`` bodies).

Each view reads its body (``experience.api.auth_serializers``), names the calling application
(``client_id``, its secret for a confidential one) and the authenticator (the ``X-Authenticator``
header), calls one engine function and answers a UserToken, a Data2fa or an OtpCode. Errors are the
engine's, in SPEC's shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers as drf_serializers
from rest_framework.request import Request
from rest_framework.response import Response

from authenticators.models import Authenticator
from experience import headless, upstream
from experience.api import auth_serializers as a
from experience.api import serializers as s
from experience.api.authentication import BearerAccessToken
from experience.api.views import JsonView, sent, type_fields, with_captcha
from experience.errors import EngineError
from identity import cors, tokens
from identity.claims import user_claims

HEADER = "X-Authenticator"
TAG = ["auth"]
S3_TAG = ["headless"]  # the headless Identity API (SPEC §3)


@method_decorator(cors.for_clients(cors.client_of_api_call, "GET, POST", f"{cors.ALLOWED_HEADERS}, {HEADER}"),
                  name="dispatch")
class AuthApiView(JsonView):
    """The auth API's base: no session, no CSRF (the application authenticates itself, and no
    cookie is ever set), JSON in and out, SPEC's errors, the JSON APIs' rate limit. A browser
    application on another origin may call it from an origin registered on it (identity.cors)."""

    throttle_scope = "auth"

    def application(self, data: dict[str, Any], owner: Callable[[], str] | None = None) -> Any:
        """The calling application: ``client_id`` in the body or HTTP Basic. ``owner``: where a
        body without either finds it, for the steps whose handle names its application."""
        request = self.request._request
        if owner is not None and not data.get("client_id") and "Authorization" not in request.headers:
            data = {**data, "client_id": owner()}
        return headless.api_application(request, data)

    def valid(self, serializer_class: type[drf_serializers.Serializer]) -> dict[str, Any]:
        """The body checked by ``serializer_class``, which knows whether HTTP Basic names the
        application (``client_id`` is then optional)."""
        serializer = serializer_class(data=self.body(), context={"request": self.request._request})
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def named(self) -> str | None:
        """The ``X-Authenticator`` header (None when absent)."""
        value = self.request._request.headers.get(HEADER)
        return value.strip() if value is not None else None

    def password_sign_in(self, application: Any, data: dict[str, Any], identifier: str,
                         scopes: tuple[str, ...], field: str = "identifier") -> Response:
        """An identifier and password through the named (or the first) password method."""
        django_request = self.request._request
        authenticator = headless.authenticator_named(django_request, application, self.named(), "password")
        assert authenticator is not None
        one_kind(authenticator, "form")
        try:
            checked = type_fields(authenticator, {"identifier": identifier, "password": data.get("password", "")})
        except EngineError as error:
            fields = error.data.get("fields")
            if field != "identifier" and fields:
                error.data["fields"] = {field if name == "identifier" else name: value for name, value in fields.items()}
            raise
        return Response(headless.sign_in(django_request, application, authenticator, with_captcha(data, checked),
                                         scopes))

    def code_sign_in(self, application: Any, data: dict[str, Any], scopes: tuple[str, ...]) -> Response:
        """A ``code_id`` and its code, checked by the named method or the one that sent it."""
        django_request = self.request._request
        authenticator = headless.authenticator_named(django_request, application, self.named())
        if authenticator is not None:
            one_kind(authenticator, "code")
        checked = {"code_id": data["code_id"], "code": data.get("code", "")}
        return Response(headless.sign_in_with_code(django_request, application, authenticator, checked, scopes))


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
         tags: list[str] = TAG, sends: bool = False) -> Callable[..., Any]:
    responses = {200: response, 400: ERRORS_400, **CLIENT_ERRORS,
                 404: s.errors_of(404, "not_found", description="An unknown `X-Authenticator` (`authenticator`).")}
    if sends:
        responses[503] = s.errors_of(503, "unavailable", "temporarily_unavailable", description=(
            "`delivery_failed`: the mail server or the SMS provider did not take the message; try again later. "
            + s.OUTAGE_DESCRIPTION))
    return extend_schema(summary=summary, description=description, request=request, responses=responses, tags=tags,
                         parameters=[AUTHENTICATOR], examples=a.EXAMPLES[examples], auth=[])


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
        application = self.application(data)
        scopes = headless.requested_scopes(application, data.get("scope"))
        if data.get("code_id"):
            return self.code_sign_in(application, data, scopes)
        return self.password_sign_in(application, data, data.get("identifier", ""), scopes)

class SendCodeView(AuthApiView):
    """`POST /api/auth/send-code`: a one-time code (sign-in, sign-up, or a Data2fa's e-mail code)."""

    throttle_scope = "auth.send-code"

    @verb("Send a one-time code", a.SendCodeRequest, s.OtpCode, "send_code", sends=True, description=(
        "`email` (an `email-code` method) or `phone_number` (`sms-code`), for `purpose` `sign_in` or `sign_up`; an "
        "address without an account gets the same answer. With `data_2fa` instead: a second-factor code to that "
        "user's verified e-mail. During the cool-down: 429 `rate_limited` with `retry_after`."))
    def post(self, request: Request) -> Response:
        return self.send(a.SendCodeRequest)

    def send(self, serializer: type[a.SendCodeRequest]) -> Response:
        data = self.valid(serializer)
        django_request = self.request._request
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

    @extend_schema(summary="Finish a Data2fa with a second factor", request=a.CheckCodeRequest, tags=S3_TAG,
                   responses={200: a.UserToken, 400: ERRORS_400, **CLIENT_ERRORS}, examples=a.EXAMPLES["check_code"],
                   auth=[], description=(
                       "`data_2fa`, `code`, `method` one of the Data2fa's `methods` (`email_code` also needs the "
                       "`code_id` of `send-code` with `data_2fa`). A `data_2fa` is single use, for the application "
                       "that obtained it, expires after its `timeout` and is spent by 5 wrong codes (the fifth "
                       "answers `key.attempts_exceeded`); then `key.data_2fa_expired`."))
    def post(self, request: Request) -> Response:
        data = self.valid(a.CheckCodeRequest)
        application = self.application(data, owner=lambda: headless.owner_of(handle=data["data_2fa"]))
        checked = {"code": data["code"], **({"code_id": data["code_id"]} if data.get("code_id") else {})}
        return Response(headless.check_code(request._request, application, data["data_2fa"], checked,
                                            data.get("method")))


# -- the headless Identity API (SPEC §3: the B2B document's four operations) -------------------------------
class LoginByPasswordView(AuthApiView):
    """`POST /api/authorization/login-by-password` (PostAuthorizationLoginByPassword): e-mail and
    password; a UserToken, or a Data2fa when the user has a second factor."""

    throttle_scope = "authorization.login-by-password"

    @verb("Log in with e-mail and password", a.LoginByPasswordRequest, a.USER_TOKEN_OR_DATA_2FA,
          "login_by_password", tags=S3_TAG, description=(
                   "`client_id`, `email`, `password` (and `captcha: {id, answer}` after a `captcha_answer` error). "
                   "Answers a UserToken, or a Data2fa to finish at `check-code`. Unknown accounts and wrong passwords "
                   "get the same `key.invalid_credentials`; an e-mail of an enterprise domain `sso.sso_required`."))
    def post(self, request: Request) -> Response:
        data = self.valid(a.LoginByPasswordRequest)
        application = self.application(data)
        scopes = headless.requested_scopes(application, data.get("scope"))
        return self.password_sign_in(application, data, data["email"], scopes, field="email")


class AuthorizationSendCodeView(SendCodeView):
    """`POST /api/authorization/send-code` (PostAuthorizationSendCode): a one-time sign-in code by
    e-mail or SMS (or a Data2fa's e-mail code); an OtpCode."""

    throttle_scope = "authorization.send-code"

    @verb("Send a one-time code", a.AuthorizationSendCodeRequest, s.OtpCode, "send_code", tags=S3_TAG, sends=True,
          description=(
        "`client_id` and `email` (an `email-code` method) or `phone_number` (`sms-code`), optional `captcha`; or "
        "`data_2fa` for a second-factor code to that user's verified e-mail (method `email_code` at `check-code`). "
        "An address without an account gets the same answer. Then `login` with the `code_id` and the code. "
        "During the cool-down: 429 `rate_limited` with `retry_after`."))
    def post(self, request: Request) -> Response:
        return self.send(a.AuthorizationSendCodeRequest)


class LoginView(AuthApiView):
    """`POST /api/authorization/login` (PostAuthorizationLogin): a one-time code's `code_id` and
    code; a UserToken, or a Data2fa when the user has a second factor."""

    throttle_scope = "authorization.login"

    @verb("Log in with a one-time code", a.LoginRequest, a.USER_TOKEN_OR_DATA_2FA, "login", tags=S3_TAG, description=(
        "`code_id` (from `send-code`) and `code`. A wrong code answers `key.invalid_code`, an expired one "
        "`key.code_expired`; the fifth wrong code spends it (`key.attempts_exceeded`). A `code_id` is single use: "
        "of concurrent requests one succeeds."))
    def post(self, request: Request) -> Response:
        data = self.valid(a.LoginRequest)
        application = self.application(data, owner=lambda: headless.owner_of(code_id=data["code_id"]))
        return self.code_sign_in(application, data, headless.requested_scopes(application, data.get("scope")))


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
