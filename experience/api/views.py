"""The Experience API's views: each one reads its body, calls one engine function and answers the
interaction's state (SPEC §2). Errors are the engine's (``experience.errors``), DRF's own failures
converted to the same shape (``experience.api.errors``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.middleware.csrf import get_token
from drf_spectacular.utils import OpenApiParameter, extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework import serializers as drf_serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from authenticators.base import SentCode
from authenticators.models import Authenticator
from experience import errors, mfa, risk, upstream
from experience import interaction as engine
from experience.api import serializers as s
from experience.api.authentication import CsrfSession, set_csrf_cookie
from experience.api.errors import exception_handler
from experience.api.parsers import BoundedJSONParser, JSONOnly
from experience.branding import display_name, safe_css
from experience.errors import EngineError
from experience.models import Interaction
from experience.policy import describe as describe_policy
from experience.policy import policy_for
from identity.applications import load_application
from identity.views_base import HeadFromGet

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def throttle(request: HttpRequest, scope: str) -> None:
    """The JSON APIs' rate limit (SPEC §2: 30 requests a minute per IP and endpoint)."""
    risk.throttle(request, scope)


# -- the base -----------------------------------------------------------------------------------------------
class JsonView(HeadFromGet, APIView):
    """JSON in, JSON out, SPEC's error shape, the JSON APIs' rate limit and ``no-store``, whatever
    the project's REST_FRAMEWORK says. No authentication of its own: a face adds what it needs
    (the Experience API the browser session and CSRF, the auth API the application or a Bearer token)."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    parser_classes = [BoundedJSONParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnly
    throttle_classes: list[Any] = []
    metadata_class = None  # no OPTIONS description: the OpenAPI schema is the description
    schema = s.ApiSchema()  # each operation's schema also documents the outage 503
    throttle_scope = "api"

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        view = super().as_view(**initkwargs)
        view.unreadable_body = unreadable_body  # type: ignore[attr-defined]  # identity.middleware's hooks
        view.temporarily_unavailable = temporarily_unavailable  # type: ignore[attr-defined]
        return view

    def get_exception_handler(self) -> Callable[..., Any]:
        return exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        throttle(request._request, self.throttle_scope)
        if request.method not in SAFE_METHODS:
            self.body()  # every unsafe request's body is JSON (or empty), whether the view reads it

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response

    def body(self) -> dict[str, Any]:
        """The JSON object sent (``{}`` for an empty body)."""
        meta = self.request.META
        length = str(meta.get("CONTENT_LENGTH") or "0")
        media_type = self.request.content_type.split(";")[0].strip().lower()
        if (not length.isdigit() or int(length) > 0) and media_type != "application/json":
            raise EngineError("unsupported_media_type")  # a form read by a middleware must not pass as empty
        data = self.request.data
        if not isinstance(data, dict):
            raise EngineError("malformed_body")
        return data

    def valid(self, serializer_class: type[drf_serializers.Serializer]) -> dict[str, Any]:
        """The body checked by ``serializer_class`` (``validation`` error otherwise)."""
        serializer = serializer_class(data=self.body())
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)


class ExperienceView(JsonView):
    """The Experience API: the browser session, with Django's CSRF check on every unsafe method."""

    authentication_classes = [CsrfSession]
    throttle_scope = "experience"

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        django_request = request._request
        if request.method in SAFE_METHODS:
            get_token(django_request)  # every GET sets the CSRF cookie
        set_csrf_cookie(django_request, response)
        return response

    def load(self, uid: str) -> Interaction:
        return engine.load(self.request._request, uid)

    def state(self, interaction: Interaction, status: int = 200) -> Response:
        return Response(engine.describe(self.request._request, interaction), status=status)


def unreadable_body(request: HttpRequest) -> HttpResponseBase:
    """A form body Django cannot read (too large, too many fields), posted to the API: a JSON 400."""
    return errors.as_json(EngineError("unsupported_media_type"))


def temporarily_unavailable(request: HttpRequest, part: str, retry_after: int) -> HttpResponseBase:
    """Redis (``part`` ``cache``) or PostgreSQL (``database``) away: ``503 temporarily_unavailable``."""
    return errors.as_json(EngineError(f"{part}_unavailable", retry_after=retry_after))


