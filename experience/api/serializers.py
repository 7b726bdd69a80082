"""The Experience API's bodies and answers, as SPEC §2's table fixes them: request serializers check
the shape (types, lengths) before the engine sees anything; answer serializers describe the JSON in
the OpenAPI schema (the engine's ``describe`` makes the state itself)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, PolymorphicProxySerializer
from rest_framework import serializers

from experience.models import Interaction

EVENTS = [event for event, _label in Interaction.EVENTS]
GATES = ["captcha_required", "identify", "new_password_required", "second_factor_required", "profile_incomplete",
         "mfa_enrolment_required"]


class Text(serializers.CharField):
    """A JSON string (never a number or a boolean turned into one)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def text(max_length: int | None = None, **kwargs: Any) -> Text:
    return Text(max_length=max_length, **kwargs) if max_length is not None else Text(**kwargs)


# -- requests ------------------------------------------------------------------------------------------
class CaptchaAnswer(serializers.Serializer):
    id = text(128)
    answer = text(64, trim_whitespace=False)


class StartRequest(serializers.Serializer):
    event = serializers.ChoiceField(choices=EVENTS, default=Interaction.SIGN_IN)
    next = text(8192, required=False, allow_blank=True, default="", help_text=(
        "Where to go once signed in: a local path, or an authorization request URL on this site "
        "(`/oauth/authorize?...`), which ties the interaction to that request: submit then answers the "
        "resumed authorization URL."))


class EventRequest(serializers.Serializer):
    event = serializers.ChoiceField(choices=EVENTS)


class PasswordRequest(serializers.Serializer):
    identifier = text(help_text="E-mail address, username or phone number.")
    password = text(trim_whitespace=False)
    captcha = CaptchaAnswer(required=False)


class CodeRequest(serializers.Serializer):
    email = text(254, required=False, help_text="Send a sign-in code to this address (the `email-code` method).")
    phone_number = text(32, required=False, help_text="Send a sign-in code by SMS (the `sms-code` method), E.164.")
    channel = serializers.ChoiceField(choices=["email", "sms"], required=False, help_text=(
        "Once identified: a second-factor code to the user's own verified address."))
    captcha = CaptchaAnswer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [name for name in ("email", "phone_number", "channel") if attrs.get(name)]
        if len(given) != 1:
            raise serializers.ValidationError("Give exactly one of email, phone_number or channel.")
        return attrs


class CodeVerifyRequest(serializers.Serializer):
    code_id = text(64)
    code = text(16)
    captcha = CaptchaAnswer(required=False)


class OneCode(serializers.Serializer):
    code = text(64)


class ProfileRequest(serializers.Serializer):
    username = text(150, required=False)
    email = text(254, required=False)
    phone_number = text(32, required=False)
    name = text(300, required=False)
    password = text(4096, required=False, trim_whitespace=False)


# -- answers ---------------------------------------------------------------------------------------------
class ApplicationRef(serializers.Serializer):
    client_id = serializers.CharField()
    name = serializers.CharField()


class VerificationRef(serializers.Serializer):
    method = serializers.CharField(help_text="The authenticator type passed (`password`, `email-code`, `totp`, ...).")
    at = serializers.IntegerField(help_text="When, in seconds since the epoch.")


class State(serializers.Serializer):
    id = serializers.CharField()
    event = serializers.ChoiceField(choices=EVENTS)
    expires_at = serializers.DateTimeField()
    application = ApplicationRef(allow_null=True)
    identified = serializers.BooleanField()
    verifications = VerificationRef(many=True)
    next_step = serializers.ChoiceField(choices=[*GATES, "submit"], help_text="The first gate of submit not met.")
    methods = serializers.ListField(child=serializers.CharField(), help_text=(
        "What may meet `next_step`: authenticator names for `identify`, factors for the MFA gates "
        "(`totp`, `backup_code`, `email_code`), `captcha`, `profile`, `password`."))


class OtpCode(serializers.Serializer):
    code_id = serializers.CharField()
    timeout = serializers.IntegerField(help_text="Seconds until the code expires.")
    resend_after = serializers.IntegerField(help_text="Seconds before another code may be sent.")


class TotpEnrolment(serializers.Serializer):
    secret = serializers.CharField()
    otpauth_uri = serializers.CharField()
    qr_svg = serializers.CharField(help_text="The otpauth URI as an inline SVG QR code.")


class BackupCodes(serializers.Serializer):
    codes = serializers.ListField(child=serializers.CharField(), help_text="Shown once.")


class Redirect(serializers.Serializer):
    redirect_to = serializers.CharField(help_text=(
        "Where the browser goes now: the resumed authorization request, or the interaction's `next`."))


