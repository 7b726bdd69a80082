"""Redirect-type authenticators in the engine: the two legs through an upstream provider.

1. :func:`begin` (the hosted page's button or link, ``POST /api/experience/<id>/redirect``) or
   :func:`begin_for_client` (``GET /api/auth/<name>/authorize-url`` of an API client's front end)
   asks the type for the upstream URL and keeps what the callback needs in an
   :class:`~experience.models.UpstreamRedirect`: found by the SHA-256 of ``state``, single use,
   expiring with the type's ``pending_ttl``, belonging to an interaction (for an API client, one
   made for the application, with the front end's registered redirect URI).
2. :func:`finish` (``/auth/<name>/callback``) spends that record with a conditional UPDATE and
   verifies the first factor through ``experience.interaction.verify`` (as every other first
   factor: the type's ``finish`` checks the state and completes, the user is identified, the
   verification recorded, failures audited and counted). The face then submits: the gates
   (second factor, enrolment, ...) as after a password. An API client's front end instead gets an
   :func:`exchange_code` (60 s, single use, bound to the application), which :func:`redeem` trades
   for a token response at ``POST /api/auth/token``.

Failures are EngineErrors (``invalid_state``, ``upstream_error``, ``unknown_authenticator``,
``exchange_code_invalid``, the type's own); :class:`CallbackFailed` carries the record, when one
was found, so the face knows whose front end to tell.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from authenticators.base import AuthError, RedirectAuth
from authenticators.models import Authenticator
from experience import audit, headless, sso
from experience import interaction as engine
from experience.app_settings import app_settings
from experience.errors import EngineError
from experience.models import AuditEvent, ExchangeCode, Interaction, UpstreamRedirect
from experience.policy import policy_for

EXCHANGE_CODE_TTL = 60  # seconds (SPEC §4)
# What a token traded for an exchange code is for (the auth API's sign-in answers the same scopes).
MAX_STATE = 512


def digest(value: str) -> str:
    """States and exchange codes are high-entropy random strings: stored as their SHA-256 only."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


# -- which authenticator ------------------------------------------------------------------------------
def authenticator_of(request: HttpRequest, client_id: str, name: Any) -> Authenticator:
    """The enabled redirect-type authenticator ``name`` of the application's experience, or
    ``unknown_authenticator``."""
    for authenticator in sso.redirect_authenticators(policy_for(client_id, request)):
        if authenticator.name == name:
            return authenticator
    raise EngineError("unknown_authenticator")


# -- the first leg -----------------------------------------------------------------------------------------
def begin(request: HttpRequest, interaction: Interaction, authenticator: Authenticator, *,
          redirect: str = "", client_state: str = "") -> str:
    """The upstream URL that signs in with ``authenticator`` for ``interaction`` (the browser goes
    there); what the callback needs is kept server-side. The interaction's ``login_hint`` (the
    authorization request's, or the e-mail an SSO domain routed here) goes upstream."""
    if interaction.event != Interaction.SIGN_IN:  # from the sign-up page: an upstream account signs in
        engine.set_event(request, interaction, Interaction.SIGN_IN)
    auth = authenticator.get_auth(request, policy=policy_for(interaction.client_id, request), binding=interaction.uid)
    if not isinstance(auth, RedirectAuth):
        raise EngineError("unknown_authenticator")
    try:
        url, pending = auth.begin(auth.redirect_uri(request),
                                  login_hint=str(interaction.state.get("login_hint") or ""))
    except AuthError as error:
        raise engine.engine_error(error) from None
    now = timezone.now()
    state = str(pending.pop("state"))
    UpstreamRedirect.objects.create(
        digest=digest(state), authenticator=authenticator.name, interaction=interaction,
        client_id=interaction.client_id, redirect=redirect, client_state=client_state, pending=pending,
        created_at=now, expires_at=now + timedelta(seconds=auth.pending_ttl),
    )
    return url


def begin_for_client(request: HttpRequest, application: Any, name: Any, redirect: str, client_state: str = "") -> str:
    """An API client's upstream sign-in: ``redirect`` (where the callback sends the front end) must
    be exactly one of the application's registered redirect URIs. The interaction made for it
    belongs to no browser session."""
    authenticator = authenticator_of(request, application.client_id, name)
    if not redirect or redirect not in str(application.redirect_uris or "").split():
        raise EngineError("invalid", fields={"redirect": [_not_registered()]})
    now = timezone.now()
    interaction = Interaction.objects.create(
        uid=secrets.token_urlsafe(24), client_id=application.client_id,
        expires_at=now + timedelta(seconds=app_settings.INTERACTION_TTL),
        state={"authorize": "", "login_hint": "", "next": "", "user_id": None, "verifications": [], "api": True},
    )
    return begin(request, interaction, authenticator, redirect=redirect, client_state=client_state)


def _not_registered() -> str:
    from django.utils.translation import gettext

    return gettext("This is not one of the application's registered redirect URIs.")


# -- the way back ------------------------------------------------------------------------------------------
class CallbackFailed(EngineError):
    """The callback could not finish: ``error`` as the engine reports it, and the upstream sign-in
    record when one was found (an API client's front end is then told, at its redirect URI)."""

    def __init__(self, error: EngineError, record: UpstreamRedirect | None = None) -> None:
        super().__init__(error.name, error.message, **error.data)
        self.record = record


@dataclass(frozen=True)
class Finished:
    """A callback whose upstream sign-in identified the user in ``interaction``."""

    record: UpstreamRedirect
    interaction: Interaction

    @property
    def for_client(self) -> bool:
        """An API client's sign-in (its front end gets an exchange code), not a hosted page's."""
        return bool(self.record.redirect)


