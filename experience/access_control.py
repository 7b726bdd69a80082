"""The access rules applied: where the user's device calls (the sign-in steps of every face) and
where tokens are issued (the provider's seams ``PORTCULLIS_TOKEN_CHECK`` and
``PORTCULLIS_AUTHORIZE_CHECK``), and in the admin's simulator: one :func:`evaluate` for all.

:func:`evaluate` asks the application's effective rules (``experience.access.decide``) first, then
the project's own rules in code, ``PORTCULLIS_ACCESS_RULES`` (dotted paths of
``rule(check: AccessCheck) -> Decision | None``, asked in order; the first refusal decides). A
refusal is audited (``access.denied``, the reason its code) and answered with the ``forbidden``
error of its code: the user learns the code and a neutral message, the admin the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.utils.module_loading import import_string

from experience import audit
from experience.access import ALLOWED, AccessRules, Decision, decide
from experience.errors import ERRORS, EngineError
from experience.models import AuditEvent
from experience.policy import policy_for
from identity.app_settings import setting
from identity.network import client_ip, client_region

# The forbidden codes a refusal may carry: SPEC §5's three, and the generic one for a custom rule.
CODES = ("email_domain_denied", "ip_denied", "region_denied", "forbidden")

# Where a check happens: a device signing in (pages, Experience, headless and auth APIs), the
# authorization endpoint (a signed-in user, another application), the token endpoint's grants.
SIGN_IN, AUTHORIZE, AUTHORIZATION_CODE, REFRESH_TOKEN, SIMULATE = (
    "sign_in", "authorize", "authorization_code", "refresh_token", "simulate")


@dataclass(frozen=True)
class AccessCheck:
    """What a rule is asked about. ``user`` is None before anyone is identified (and in a sign-up,
    whose account does not exist yet: ``email`` is the address being signed up); ``email`` None
    means no e-mail rule applies yet; ``device`` False means the caller is the application's server
    (the token endpoint), so ``ip`` and ``region`` are not the user's."""

    client_id: str
    rules: AccessRules
    stage: str
    user: Any = None
    email: str | None = None
    ip: str | None = None
    region: str | None = None
    device: bool = True
    request: HttpRequest | None = None


Rule = Callable[[AccessCheck], "Decision | None"]


def custom_rules() -> list[tuple[str, Rule]]:
    """``PORTCULLIS_ACCESS_RULES``: the project's rules in code, with their dotted paths."""
    paths: list[str] = list(setting("ACCESS_RULES", ()))
    return [(path, import_string(path)) for path in paths]


def email_of(user: Any) -> str:
    return str(getattr(user, "email", "") or "")


def evaluate(check: AccessCheck) -> Decision:
    """The built-in rules, then the custom ones: the first refusal, or ``ALLOWED``."""
    decision = decide(check.rules, email=check.email, ip=check.ip, region=check.region, check_device=check.device)
    if not decision.allowed:
        return decision
    for path, rule in custom_rules():
        answer = rule(check)
        if answer is not None and not answer.allowed:
            code = answer.code if answer.code in CODES else "forbidden"
            return Decision(False, code, answer.rule or path, answer.reason or f"refused by {path}")
    return ALLOWED


class AccessDenied(EngineError):
    """An access rule refused (the ``forbidden`` kind; a hosted page shows its own page for it)."""


def check_for(request: HttpRequest | None, client_id: str, stage: str, *, user: Any = None,
              email: str | None = None, device: bool = True) -> AccessCheck:
    """The check of ``request`` against ``client_id``'s effective rules (its IP and region read the
    one way, ``identity.network``)."""
    return AccessCheck(
        client_id=client_id, rules=policy_for(client_id, request).access, stage=stage, user=user, email=email,
        ip=client_ip(request) if request is not None and device else None,
        region=client_region(request) if request is not None and device else None,
        device=device, request=request)


def refused(request: HttpRequest | None, check: AccessCheck, identifier: str = "") -> Decision:
    """:func:`evaluate`, a refusal audited."""
    decision = evaluate(check)
    if not decision.allowed and request is not None:
        audit.record(request, AuditEvent.ACCESS_DENIED, user=check.user, client_id=check.client_id,
                     identifier=identifier or (check.email or ""), reason=decision.code)
    return decision


def enforce(request: HttpRequest, client_id: str, *, user: Any = None, email: str | None = None,
            identifier: str = "") -> None:
    """A sign-in step from the user's device: raise ``forbidden`` (``email_domain_denied``,
    ``ip_denied``, ``region_denied``) when a rule refuses. ``email`` None checks IP and region only
    (nobody is identified yet)."""
    decision = refused(request, check_for(request, client_id, SIGN_IN, user=user, email=email), identifier)
    if not decision.allowed:
        raise AccessDenied(decision.code)


def token_check(user: Any, application: Any, request: HttpRequest | None, grant_type: str) -> str | None:
    """``PORTCULLIS_TOKEN_CHECK``: the e-mail-domain rules (and the custom rules) at every code
    redemption and refresh. IP and region too when the caller is the user's device: a public
    client (a single-page or mobile application has no server; its token requests come from the
    device), never for a confidential client, whose server's address is not the user's. A
    refusal's description for ``invalid_grant``, or None."""
    device = getattr(application, "client_type", "") == "public"
    check = check_for(request, application.client_id, grant_type, user=user, email=email_of(user), device=device)
    decision = refused(request, check, user.get_username())
    if decision.allowed:
        return None
    return f"The application's access rules refuse this user ({decision.code})."


def authorize_check(request: HttpRequest, user: Any, application: Any) -> str | None:
    """``PORTCULLIS_AUTHORIZE_CHECK``: a signed-in user's browser asks for a code for an
    application (single sign-on needs no sign-in page): every rule, as at sign-in. The neutral
    message of the refusal's code for the error page, or None."""
    check = check_for(request, application.client_id, AUTHORIZE, user=user, email=email_of(user))
    decision = refused(request, check, user.get_username())
    return None if decision.allowed else str(ERRORS[decision.code].message)