class Branding(serializers.Serializer):
    """What the hosted pages show (docs/config-document.md, "Branding"); "" means none / built-in."""

    display_name = serializers.CharField(help_text="The experience's display name, else the application's name.")
    logo_url = serializers.CharField(allow_blank=True, help_text="A path on this site (/media/branding/...).")
    logo_dark_url = serializers.CharField(allow_blank=True, help_text="The logo for prefers-color-scheme: dark.")
    favicon_url = serializers.CharField(allow_blank=True)
    primary_color = serializers.CharField(allow_blank=True, help_text="#rgb or #rrggbb; empty: the built-in colour.")
    primary_color_dark = serializers.CharField(allow_blank=True)
    custom_css = serializers.CharField(allow_blank=True, help_text="Cleaned as the hosted pages render it (nothing that loads or leaves <style>).")
    terms_url = serializers.CharField(allow_blank=True)
    privacy_url = serializers.CharField(allow_blank=True)
    support_email = serializers.CharField(allow_blank=True)


class Method(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()
    kind = serializers.ChoiceField(choices=["form", "code", "redirect", "second_factor"])
    title = serializers.CharField()


class SignUp(serializers.Serializer):
    enabled = serializers.BooleanField()
    identifiers = serializers.ListField(child=serializers.CharField())
    verify = serializers.BooleanField()


class PasswordRules(serializers.Serializer):
    min_length = serializers.IntegerField()
    blocklist = serializers.BooleanField()
    similarity = serializers.BooleanField()


class Mfa(serializers.Serializer):
    policy = serializers.ChoiceField(choices=["off", "optional", "required"])
    factors = serializers.ListField(child=serializers.CharField())


class Captcha(serializers.Serializer):
    policy = serializers.ChoiceField(choices=["off", "risk", "always"])


class ExperienceConfig(serializers.Serializer):
    client_id = serializers.CharField(allow_null=True)
    branding = Branding()
    language = serializers.CharField(allow_blank=True, help_text="The pages' default language; empty: the site's.")
    authenticators = serializers.ListField(child=serializers.CharField(), help_text="Method names in display order.")
    methods = Method(many=True, help_text="The same methods, in order, with their type, kind and title.")
    sign_up = SignUp()
    password_policy = PasswordRules()
    mfa = Mfa()
    captcha = Captcha()
    sign_in_url = serializers.CharField(allow_blank=True)


# -- errors (SPEC's error shape: one top-level key naming the kind) --------------------------------------
class CaptchaChallenge(serializers.Serializer):
    id = serializers.CharField()
    url = serializers.CharField()


class ErrorDetail(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable.")
    message = serializers.CharField(help_text="For people, translated.")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields.update(
            fields=serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False,
                                         help_text="`validation`: the messages of each field."),
            methods=serializers.ListField(child=serializers.CharField(), required=False,
                                          help_text="`requirement`: what meets the gate."),
            missing=serializers.ListField(child=serializers.CharField(), required=False,
                                          help_text="`requirement.profile_incomplete`: what the profile lacks."),
            retry_after=serializers.IntegerField(required=False, help_text="`rate_limited`: seconds to wait."),
            captcha=CaptchaChallenge(required=False, help_text="`captcha_answer`: the captcha to solve."),
            url=serializers.CharField(required=False, help_text="`sso`: where the sign-in continues."),
            authenticator=serializers.CharField(required=False, help_text="`sso`: the authenticator that signs this "
                                                                           "e-mail in."),
        )
        return fields


def _error_kind(kind: str, class_name: str, doc: str) -> type[serializers.Serializer]:
    return type(class_name, (serializers.Serializer,), {kind: ErrorDetail(), "__doc__": doc, "__module__": __name__})


KINDS: dict[str, type[serializers.Serializer]] = {
    "validation": _error_kind("validation", "ValidationError", "A value refused (fields), or a body that is not a JSON object."),
    "key": _error_kind("key", "KeyError", "Credentials or a code that do not check out."),
    "captcha_answer": _error_kind("captcha_answer", "CaptchaAnswerError", "A captcha must be solved (again)."),
    "sso": _error_kind("sso", "SsoError", "This account signs in through single sign-on."),
    "requirement": _error_kind("requirement", "RequirementError", "A gate of submit is not met."),
    "forbidden": _error_kind("forbidden", "ForbiddenError", "Refused: a failed CSRF check, a disabled method, an access rule."),
    "not_found": _error_kind("not_found", "NotFoundError", "No such application or method."),
    "interaction": _error_kind("interaction", "InteractionError", "The interaction is unknown (404), expired or finished (410)."),
    "rate_limited": _error_kind("rate_limited", "RateLimitedError", "Too many requests; `Retry-After` says how long to wait."),
    "unavailable": _error_kind("unavailable", "UnavailableError", "A service it needs (mail, SMS, an upstream) "
                                                                  "cannot be reached just now; try again later."),
    "temporarily_unavailable": _error_kind(
        "temporarily_unavailable", "TemporarilyUnavailableError",
        "The cache (Redis) or the database (PostgreSQL) is away: nothing was done; `Retry-After` says when to try "
        "again."),
}


# One example body of each kind (by status where a kind has more than one): every error response of
# the schema shows what it looks like.
ERROR_EXAMPLES: dict[tuple[str, int | None], dict[str, Any]] = {
    ("validation", None): {"code": "invalid", "message": "Some of the values are not valid.",
                           "fields": {"email": ["This field is required."]}},
    ("key", None): {"code": "invalid_credentials", "message": "The sign-in details are incorrect."},
    ("key", 401): {"code": "invalid_client", "message": "The application could not be authenticated."},
    ("captcha_answer", None): {"code": "required", "message": "Solve the captcha to continue.",
                               "captcha": {"id": "0f3c…", "url": "/captcha/image/0f3c…/"}},
    ("sso", None): {"code": "sso_required", "message": "Your organisation signs you in. Continue with single sign-on.",
                    "url": "/auth/acme-sso/start?…", "authenticator": "acme-sso"},
    ("requirement", None): {"code": "profile_incomplete", "message": "Complete your profile to continue.",
                            "missing": ["name"]},
    ("forbidden", None): {"code": "headless_not_allowed", "message": "This application may not use the headless API."},
    ("not_found", None): {"code": "authenticator", "message": "This sign-in method does not exist."},
    ("interaction", None): {"code": "not_found", "message": "This sign-in page has expired. Go back to the "
                                                         "application and start again."},
    ("interaction", 410): {"code": "expired", "message": "This sign-in page has expired. Go back to the "
                                                        "application and start again."},
    ("rate_limited", None): {"code": "too_many_requests", "message": "Too many attempts. Try again later.",
                             "retry_after": 42},
    ("unavailable", None): {"code": "delivery_failed", "message": "The code could not be sent just now. Try again in "
                                                                 "a few minutes."},
    ("temporarily_unavailable", None): {"code": "cache", "message": "The service is temporarily unavailable. Try "
                                                                     "again in a few seconds.", "retry_after": 5},
}

OUTAGE_DESCRIPTION = "`temporarily_unavailable`: Redis or PostgreSQL is away (`cache`, `database`); `Retry-After`."


class ApiSchema(AutoSchema):
    """Every operation of the JSON APIs may answer ``503 temporarily_unavailable`` (an outage,
    identity.middleware.UnavailableMiddleware): the schema says so for each, beside its own 503s."""

    def _get_response_bodies(self, direction: Any = "response") -> Any:
        responses = super()._get_response_bodies(direction)
        if direction == "response" and isinstance(responses, dict) and "503" not in responses:
            outage = errors_of(503, "temporarily_unavailable", description=OUTAGE_DESCRIPTION)
            responses["503"] = self._get_response_for_code(outage, "503", None, direction)
        return responses


def error_example(status: int, kind: str) -> OpenApiExample:
    value = ERROR_EXAMPLES.get((kind, status)) or ERROR_EXAMPLES[(kind, None)]
    return OpenApiExample(f"{kind}.{value['code']}", value={kind: value}, response_only=True, status_codes=[status])


def errors_of(status: int, *kinds: str, description: str = "") -> OpenApiResponse:
    """An error response of the schema: one of ``kinds``' shapes, with an example of each."""
    examples = [error_example(status, kind) for kind in kinds]
    if len(kinds) == 1:
        return OpenApiResponse(KINDS[kinds[0]], description=description, examples=examples)
    proxy = PolymorphicProxySerializer(
        component_name="Error" + "".join(kind.title().replace("_", "") for kind in kinds) + str(status),
        serializers=[KINDS[kind] for kind in kinds], resource_type_field_name=None)
    return OpenApiResponse(proxy, description=description, examples=examples)


# -- redirect-type authenticators (upstream sign-in; the third-party flow) ------------------------------------
class RedirectRequest(serializers.Serializer):
    authenticator = text(64, help_text="A redirect-type authenticator of the application's experience.")


class UpstreamUrl(serializers.Serializer):
    url = serializers.CharField(help_text="The upstream authorization URL: send the browser there.")


class AuthorizeUrlQuery(serializers.Serializer):
    client_id = text(100)
    redirect = text(2000, help_text="The front end's URL: exactly one of the application's registered redirect URIs.")
    state = text(500, required=False, default="", allow_blank=True, help_text=(
        "Optional: the front end's own value, given back with the code at `redirect` (check it there)."))


class ExchangeRequest(serializers.Serializer):
    client_id = text(100)
    code = text(512, help_text="The exchange code the callback gave the front end (60 s, single use).")
    client_secret = text(512, required=False, help_text="A confidential application's secret (or HTTP Basic).")


class TokenAnswer(serializers.Serializer):
    access_token = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField()
    refresh_token = serializers.CharField()
    scope = serializers.CharField()
    id_token = serializers.CharField(required=False, help_text="When `openid` is in scope.")
