"""Errors as values: every failure the engine reports has a stable code, and this module is the one
place that knows each code's kind (SPEC's error shape), HTTP status and translated message.

The engine raises :class:`EngineError`; faces never map codes by hand:

- a JSON face answers :func:`as_json` (``{"<kind>": {"code", "message", ...data}}``);
- a page adds :func:`add_to_form` to its form (field errors for ``validation``, a form error otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.http import JsonResponse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

# The kinds, as SPEC names them, with their HTTP status.
KIND_STATUS: dict[str, int] = {
    "validation": 400,
    "key": 400,
    "captcha_answer": 400,
    "sso": 400,
    "requirement": 400,
    "forbidden": 403,
    "not_found": 404,
    "interaction": 404,
    "rate_limited": 429,
    "unavailable": 503,
    "temporarily_unavailable": 503,
}


@dataclass(frozen=True)
class ErrorSpec:
    """What a code means: its kind, the code clients see (when it differs from the table's key),
    its status (when it differs from the kind's) and its message."""

    kind: str
    message: Any
    code: str = ""
    status: int = 0


ERRORS: dict[str, ErrorSpec] = {
    # key: credentials, codes and handles that do not check out
    "invalid_credentials": ErrorSpec("key", _("The sign-in details are incorrect.")),
    "invalid_code": ErrorSpec("key", _("The code is incorrect.")),
    "code_expired": ErrorSpec("key", _("The code has expired. Ask for a new one.")),
    "attempts_exceeded": ErrorSpec("key", _("Too many wrong codes. Ask for a new one.")),
    "data_2fa_expired": ErrorSpec("key", _("The sign-in has expired. Start again.")),
    "invalid_client": ErrorSpec("key", _("The application could not be authenticated."), status=401),
    "invalid_state": ErrorSpec("key", _("This sign-in could not be completed. Start again.")),
    "account_exists": ErrorSpec("key", _("An account with this e-mail exists. Sign in to it first.")),
    # the auth API's Bearer endpoints (check, sign-out): no live access token of an allowed application
    "invalid_token": ErrorSpec("key", _("The access token is missing, expired or revoked. Sign in again."), status=401),
    # second factors (part mfa)
    "enrolment_not_started": ErrorSpec("key", _("Start setting up the authenticator app first.")),
    "already_enrolled": ErrorSpec("key", _("This second factor is already set up.")),
    "reauthentication_failed": ErrorSpec("key", _("That did not confirm it is you. Try again.")),
    # validation: a value refused by a rule
    "invalid": ErrorSpec("validation", _("Some of the values are not valid.")),
    "invalid_input": ErrorSpec("validation", _("Please fill in every field."), code="invalid"),
    "step_not_expected": ErrorSpec("validation", _("This step is not part of this sign-in."), code="invalid"),
    # captcha_answer
    "captcha_missing": ErrorSpec("captcha_answer", _("Solve the captcha to continue."), code="required"),
    "captcha_wrong": ErrorSpec("captcha_answer", _("The captcha answer is wrong. Try the new one."), code="invalid"),
    # sso: this e-mail signs in through an enterprise authenticator
    "sso_required": ErrorSpec("sso", _("Your organisation signs you in. Continue with single sign-on.")),
    # the JSON faces' requests themselves (part api): a body that is not a JSON object, a method
    # the endpoint does not have
    "unsupported_media_type": ErrorSpec("validation", _("Send the request body as JSON (Content-Type: application/json).")),
    "malformed_body": ErrorSpec("validation", _("The request body is not a valid JSON object.")),
    "body_too_large": ErrorSpec("validation", _("The request body is too large.")),
    "method_not_allowed": ErrorSpec("validation", _("This method is not allowed here."), status=405),
    "csrf_failed": ErrorSpec("forbidden", _("The request could not be verified (CSRF). Reload and try again.")),
    "forbidden": ErrorSpec("forbidden", _("This request is not allowed.")),
    # rate_limited
    "too_many_requests": ErrorSpec("rate_limited", _("Too many attempts. Try again later.")),
    # unavailable: a message could not be handed to the e-mail server or the SMS provider
    "delivery_failed": ErrorSpec("unavailable", _("The code could not be sent just now. Try again in a few minutes.")),
    # temporarily_unavailable: Redis (the cache) or PostgreSQL (the database) is away; the request did
    # nothing and may be sent again after Retry-After (identity.middleware.UnavailableMiddleware)
    "cache_unavailable": ErrorSpec("temporarily_unavailable", _("The service is temporarily unavailable. Try again "
                                                                "in a few seconds."), code="cache"),
    "database_unavailable": ErrorSpec("temporarily_unavailable", _("The service is temporarily unavailable. Try "
                                                                   "again in a few seconds."), code="database"),
    # forbidden
    "disabled": ErrorSpec("forbidden", _("This sign-in method is not available."), code="method_disabled"),
    "factor_disabled": ErrorSpec("forbidden", _("This method is disabled after too many failed attempts. Use another "
                                                "method, or ask support to enable it again."), code="method_disabled"),
    "headless_not_allowed": ErrorSpec("forbidden", _("This application may not use the headless API.")),
    "email_domain_denied": ErrorSpec("forbidden", _("Accounts of this e-mail domain may not sign in here.")),
    "ip_denied": ErrorSpec("forbidden", _("Signing in from this network is not allowed.")),
    "region_denied": ErrorSpec("forbidden", _("Signing in from this region is not allowed.")),
    "sign_up_disabled": ErrorSpec("forbidden", _("New accounts cannot be created here.")),
    # not_found
    "not_found": ErrorSpec("not_found", _("Not found.")),
    "unknown_authenticator": ErrorSpec("not_found", _("This sign-in method does not exist."), code="authenticator"),
    # interaction: the sign-in itself cannot be used
    "interaction_not_found": ErrorSpec(
        "interaction", _("This sign-in page has expired. Go back to the application and start again."), code="not_found"),
    "interaction_expired": ErrorSpec(
        "interaction", _("This sign-in page has expired. Go back to the application and start again."),
        code="expired", status=410),
    "interaction_completed": ErrorSpec(
        "interaction", _("This sign-in has already finished. Go back to the application."), code="completed", status=410),
    # requirement: submit's gates, in their order (experience.gates)
    "captcha_required": ErrorSpec("requirement", _("Solve the captcha to continue.")),
    "identify": ErrorSpec("requirement", _("Sign in to continue.")),
    "new_password_required": ErrorSpec("requirement", _("Choose a new password to continue.")),
    "second_factor_required": ErrorSpec("requirement", _("Confirm it is you with your second factor.")),
    "profile_incomplete": ErrorSpec("requirement", _("Complete your profile to continue.")),
    "mfa_enrolment_required": ErrorSpec("requirement", _("Set up a second factor to continue.")),
    # upstream sign-in (oidc)
    "upstream_error": ErrorSpec("key", _("The sign-in was cancelled or refused by the provider. Start again.")),
    "invalid_id_token": ErrorSpec("key", _("The sign-in provider's answer could not be verified. Try again.")),
    "upstream_unavailable": ErrorSpec("unavailable", _("The sign-in provider cannot be reached just now. Try again "
                                                       "in a few minutes.")),
    "exchange_code_invalid": ErrorSpec("key", _("The sign-in code is invalid, used or expired. Start the sign-in again."),
                                       code="invalid_code"),
}

UNKNOWN = ErrorSpec("key", _("The request could not be completed."))


class EngineError(Exception):
    """A failure with a stable code (a key of :data:`ERRORS`) and the data a face shows with it
    (``retry_after``, ``captcha``, ``url``, ``fields``, ...). A code the table does not know (a
    third-party authenticator's own) is a ``key`` error with the message given."""

    def __init__(self, code: str, message: Any = None, **data: Any) -> None:
        self.spec = ERRORS.get(code, UNKNOWN)
        self.name = code
        self.message = message if message is not None else self.spec.message
        self.data = data
        super().__init__(code)

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def code(self) -> str:
        """What clients see in ``code``."""
        return self.spec.code or self.name

    @property
    def status(self) -> int:
        return self.spec.status or KIND_STATUS.get(self.spec.kind, 400)

    def body(self) -> dict[str, Any]:
        """SPEC's error shape: one top-level key naming the kind."""
        return {self.kind: {"code": self.code, "message": str(self.message), **_plain(self.data)}}


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """Lazy translations and nested values as JSON-ready values."""
    def plain(value: Any) -> Any:
        if isinstance(value, Promise):
            return str(value)
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        return value

    return {key: plain(value) for key, value in data.items()}


# A 401 says how to authenticate (RFC 9110 11.6.1): the application as at the token endpoint, or a Bearer token.
CHALLENGES = {
    "invalid_client": 'Basic realm="oauth", charset="UTF-8"',
    "invalid_token": 'Bearer realm="portcullis", error="invalid_token"',
}


def as_json(error: EngineError) -> JsonResponse:
    """The JSON face's answer; ``rate_limited`` and ``temporarily_unavailable`` carry ``Retry-After``,
    a 401 its challenge."""
    response = JsonResponse(error.body(), status=error.status, headers={"Cache-Control": "no-store"})
    if error.kind in ("rate_limited", "temporarily_unavailable") and "retry_after" in error.data:
        response["Retry-After"] = str(int(error.data["retry_after"]))
    if error.name in CHALLENGES:
        response["WWW-Authenticate"] = CHALLENGES[error.name]
    return response


def add_to_form(form: forms.Form, error: EngineError) -> None:
    """A page's answer: a ``validation`` error's fields onto the form's fields (when it has them),
    everything else as the form's error."""
    fields = error.data.get("fields") if error.kind == "validation" else None
    if isinstance(fields, dict) and fields:
        for field, messages in fields.items():
            for message in messages if isinstance(messages, (list, tuple)) else [messages]:
                form.add_error(field if field in form.fields else None, str(message))
        return
    form.add_error(None, str(error.message))
