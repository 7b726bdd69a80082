"""Headless interactions: what the token-returning JSON APIs (the auth API verbs, the headless
Identity API) share. Faces call these; the rules themselves stay in ``experience.interaction``.

Only an application its admin marked first-party **and** headless may call these APIs (SPEC §3); a
confidential one authenticates as at the token endpoint (``identity.client_auth``).

A headless interaction is an ordinary :class:`~experience.models.Interaction` that no browser
session holds. It is bound to the application that started it (``client_id``), and it is addressed
only by an opaque **handle** (256 random bits): the row's id is the SHA-256 of the handle, so the
database never holds a usable handle. A handle is handed out only when the client needs one to go
on (a ``data_2fa`` after a first factor), and each hand-out makes a new one (:func:`rekey`), as a
browser session's key changes after each factor. A one-time code sent for a headless interaction
is bound to it, so its ``code_id`` finds the interaction (:func:`load_by_code`).

A ``data_2fa`` belongs to the application that obtained it, is single use (submit finishes the
interaction once), expires with the interaction (``PORTCULLIS_INTERACTION_TTL``) and is spent by
``PORTCULLIS_CODE_MAX_ATTEMPTS`` (5) wrong codes. Every refusal of one is the same
``key.data_2fa_expired``: unknown, another application's, finished, expired or spent.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _

from authenticators.models import Authenticator, OneTimeCode
from experience import audit, mfa
from experience import interaction as engine
from experience.completion import ApplicationToken
from experience.errors import EngineError
from experience.gates import RequirementMissing
from experience.models import AuditEvent, Interaction
from experience.policy import policy_for
from identity import client_auth
from identity.app_settings import setting
from identity.models import ApplicationSettings

DEFAULT_SCOPES = ("openid", "profile", "email")
SECOND_FACTOR = "second_factor_required"
HANDLE_MAX = 128


# -- the calling application ------------------------------------------------------------------------
def api_application(request: HttpRequest, data: Mapping[str, Any]) -> Any:
    """The calling application (``client_id`` in ``data``; HTTP Basic or ``client_secret`` for a
    confidential one). ``invalid_client`` (401) when it cannot be authenticated,
    ``headless_not_allowed`` (403) when it may not use these APIs."""
    try:
        application = client_auth.authenticate_application(request.headers.get("Authorization"), data)
    except (client_auth.InvalidClient, client_auth.TwoMethods):
        raise EngineError("invalid_client") from None
    if not headless_allowed(application):
        raise EngineError("headless_not_allowed")
    return application


def headless_allowed(application: Any) -> bool:
    """Whether ``application`` may use the headless APIs: first-party and headless."""
    settings = ApplicationSettings.for_application(application)
    return bool(settings.first_party and settings.headless_api)


def requested_scopes(application: Any, scope: str | None) -> tuple[str, ...]:
    """The scopes of the token a sign-in asks for: ``scope`` (space-separated), by default
    ``openid profile email``; each one must be a scope the provider offers the application
    (``validation`` on ``scope`` otherwise)."""
    from oauth2_provider.scopes import get_scopes_backend

    names = tuple(dict.fromkeys((scope or "").split())) or DEFAULT_SCOPES
    available = set(get_scopes_backend().get_available_scopes(application=application))
    unknown = [name for name in names if name not in available]
    if unknown:
        raise EngineError("invalid", fields={"scope": [str(_("Unknown scope: %(scopes)s.") % {"scopes": " ".join(unknown)})]})
    return names


def authenticator_named(request: HttpRequest, application: Any, name: str | None, auth_type: str = "") -> Authenticator | None:
    """The application's sign-in method called ``name`` (the ``X-Authenticator`` header). No name:
    the first method of ``auth_type`` (None when ``auth_type`` is empty too: the caller decides).
    ``unknown_authenticator`` (404) for a name no enabled authenticator has, ``disabled`` (403) for
    one the application's experience does not offer."""
    policy = policy_for(application.client_id, request)
    if name is None or name == "":
        if not auth_type:
            return None
        default = policy.first_factor_of(auth_type)
        if default is None:
            raise EngineError("disabled")
        return default
    for authenticator in policy.first_factors():
        if authenticator.name == name:
            return authenticator
    if len(name) <= 64 and name.isprintable() and Authenticator.objects.filter(name=name, enabled=True).exists():
        raise EngineError("disabled")
    raise EngineError("unknown_authenticator")