def spend(name: str, state: Any) -> UpstreamRedirect:
    """The upstream sign-in record of ``state`` for authenticator ``name``, spent now. Unknown,
    another authenticator's, used or expired: ``invalid_state`` (with the record when it exists)."""
    if not isinstance(state, str) or not state or len(state) > MAX_STATE:
        raise CallbackFailed(EngineError("invalid_state"))
    record = (UpstreamRedirect.objects.filter(digest=digest(state), authenticator=name)
              .select_related("interaction").first())
    if record is None:
        raise CallbackFailed(EngineError("invalid_state"))
    now = timezone.now()
    spent = UpstreamRedirect.objects.filter(pk=record.pk, consumed_at__isnull=True, expires_at__gt=now).update(
        consumed_at=now)
    if not spent:
        raise CallbackFailed(EngineError("invalid_state"), record)
    return record


def finish(request: HttpRequest, name: str, params: dict[str, Any]) -> Finished:
    """The callback ``/auth/<name>/callback`` with the upstream's ``params``: spend the pending
    record, then verify the first factor in its interaction (the type's ``finish``). Raises
    :class:`CallbackFailed`; nothing is linked or created then."""
    if not Authenticator.objects.filter(name=name).exists():
        raise CallbackFailed(EngineError("unknown_authenticator"))
    record = spend(name, params.get("state"))
    try:
        interaction = _interaction(request, record)
        authenticator = authenticator_of(request, interaction.client_id, name)
        if params.get("error"):  # the user cancelled, or the upstream refused
            audit.record(request, AuditEvent.SIGN_IN_FAILED, authenticator=name, client_id=interaction.client_id,
                         reason="upstream_error")
            raise EngineError("upstream_error")
        if interaction.event != Interaction.SIGN_IN:
            engine.set_event(request, interaction, Interaction.SIGN_IN)
        pending = {**record.pending, "state": params["state"]}
        engine.verify(request, interaction, authenticator, {"params": params, "pending": pending})
    except CallbackFailed:
        raise
    except EngineError as error:
        raise CallbackFailed(error, record) from None
    return Finished(record, interaction)


def _interaction(request: HttpRequest, record: UpstreamRedirect) -> Interaction:
    """The record's interaction: a hosted page's must be this browser's (an upstream callback
    carried to another browser signs nobody in there); an API client's must be live."""
    if not record.redirect:
        return engine.load(request, record.interaction_id)
    interaction = record.interaction
    if interaction.completed_at is not None:
        raise engine.InteractionError("completed")
    if interaction.is_expired:
        raise engine.InteractionError("expired")
    return interaction


def front_end_url(record: UpstreamRedirect, **params: str) -> str:
    """The API client's registered redirect URI with ``authenticator``, ``params`` and its own state."""
    query = {"authenticator": record.authenticator, **params}
    if record.client_state:
        query["state"] = record.client_state
    separator = "&" if urlsplit(record.redirect).query else "?"
    return f"{record.redirect}{separator}{urlencode(query)}"


# -- API clients: the exchange code -----------------------------------------------------------------------
def exchange_code(finished: Finished) -> str:
    """A single-use code for the API client's front end (60 s, bound to the application)."""
    code = secrets.token_urlsafe(32)
    now = timezone.now()
    ExchangeCode.objects.create(digest=digest(code), client_id=finished.record.client_id,
                                interaction=finished.interaction, created_at=now,
                                expires_at=now + timedelta(seconds=EXCHANGE_CODE_TTL))
    return code


def redeem(request: HttpRequest, application: Any, code: Any) -> dict[str, Any]:
    """Trade an exchange code of ``application`` for a token response (once: a conditional UPDATE
    spends it; another application's code stays unspent), or a Data2fa when the user has a second
    factor: from here on the interaction is a headless one of the application, finished at
    ``/api/authorization/check-code`` as after a password (``experience.headless``)."""
    if not isinstance(code, str) or not code or len(code) > MAX_STATE:
        raise EngineError("exchange_code_invalid")
    with transaction.atomic():
        now = timezone.now()
        spent = ExchangeCode.objects.filter(digest=digest(code), client_id=application.client_id,
                                            consumed_at__isnull=True, expires_at__gt=now).update(consumed_at=now)
        row = ExchangeCode.objects.filter(digest=digest(code)).select_related("interaction").first() if spent else None
    if row is None:
        audit.record(request, AuditEvent.SIGN_IN_FAILED, client_id=application.client_id, reason="exchange_code_invalid")
        raise EngineError("exchange_code_invalid")
    interaction = row.interaction
    # The upstream leg's rows are spent: gone, so that a Data2fa's new handle (a new key of the
    # interaction) leaves nothing pointing at the old one.
    ExchangeCode.objects.filter(interaction=interaction).delete()
    UpstreamRedirect.objects.filter(interaction=interaction).delete()
    interaction.state["headless"] = True  # the headless default scopes; the token names the first factor's authenticator
    return headless.complete(request, application, interaction, spent="exchange_code_invalid")


# -- the hosted page ------------------------------------------------------------------------------------------
def form_targets(request: HttpRequest, authenticators: list[Authenticator]) -> list[str]:
    """Upstream URLs the sign-in page's forms may end at through redirects (their origins go into
    the page's CSP ``form-action``): each button's authorization URL, made without keeping
    anything. A type that cannot make one now is left out (its button then shows the error)."""
    targets = []
    for authenticator in authenticators:
        auth = authenticator.get_auth(request)
        if not isinstance(auth, RedirectAuth):
            continue
        try:
            targets.append(auth.authorize_url(redirect_uri=auth.redirect_uri(request), state="-",
                                              nonce="-", code_verifier="-"))
        except Exception:  # noqa: BLE001  the page renders whatever an upstream type does
            continue
    return targets