def first_factor(request: HttpRequest, interaction: Interaction, auth_type: str) -> Authenticator:
    """The application's first factor of ``auth_type`` (its policy's first, in order)."""
    authenticator = policy_for(interaction.client_id, request).first_factor_of(auth_type)
    if authenticator is None:
        raise EngineError("disabled")
    return authenticator


def second_factor(request: HttpRequest, interaction: Interaction, auth_type: str) -> Authenticator:
    """The policy's second factor of ``auth_type``."""
    for authenticator in policy_for(interaction.client_id, request).second_factors():
        if authenticator.auth_type == auth_type:
            return authenticator
    raise EngineError("disabled")


def type_fields(authenticator: Authenticator, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked by the type's own sign-in form (its rules for its fields: lengths), as on
    the hosted page; ``validation`` with ``fields`` when it refuses them."""
    form_class = authenticator.type.sign_in_form if authenticator.type is not None else None
    if form_class is None:
        return values
    form = form_class(data=values)
    if not form.is_valid():
        raise EngineError("invalid", fields={name: list(messages) for name, messages in form.errors.items()})
    return dict(form.cleaned_data)


def sent(code: SentCode) -> Response:
    return Response({"code_id": code.code_id, "timeout": code.timeout, "resend_after": code.resend_after})


def with_captcha(data: dict[str, Any], checked: dict[str, Any]) -> dict[str, Any]:
    """``checked`` plus the captcha answer, as the engine's risk checks read it (``data["captcha"]``)."""
    if "captcha" in data:
        checked["captcha"] = dict(data["captcha"])
    return checked


# -- the schema's shared parts ------------------------------------------------------------------------------------
UNSAFE_ERRORS = {
    403: s.errors_of(403, "forbidden", description="The CSRF check failed (`csrf_failed`), or the method is disabled."),
    429: s.errors_of(429, "rate_limited", description="Too many requests from this address."),
}
INTERACTION_ERRORS = {
    404: s.errors_of(404, "interaction", description="Not this browser's interaction (`not_found`)."),
    410: s.errors_of(410, "interaction", description="The interaction expired or finished (`expired`, `completed`)."),
}
STEP_400 = s.errors_of(400, "validation", "key", "captcha_answer", "sso", "requirement",
                       description="A bad body, credentials or a code that do not check out, a captcha to solve, "
                                   "single sign-on, or a step out of order (`requirement`).")
TAG = ["experience"]


def step(summary: str, request: Any = None, response: Any = s.State, description: str = "",
         errors: dict[int, Any] | None = None) -> Callable[..., Any]:
    responses = {200: response, 400: STEP_400, **INTERACTION_ERRORS, **UNSAFE_ERRORS, **(errors or {})}
    return extend_schema(summary=summary, description=description, request=request, responses=responses, tags=TAG)


# -- the endpoints ---------------------------------------------------------------------------------------------------
class StartView(ExperienceView):
    """`POST /api/experience/`: a new interaction bound to this browser session."""

    throttle_scope = "experience.start"

    @extend_schema(
        summary="Start an interaction", tags=TAG, request=s.StartRequest,
        responses={201: s.State, 400: s.errors_of(400, "validation"), **UNSAFE_ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = self.valid(s.StartRequest)
        interaction = engine.start_for(request._request, data["event"], data["next"])
        return self.state(interaction, status=201)


class StateView(ExperienceView):
    """`GET /api/experience/<id>`: the state, with the next step and the methods that meet it."""

    throttle_scope = "experience.state"

    @extend_schema(summary="The interaction's state", tags=TAG, responses={200: s.State, **INTERACTION_ERRORS})
    def get(self, request: Request, uid: str) -> Response:
        return self.state(self.load(uid))


class EventView(ExperienceView):
    """`PUT .../event`: sign in, sign up or forgot password; what was verified does not carry over."""

    throttle_scope = "experience.event"

    @step("Switch the event (sign in, sign up, forgot password)", s.EventRequest)
    def put(self, request: Request, uid: str) -> Response:
        interaction = self.load(uid)
        data = self.valid(s.EventRequest)
        engine.set_event(request._request, interaction, data["event"])
        return self.state(interaction)


class PasswordView(ExperienceView):
    """`POST .../password`: identify with the application's `password` method."""

    throttle_scope = "experience.password"

    @step("Identify with a password", s.PasswordRequest,
          description="The application's `password` method. A captcha the risk rules demanded travels in `captcha`.")
    def post(self, request: Request, uid: str) -> Response:
        interaction = self.load(uid)
        data = self.valid(s.PasswordRequest)
        authenticator = first_factor(request._request, interaction, "password")
        checked = type_fields(authenticator, {"identifier": data["identifier"], "password": data["password"]})
        engine.verify(request._request, interaction, authenticator, with_captcha(data, checked))
        return self.state(interaction)


class CodeView(ExperienceView):
    """`POST .../code`: send a one-time code."""

    throttle_scope = "experience.code"

    @step("Send a one-time code", s.CodeRequest, s.OtpCode,
          description="`email` or `phone_number`: a sign-in (or sign-up, reset) code through the application's "
                      "`email-code` / `sms-code` method; an unknown address gets the same answer. Once identified, "
                      "`channel`: a second-factor code to the user's own verified address. During the cool-down: "
                      "429 `rate_limited` with `retry_after`.",
          errors={429: s.errors_of(429, "rate_limited", description="The code's cool-down, or too many requests.")})
    def post(self, request: Request, uid: str) -> Response:
        interaction = self.load(uid)
        data = self.valid(s.CodeRequest)
        if data.get("channel"):
            send = mfa.send_second_factor_code
            return sent(send(request._request, interaction, data["channel"]))
        if data.get("email"):
            auth_type, checked = "email-code", {"email": data["email"]}
        else:
            auth_type, checked = "sms-code", {"phone_number": data["phone_number"]}
        authenticator = first_factor(request._request, interaction, auth_type)
        return sent(engine.send_code(request._request, interaction, authenticator, with_captcha(data, checked)))


class CodeVerifyView(ExperienceView):
    """`POST .../code/verify`: check a one-time code with the method that sent it."""

    throttle_scope = "experience.code-verify"

    @step("Check a one-time code", s.CodeVerifyRequest,
          description="The code is checked by the method that sent it: a first factor identifies the user (sign-up: "
                      "verifies the address), a second factor's code is added to the identified interaction. "
                      "A code of another interaction is `key.invalid_code`.")
    def post(self, request: Request, uid: str) -> Response:
        interaction = self.load(uid)
        data = self.valid(s.CodeVerifyRequest)
        engine.verify_code(request._request, interaction,
                           with_captcha(data, {"code_id": data["code_id"], "code": data["code"]}))
        return self.state(interaction)


class SecondFactorView(ExperienceView):
    """A second factor of the identified user, checked by the engine."""

    factor = ""

    def post(self, request: Request, uid: str) -> Response:
        interaction = self.load(uid)
        data = self.valid(s.OneCode)
        authenticator = second_factor(request._request, interaction, self.factor)
        engine.verify_second_factor(request._request, interaction, authenticator, {"code": data["code"]})
        return self.state(interaction)


class TotpView(SecondFactorView):
    """`POST .../totp`: a TOTP code as the second factor."""

    throttle_scope = "experience.totp"
    factor = "totp"

    @step("Check a TOTP code (second factor)", s.OneCode)
    def post(self, request: Request, uid: str) -> Response:
        return super().post(request, uid)


class BackupCodeView(SecondFactorView):
    """`POST .../backup-code`: a backup code as the second factor (single use)."""

    throttle_scope = "experience.backup-code"
    factor = "backup_code"

    @step("Use a backup code (second factor)", s.OneCode)
    def post(self, request: Request, uid: str) -> Response:
        return super().post(request, uid)


class ProfileView(ExperienceView):
    """`POST .../profile`: sign-up's values, or forgot-password's new password."""

    throttle_scope = "experience.profile"

    @step("Set profile values", s.ProfileRequest,
          description="Sign-up: the password (and the username when the sign-up identifiers include it); "
                      "forgot-password: the new password. A value a rule refuses is `400 validation` with `fields`.")
    def post(self, request: Request, uid: str) -> Response:
        interaction = self.load(uid)
        data = self.valid(s.ProfileRequest)
        engine.set_profile(request._request, interaction, data)
        return self.state(interaction)


class TotpEnrolView(ExperienceView):
    """`POST .../mfa/totp`: start a TOTP enrolment (the secret and its QR code)."""

    throttle_scope = "experience.mfa-totp"

    @step("Start a TOTP enrolment", None, s.TotpEnrolment)
    def post(self, request: Request, uid: str) -> Response:
        interaction = self.load(uid)
        return Response(mfa.start_totp(request._request, interaction))


class TotpConfirmView(ExperienceView):
    """`POST .../mfa/totp/confirm`: confirm the enrolment with a first code."""

    throttle_scope = "experience.mfa-totp-confirm"

    @step("Confirm the TOTP enrolment with a code", s.OneCode)
    def post(self, request: Request, uid: str) -> Response:
        interaction = self.load(uid)
        data = self.valid(s.OneCode)
        mfa.confirm_totp(request._request, interaction, data["code"])
        return self.state(interaction)


class BackupCodesView(ExperienceView):
    """`POST .../mfa/backup-codes`: ten backup codes, shown once."""

    throttle_scope = "experience.mfa-backup-codes"

    @step("Issue backup codes (shown once)", None, s.BackupCodes,
          description="Once a TOTP enrolment is confirmed in the interaction, or for a user signed in with a second factor.")
    def post(self, request: Request, uid: str) -> Response:
        interaction = self.load(uid)
        return Response({"codes": list(mfa.issue_backup_codes(request._request, interaction))})


class SubmitView(ExperienceView):
    """`POST .../submit`: check every gate; sign in when all are met."""

    throttle_scope = "experience.submit"

    @step("Submit: sign in when every gate is met", None, s.Redirect,
          description="`200 {\"redirect_to\"}` (the browser goes there: back to the authorization request, or `next`), "
                      "or `400 {\"requirement\": {\"code\": <gate>, \"message\", \"methods\"}}` for the first gate not met.")
    def post(self, request: Request, uid: str) -> Response:
        interaction = self.load(uid)
        completed = engine.submit(request._request, interaction)
        return Response({"redirect_to": completed.redirect_to})


class RedirectView(ExperienceView):
    """`POST .../redirect`: start the sign-in with a redirect-type authenticator (upstream, SSO)."""

    throttle_scope = "experience.redirect"

    @step("Start an upstream sign-in (redirect-type authenticator)", s.RedirectRequest, s.UpstreamUrl,
          description="Answers the upstream authorization URL; the browser goes there, and the upstream calls back "
                      "`/auth/<authenticator>/callback`, which continues this interaction (the next step's page, or "
                      "the application's own sign-in page with `?interaction=`) and ends at the client application.",
          errors={404: s.errors_of(404, "not_found", "interaction",
                                   description="Not a redirect-type method of this application (`authenticator`), or "
                                               "not this browser's interaction.")})
    def post(self, request: Request, uid: str) -> Response:
        interaction = self.load(uid)
        data = self.valid(s.RedirectRequest)
        authenticator = upstream.authenticator_of(request._request, interaction.client_id, data["authenticator"])
        return Response({"url": upstream.begin(request._request, interaction, authenticator)})


class ConfigView(ExperienceView):
    """`GET /api/experience/config?client_id=`: the public sign-in experience (SPEC §5)."""

    throttle_scope = "experience.config"

    @extend_schema(
        summary="The public sign-in experience of an application", tags=TAG,
        parameters=[OpenApiParameter("client_id", str, description="The application (empty: the default experience).")],
        responses={200: s.ExperienceConfig, 404: s.errors_of(404, "not_found", description="Unknown application.")},
    )
    def get(self, request: Request) -> Response:
        client_id = request.query_params.get("client_id", "")
        application = load_application(client_id) if client_id else None
        if client_id and application is None:
            raise EngineError("not_found")
        policy = policy_for(client_id, request._request)
        described = describe_policy(policy)
        # what the hosted pages show: the name never empty, the CSS as cleaned for a <style> element
        branding = {**described["branding"], "display_name": display_name(policy, application),
                    "custom_css": safe_css(policy.branding.custom_css)}
        methods = [{"name": a.name, "type": a.auth_type, "kind": a.type.kind if a.type else "", "title": str(a.title)}
                   for a in policy.methods()]
        return Response({"client_id": client_id or None, **described, "branding": branding, "methods": methods})


# The docs page's policy: Swagger UI's scripts and styles from this site only (no CDN, no inline script).
DOCS_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'; object-src 'none'")


class DocsView(SpectacularSwaggerSplitView):
    """``/api/docs/``: Swagger UI over ``/api/schema/``, served from drf-spectacular-sidecar's
    static files (works offline); its start script is ``?script`` on this same page."""

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_CSP
        response["X-Frame-Options"] = "DENY"
        return response