# -- handles ----------------------------------------------------------------------------------------
def uid_of(handle: str) -> str:
    """The interaction id a handle addresses (64 hexadecimal characters: never a browser one's)."""
    return hashlib.sha256(f"portcullis.headless:{handle}".encode()).hexdigest()


def _readable(handle: Any) -> bool:
    return isinstance(handle, str) and 0 < len(handle) <= HANDLE_MAX and handle.isascii() and handle.isprintable()


def start(request: HttpRequest, application: Any, event: str = Interaction.SIGN_IN, *,
          scopes: Iterable[str] = DEFAULT_SCOPES) -> Interaction:
    """A new headless interaction for ``application`` (nobody holds its handle yet)."""
    return engine.create(request, event, client_id=application.client_id, uid=uid_of(secrets.token_urlsafe(32)),
                         state={"headless": True, "scopes": list(scopes)})


def rekey(interaction: Interaction) -> str:
    """A new handle for ``interaction`` (the old one, if anyone held it, stops working)."""
    handle = secrets.token_urlsafe(32)
    new_uid = uid_of(handle)
    if not Interaction.objects.filter(uid=interaction.uid, completed_at__isnull=True).update(uid=new_uid):
        raise EngineError("data_2fa_expired")
    interaction.uid = new_uid
    return handle


def _usable(interaction: Interaction | None, application: Any) -> bool:
    return (interaction is not None and interaction.client_id == application.client_id
            and bool(interaction.state.get("headless")) and interaction.completed_at is None
            and not interaction.is_expired)


def load(application: Any, handle: Any) -> Interaction:
    """The live headless interaction ``handle`` addresses, of ``application``; else ``data_2fa_expired``."""
    interaction = Interaction.objects.filter(uid=uid_of(handle)).first() if _readable(handle) else None
    if interaction is None or not _usable(interaction, application):
        raise EngineError("data_2fa_expired")
    return interaction


def load_by_code(request: HttpRequest, application: Any, code_id: str, event: str) -> Interaction:
    """The live headless interaction of ``application`` and ``event`` that the code ``code_id`` was
    sent for; ``invalid_code`` otherwise (as a wrong code: nothing is revealed)."""
    binding = None
    if _readable(code_id) and len(code_id) <= 64:
        binding = OneTimeCode.objects.filter(code_id=code_id).values_list("binding", flat=True).first()
    interaction = Interaction.objects.filter(uid=binding).first() if binding else None
    if interaction is None or not _usable(interaction, application) or interaction.event != event:
        audit.record(request, AuditEvent.SIGN_IN_FAILED, client_id=application.client_id, reason="unknown_code_id")
        raise EngineError("invalid_code")
    return interaction


def owner_of(*, handle: Any = None, code_id: Any = None) -> str:
    """The ``client_id`` of the live headless interaction a Data2fa ``handle`` or a ``code_id``
    leads to ("" for none): how a request that left ``client_id`` out is named. The application is
    still authenticated as any other (a confidential one proves its secret)."""
    uid = None
    if handle is not None and _readable(handle):
        uid = uid_of(handle)
    elif code_id is not None and _readable(code_id) and len(code_id) <= 64:
        uid = OneTimeCode.objects.filter(code_id=code_id).values_list("binding", flat=True).first()
    if not uid:
        return ""
    owner = Interaction.objects.filter(uid=uid, completed_at__isnull=True).values_list("client_id", flat=True).first()
    return owner or ""


def seconds_left(interaction: Interaction) -> int:
    return max(0, math.ceil((interaction.expires_at - timezone.now()).total_seconds()))


def data_2fa(interaction: Interaction, methods: Iterable[str]) -> dict[str, Any]:
    """SPEC's Data2fa for an interaction waiting for its second factor (a new handle each time)."""
    return {"data_2fa": rekey(interaction), "timeout": seconds_left(interaction), "methods": list(methods)}


# -- the steps ----------------------------------------------------------------------------------------
def complete(request: HttpRequest, application: Any, interaction: Interaction, *, authenticator: str = "",
             spent: str = "data_2fa_expired") -> dict[str, Any]:
    """Submit: a UserToken (the token response) when every gate is met, a Data2fa when only the
    second factor is missing; any other gate is raised (``requirement``). An interaction a
    parallel request finished (or spent) meanwhile answers ``spent``: the handle the client holds
    is used up."""
    scopes = tuple(interaction.state.get("scopes") or DEFAULT_SCOPES)
    try:
        completed = engine.submit(request, interaction, ApplicationToken(application, scopes, authenticator))
    except engine.InteractionError:
        raise EngineError(spent) from None
    except RequirementMissing as missing:
        interaction.save(update_fields=["state"])
        if missing.gate == SECOND_FACTOR:
            return data_2fa(interaction, missing.requirement.methods)
        raise
    assert completed.token is not None
    return completed.token


def sign_in(request: HttpRequest, application: Any, authenticator: Authenticator, data: dict[str, Any],
            scopes: Iterable[str]) -> dict[str, Any]:
    """A one-step sign-in (a form type: identifier and password): UserToken or Data2fa."""
    interaction = start(request, application, scopes=scopes)
    try:
        engine.verify(request, interaction, authenticator, data, save=False)
    except EngineError:
        Interaction.objects.filter(uid=interaction.uid).delete()  # nobody can ever address it: no litter
        raise
    return complete(request, application, interaction)


def sign_in_with_code(request: HttpRequest, application: Any, authenticator: Authenticator | None,
                      data: dict[str, Any], scopes: Iterable[str]) -> dict[str, Any]:
    """The second step of a code sign-in (``code_id``, ``code`` from :func:`send_code`): checked by
    ``authenticator`` when the client named one, else by the one that sent it."""
    interaction = load_by_code(request, application, data.get("code_id", ""), Interaction.SIGN_IN)
    interaction.state["scopes"] = list(scopes)
    if authenticator is None:
        authenticator = engine.code_authenticator(request, interaction, data.get("code_id"))
    engine.verify(request, interaction, authenticator, data, save=False)
    return complete(request, application, interaction, spent="invalid_code")


def send_code(request: HttpRequest, application: Any, authenticator: Authenticator, data: dict[str, Any],
              event: str = Interaction.SIGN_IN) -> Any:
    """A one-time code for a new headless interaction of ``event`` (sign-in or sign-up): its
    ``code_id`` leads to the interaction. The same answer for an address without an account."""
    interaction = start(request, application, event)
    return engine.send_code(request, interaction, authenticator, data)


def send_second_factor_code(request: HttpRequest, application: Any, handle: Any, channel: str = "email") -> Any:
    """A second-factor code to the user of a Data2fa (their own verified address)."""
    return mfa.send_second_factor_code(request, load(application, handle), channel)


def second_factor_for(request: HttpRequest, interaction: Interaction, method: str | None) -> Authenticator:
    """The second factor ``method`` names (by default TOTP when the user has it, else the first the
    Data2fa listed); ``validation`` on ``method`` for one the user cannot use here."""
    ctx = engine.context(request, interaction)
    factors = ctx.second_factors
    if method is None:
        by_type = {a.auth_type: a for a in factors}
        chosen = by_type.get("totp") or next((a for a in factors if a.auth_type != "email_code"), None)
    else:
        chosen = next((a for a in factors if a.auth_type == method), None)
    if chosen is None:
        raise EngineError("invalid", fields={"method": [str(_("This second factor cannot be used here."))]})
    return chosen


def check_code(request: HttpRequest, application: Any, handle: Any, data: dict[str, Any],
               method: str | None = None) -> dict[str, Any]:
    """Finish a Data2fa with a second factor's code: a UserToken. A wrong code counts against the
    Data2fa; the fifth spends it (``attempts_exceeded``, then ``data_2fa_expired``)."""
    interaction = load(application, handle)
    if not engine.context(request, interaction).verifications("first"):
        raise EngineError("data_2fa_expired")
    authenticator = second_factor_for(request, interaction, method)
    try:
        engine.verify_second_factor(request, interaction, authenticator, data)
    except EngineError as error:
        if error.kind == "key" and wrong_code(interaction):
            raise EngineError("attempts_exceeded") from None
        raise
    return complete(request, application, interaction)


def wrong_code(interaction: Interaction) -> bool:
    """Count a wrong code against the interaction; answers whether it is now spent. One that a
    parallel request finished (or spent) meanwhile is ``data_2fa_expired``, as any used Data2fa."""
    limit = int(setting("CODE_MAX_ATTEMPTS", 5))
    with transaction.atomic():
        row = Interaction.objects.select_for_update().filter(uid=interaction.uid, completed_at__isnull=True).first()
        if row is None:
            raise EngineError("data_2fa_expired")
        failures = int(row.state.get("failures") or 0) + 1
        row.state["failures"] = failures
        fields = ["state"]
        if failures >= limit:
            row.completed_at = timezone.now()
            fields.append("completed_at")
        row.save(update_fields=fields)
    return failures >= limit


# -- sign-up --------------------------------------------------------------------------------------------
def _code_digest(code_id: str, code: str) -> str:
    return salted_hmac("portcullis.headless.sign-up", f"{code_id}:{code.strip()}", algorithm="sha256").hexdigest()


def sign_up(request: HttpRequest, application: Any, authenticator: Authenticator | None, code: dict[str, Any] | None,
            profile: dict[str, Any], scopes: Iterable[str]) -> dict[str, Any]:
    """Create an account and answer its UserToken.

    With ``code`` (``code_id`` and ``code`` of a sign-up code from :func:`send_code`): the code
    verifies the address it was sent to, then ``profile`` (password, username, name) completes the
    account. When a rule refuses the profile, the verified address stays with the interaction: the
    same request with the same code may be sent again with other values until the interaction
    expires. Without ``code``: a sign-up the experience does not verify by code (by username, or
    with ``verify`` off); otherwise the ``identify`` requirement says a code is needed."""
    if code is None:
        interaction = start(request, application, Interaction.SIGN_UP, scopes=scopes)
    else:
        interaction = load_by_code(request, application, code.get("code_id", ""), Interaction.SIGN_UP)
        interaction.state["scopes"] = list(scopes)
        verify_sign_up_code(request, interaction, authenticator, code)
    engine.set_profile(request, interaction, profile)
    return complete(request, application, interaction, authenticator=authenticator.name if authenticator else "",
                    spent="invalid_code")


def verify_sign_up_code(request: HttpRequest, interaction: Interaction, authenticator: Authenticator | None,
                        code: dict[str, Any]) -> None:
    """The sign-up's code, once: a retry of the same request (same ``code_id`` and ``code``) finds
    the address it verified already."""
    digest = _code_digest(str(code.get("code_id", "")), str(code.get("code", "")))
    verified = (interaction.state.get("profile") or {}).get("verified")
    if verified and hmac.compare_digest(str(interaction.state.get("sign_up_code", "")), digest):
        return
    sender = engine.code_authenticator(request, interaction, code.get("code_id"))
    if authenticator is not None and authenticator.pk != sender.pk:
        raise EngineError("invalid_code")  # a code of another method: as a wrong code
    engine.verify(request, interaction, sender, dict(code), save=False)
    interaction.state["sign_up_code"] = digest
    interaction.save(update_fields=["state"])
