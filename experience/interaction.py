"""The interaction engine: every face (hosted pages, Experience API, headless API) calls these
functions; the rules live here once.

An interaction is created when the provider needs the user to sign in. Steps *identify* the user
and *record verifications* (a first factor identifies, a second factor is added to an identified
interaction); :func:`submit` checks the gates (``experience.gates``) in their fixed order and, when
all are met, completes the interaction with a strategy (``experience.completion``): a browser
session for the hosted pages and the Experience API, a token response for the headless APIs.

Failures are :class:`~experience.errors.EngineError` values with stable codes; faces render them
with ``experience.errors`` and map nothing by hand.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.db import router, transaction
from django.http import HttpRequest, QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _

from authenticators.base import AuthError, CodeAuth, RedirectAuth, SecondFactorAuth, SentCode
from authenticators.models import Authenticator, OneTimeCode
from experience import access_control, accounts, audit, risk, sso
from experience.app_settings import app_settings
from experience.completion import BrowserSession, Completed, Completion, safe_next
from experience.errors import EngineError
from experience.gates import Context, Requirement, RequirementMissing, identify_requirement, next_requirement
from experience.models import AuditEvent, Interaction
from experience.policy import policy_for
from identity import later
from identity.prepared import PreparedLookup, set_if_null

SESSION_KEY = sso.SESSION_KEY  # this browser's interactions, in its session

__all__ = [
    "Completed", "EngineError", "InteractionError", "RequirementMissing", "begin_authorization", "code_authenticator",
    "context", "create", "describe", "identify", "load", "record_verification", "resumable", "safe_next", "send_code", "set_event", "set_profile",
    "sign_in", "sign_in_page", "start", "start_for", "submit", "verify", "verify_code", "verify_second_factor",
]


class InteractionError(EngineError):
    """The interaction cannot be used: unknown, not this browser's, expired or finished."""

    def __init__(self, code: str) -> None:
        super().__init__(f"interaction_{code}")


# -- lifecycle ------------------------------------------------------------------------------------
def start(request: HttpRequest, event: str = Interaction.SIGN_IN, *, authorize_params: str = "",
          client_id: str = "", login_hint: str = "", next_url: str = "") -> Interaction:
    """A new interaction, bound to this browser session. Refuses an unknown event and a sign-up the
    experience switched off."""
    login_hint, next_url = printable(login_hint)[:254], printable(next_url)[:2000]
    interaction = create(request, event, client_id=client_id,
                         state={"authorize": authorize_params, "login_hint": login_hint, "next": next_url})
    if request.session.session_key is None:
        request.session.save()
    owned = [uid for uid in request.session.get(SESSION_KEY, []) if uid != interaction.uid]
    request.session[SESSION_KEY] = (owned + [interaction.uid])[-app_settings.INTERACTIONS_PER_SESSION:]
    return interaction


def create(request: HttpRequest, event: str, *, client_id: str = "", uid: str = "",
           state: dict[str, Any] | None = None) -> Interaction:
    """A new interaction bound to nothing yet (:func:`start` binds it to the browser session, the
    headless API to an opaque handle: ``experience.headless``). Refuses an unknown event and a
    sign-up the experience switched off."""
    accounts.check_event(request, client_id, event)
    return Interaction.objects.create(
        uid=uid or secrets.token_urlsafe(24),
        event=event,
        client_id=client_id,
        expires_at=timezone.now() + timedelta(seconds=app_settings.INTERACTION_TTL),
        state={**(state or {}), "user_id": None, "verifications": []},
    )


def printable(value: str) -> str:
    """Without control characters (a NUL cannot even be stored in PostgreSQL text)."""
    return "".join(ch for ch in value if ch.isprintable())


def begin_authorization(request: HttpRequest, authorize_params: str, application: Any, login_hint: str) -> str:
    """The provider's sign-in handler: the URL where this browser signs in for the request. A
    browser that already passed the first factor for this very request (its live interaction is
    still unfinished) resumes there, at the step it still needs (e.g. the second factor); otherwise
    a new interaction starts at the sign-in page. No code is ever issued here: only ``submit``,
    once every gate is met, finishes an interaction."""
    resumed = resumable(request, authorize_params, application.client_id)
    if resumed is not None:
        from experience import steps  # the pages' map (steps imports this module)

        interaction, requirement = resumed
        if is_local_path(policy_for(interaction.client_id, request).sign_in_url):
            return sign_in_page(request, interaction)  # the custom page reads next_step itself
        return steps.step_url(interaction, requirement.code)
    interaction = start(request, authorize_params=authorize_params, client_id=application.client_id,
                        login_hint=login_hint)
    return sign_in_page(request, interaction)


def same_request(first: str, second: str) -> bool:
    """Two authorization requests' parameters are the same request (in any order)."""
    return sorted(QueryDict(first).lists()) == sorted(QueryDict(second).lists())


def resumable(request: HttpRequest, authorize_params: str,
              client_id: str) -> tuple[Interaction, Requirement] | None:
    """This browser's newest live, unfinished interaction for the same authorization request in
    which a user passed the first factor, with the gate it still needs; None when there is none
    (or nothing is left to do but submit, which only a step does)."""
    owned = request.session.get(SESSION_KEY, [])
    if not owned or not authorize_params:
        return None
    candidates = {row.uid: row for row in Interaction.objects.filter(
        uid__in=owned, client_id=client_id, completed_at__isnull=True, expires_at__gt=timezone.now())}
    for uid in reversed(owned):
        interaction = candidates.get(uid)
        if interaction is None or not same_request(interaction.state.get("authorize", ""), authorize_params):
            continue
        ctx = context(request, interaction)
        if ctx.user is None or not ctx.verifications("first"):
            return None  # the newest try for this request has no user yet: a fresh sign-in
        requirement = next_requirement(ctx)
        return (interaction, requirement) if requirement is not None else None
    return None


def sign_in_page(request: HttpRequest, interaction: Interaction) -> str:
    """Where the browser signs in: the application's own sign-in page (its policy's ``sign_in_url``, a
    path on this site, over the Experience API) with ``?interaction=<id>``, else the hosted page."""
    custom = policy_for(interaction.client_id, request).sign_in_url
    if is_local_path(custom):
        separator = "&" if "?" in custom else "?"
        return f"{custom}{separator}{urlencode({'interaction': interaction.uid})}"
    return reverse("experience:sign-in", args=[interaction.uid])


def is_local_path(url: str) -> bool:
    """A path on this site (``/...``): never another host, scheme-relative or not."""
    return (bool(url) and url.startswith("/") and not url.startswith("//") and "\\" not in url
            and printable(url) == url and url_has_allowed_host_and_scheme(url, allowed_hosts=set()))


def start_for(request: HttpRequest, event: str, next_url: str = "") -> Interaction:
    """An interaction the Experience API starts: ``next_url`` is where to go once signed in (a local
    path), or an authorization request URL on this site, which ties the interaction to that request
    (submit then answers the resumed authorization URL). Raises EngineError for an unknown
    application."""
    from identity.applications import load_application
    from identity.authentication import RESUME_PARAM

    split = urlsplit(next_url)
    on_site = url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()},
                                              require_https=request.is_secure())
    if not (next_url and on_site and split.path == reverse("identity:authorize")):
        return start(request, event, next_url=next_url)
    params = QueryDict(split.query, mutable=True)
    application = load_application(params.get("client_id", ""))
    if application is None:
        raise EngineError("invalid", fields={"next": [_("The application is unknown.")]})
    params.pop(RESUME_PARAM, None)  # a resume marker is the provider's own, never the client's
    return start(request, event, authorize_params=params.urlencode(), client_id=application.client_id,
                 login_hint=params.get("login_hint", ""))


_interactions = PreparedLookup(lambda uid: Interaction.objects.filter(uid=uid))  # every step loads one


def load(request: HttpRequest, uid: str) -> Interaction:
    """This browser's live interaction ``uid``, or InteractionError."""
    if uid not in request.session.get(SESSION_KEY, []):
        raise InteractionError("not_found")
    interaction = _interactions.get(uid, router.db_for_read(Interaction))
    if interaction is None:
        raise InteractionError("not_found")
    if interaction.completed_at is not None:
        raise InteractionError("completed")
    if interaction.is_expired:
        raise InteractionError("expired")
    return interaction


def context(request: HttpRequest, interaction: Interaction) -> Context:
    """The gates' view of ``interaction`` in this request, with the application's policy."""
    return Context(request, interaction, policy_for(interaction.client_id, request))


def restart_url(interaction: Interaction | None) -> str:
    """Where a user whose interaction expired can start over."""
    if interaction is not None and interaction.state.get("authorize"):
        return f"{reverse('identity:authorize')}?{interaction.state['authorize']}"
    return reverse("experience:sign-in-start")


# -- steps ------------------------------------------------------------------------------------------
def _auth(request: HttpRequest, interaction: Interaction, authenticator: Authenticator) -> Any:
    return authenticator.get_auth(request, policy=policy_for(interaction.client_id, request), binding=interaction.uid)


def _failed(request: HttpRequest, interaction: Interaction, authenticator: Authenticator, error: AuthError,
            identifier: str = "", kind: str = AuditEvent.SIGN_IN_FAILED, user: Any = None) -> EngineError:
    """Audit a failed step; the error as the engine reports it."""
    if kind == AuditEvent.SIGN_IN_FAILED and authenticator.type is not None and authenticator.type.kind == "code":
        kind = AuditEvent.CODE_FAILED
    audit.record(request, kind, user=user, identifier=identifier, authenticator=authenticator.name,
                 client_id=interaction.client_id, reason=error.reason)
    return engine_error(error)


def engine_error(error: AuthError) -> EngineError:
    """A type's failure as the engine reports it (its code, its own message if any, its data)."""
    return EngineError(error.code, error.message, **error.data)


def identify(interaction: Interaction, user: Any) -> None:
    """The interaction is now about ``user`` (another account's verifications do not carry over)."""
    state = interaction.state
    if state.get("user_id") not in (None, str(user.pk)):
        state["verifications"] = []
    state["user_id"] = str(user.pk)
    interaction.identified_user = user


def record_verification(request: HttpRequest, interaction: Interaction, authenticator: Authenticator,
                        amr: list[str], factor: str, *, cycle_session: bool = True) -> None:
    """Remember that the user passed ``authenticator`` (a ``first`` or ``second`` factor) now. The
    browser session's key changes after each factor (SECURITY.md): a key seen before the factor
    (fixed by an attacker, or leaked) no longer reaches the interaction; the session's data (this
    browser's interactions) carries over. A request without a browser session (a headless API)
    gets none made for it. ``cycle_session=False``: the caller changes the key itself (see
    :func:`sign_in`)."""
    interaction.state.setdefault("verifications", []).append({
        "method": authenticator.auth_type, "authenticator": authenticator.name, "factor": factor,
        "amr": list(amr), "at": int(time.time()),
    })
    if cycle_session:
        cycle_session_key(request)


def cycle_session_key(request: HttpRequest) -> None:
    """A new key for the request's browser session, its data kept (none is made for a request without one)."""
    session = getattr(request, "session", None)
    if session is not None and session.session_key is not None:
        session.cycle_key()


def verify(request: HttpRequest, interaction: Interaction, authenticator: Authenticator, data: dict[str, Any],
           *, save: bool = True, cycle_session: bool = True) -> Any:
    """Run a first factor (a form, a code, a redirect's callback data); on success the user is
    identified and the verification recorded (``save=False`` leaves writing the state to the
    caller, e.g. :func:`sign_in`'s submit; ``cycle_session=False`` leaves changing the session's key
    to it too). In a sign-up, a code verifies the address it was sent to instead (no account exists
    yet: None). Raises EngineError."""
    if authenticator.type is None or not authenticator.type.is_first_factor:
        raise EngineError("unknown_authenticator")
    identifier = str(data.get("identifier") or data.get("email") or data.get("phone_number") or "")
    access_control.enforce(request, interaction.client_id, identifier=identifier)  # IP, region: before any secret is checked
    if authenticator.type.kind != "redirect":
        sso.route(request, interaction, identifier)  # an SSO domain's e-mail signs in upstream only
    risk.guard(request, interaction, identifier, data)  # lockout, captcha (experience.risk)
    auth = _auth(request, interaction, authenticator)
    if interaction.event == Interaction.SIGN_UP:
        return _verify_new_address(request, interaction, authenticator, auth, data, save=save,
                                   cycle_session=cycle_session)
    try:
        # a redirect's callback: the state checked against what is pending, then the type completes
        if isinstance(auth, RedirectAuth):
            params = data.get("params")
            user = auth.finish(params if isinstance(params, dict) else {}, data.get("pending"))
        else:
            user = auth.sign_in(data)
    except AuthError as error:
        if error.code not in risk.NOT_COUNTED:
            risk.failed(request, identifier, interaction)
        raise _failed(request, interaction, authenticator, error, identifier) from None
    access_control.enforce(request, interaction.client_id, user=user, email=access_control.email_of(user),
                           identifier=identifier)  # the account's e-mail domain, before it is identified
    identify(interaction, user)
    record_verification(request, interaction, authenticator, auth.amr(), "first", cycle_session=cycle_session)
    if save:
        interaction.save(update_fields=["state"])
    return user


def _verify_new_address(request: HttpRequest, interaction: Interaction, authenticator: Authenticator, auth: Any,
                        data: dict[str, Any], *, save: bool, cycle_session: bool) -> None:
    """Sign-up: a code verifies the address it was sent to; no account is identified (none exists yet)."""
    if not isinstance(auth, CodeAuth):
        raise EngineError("unknown_authenticator")  # sign-up verifies an address, it signs nobody in
    accounts.verify_address(request, context(request, interaction), authenticator, auth, data)
    record_verification(request, interaction, authenticator, auth.amr(), "first", cycle_session=cycle_session)
    if save:
        interaction.save(update_fields=["state"])


def set_event(request: HttpRequest, interaction: Interaction, event: str) -> None:
    """Switch the interaction to ``event`` (``sign_in``, ``sign_up``, ``forgot_password``): a new
    event starts over (no user, verifications or profile; a demanded captcha stays). Refuses an
    unknown event and a sign-up the experience switched off."""
    accounts.check_event(request, interaction.client_id, event)
    if event == interaction.event:
        return
    interaction.event = event
    interaction.state = accounts.state_for_event(interaction.state)
    interaction.identified_user = None
    interaction.save(update_fields=["event", "state"])


def set_profile(request: HttpRequest, interaction: Interaction, data: dict[str, Any]) -> None:
    """Sign-up: record ``username``, ``name``, ``password`` (checked, all or nothing); forgot-password:
    save the identified user's new ``password`` (every session and token of the user ends). Raises
    the requirement not met yet, or ``EngineError("invalid", fields=...)``; the interaction is then
    unchanged."""
    ctx = context(request, interaction)
    if interaction.event == Interaction.FORGOT_PASSWORD:
        accounts.reset_password(request, ctx, data)
        return
    if interaction.event != Interaction.SIGN_UP:
        raise EngineError("step_not_expected")
    accounts.sign_up_profile(ctx, data)  # writes the state only once every value checked out
    interaction.save(update_fields=["state"])


def verify_second_factor(request: HttpRequest, interaction: Interaction, authenticator: Authenticator,
                         data: dict[str, Any]) -> None:
    """Check a second factor of the identified user and record it. Raises EngineError."""
    ctx = context(request, interaction)
    user = ctx.user
    if user is None or not ctx.verifications("first"):
        raise RequirementMissing(identify_requirement(ctx))
    auth = _auth(request, interaction, authenticator)
    if not isinstance(auth, SecondFactorAuth) or authenticator.auth_type not in ctx.policy.mfa.factors:
        raise EngineError("unknown_authenticator")
    risk.check_lockout(request, user=user)  # a locked account guesses no second factor either
    try:
        auth.verify(user, data)
    except AuthError as error:
        if error.code not in risk.NOT_COUNTED:
            risk.failed(request, user=user, client_id=interaction.client_id)  # counts for the account
        raise _failed(request, interaction, authenticator, error, user.get_username(), AuditEvent.MFA_FAILED,
                      user) from None
    record_verification(request, interaction, authenticator, auth.amr(), "second")
    interaction.save(update_fields=["state"])
    audit.record(request, AuditEvent.MFA_USED, user=user, identifier=user.get_username(),
                 authenticator=authenticator.name, client_id=interaction.client_id)


def send_code(request: HttpRequest, interaction: Interaction, authenticator: Authenticator,
              data: dict[str, Any]) -> SentCode:
    """Send a one-time code through a code-kind authenticator, bound to this interaction."""
    auth = _auth(request, interaction, authenticator)
    if not isinstance(auth, CodeAuth):
        raise EngineError("unknown_authenticator")
    if interaction.event == Interaction.SIGN_UP:
        accounts.check_event(request, interaction.client_id, interaction.event)
    auth.purpose = interaction.event  # sign-up's code goes to a new address too (the answer is the same)
    address = str(data.get("email") or data.get("phone_number") or "")
    # IP and region, and a typed e-mail address's domain: no code goes where it cannot be used
    access_control.enforce(request, interaction.client_id, email=address if "@" in address else None,
                           identifier=address)
    sso.route(request, interaction, address)  # an SSO domain's e-mail gets no code: it signs in upstream
    demanded = interaction.state.get("captcha")
    risk.guard(request, interaction, address, data)
    if interaction.state.get("captcha") != demanded:  # a captcha solved here (its key is spent) meets the gate
        interaction.save(update_fields=["state"])
    try:
        sent = auth.send_code(data)
    except AuthError as error:
        audit.record(request, AuditEvent.CODE_FAILED, identifier=address, authenticator=authenticator.name,
                     client_id=interaction.client_id, reason=error.reason)
        raise engine_error(error) from None
    audit.record(request, AuditEvent.CODE_SENT, user=auth.recipient, identifier=address, authenticator=authenticator.name,
                 client_id=interaction.client_id, reason="" if auth.recipient is not None else "no_account")
    return sent


def code_authenticator(request: HttpRequest, interaction: Interaction, code_id: Any) -> Authenticator:
    """The authenticator that sent the one-time code ``code_id`` for this interaction; a code of
    another interaction (or none) is ``invalid_code``, as a wrong code is."""
    row = None
    if isinstance(code_id, str) and 0 < len(code_id) <= 64:
        row = OneTimeCode.objects.filter(code_id=code_id, binding=interaction.uid).select_related("authenticator").first()
    if row is None or not row.authenticator.enabled or row.authenticator.type is None:
        audit.record(request, AuditEvent.SIGN_IN_FAILED, client_id=interaction.client_id, reason="unknown_code_id")
        raise EngineError("invalid_code")
    return row.authenticator


def verify_code(request: HttpRequest, interaction: Interaction, data: dict[str, Any]) -> None:
    """Check a one-time code (``{"code_id", "code"}``) with the authenticator that sent it: a first
    factor identifies, a second factor's code is added to the identified interaction."""
    authenticator = code_authenticator(request, interaction, data.get("code_id"))
    assert authenticator.type is not None  # code_authenticator refuses unregistered types
    if authenticator.type.is_first_factor:
        verify(request, interaction, authenticator, data)
    else:
        verify_second_factor(request, interaction, authenticator, data)


def sign_in(request: HttpRequest, interaction: Interaction, authenticator: Authenticator,
            data: dict[str, Any], completion: Completion | None = None) -> Completed:
    """One step that verifies and submits: what a sign-in form does. Raises like both; when a gate
    after ``identify`` is not met the verification is kept (the face shows the next step).

    The session's key changes once: a completion that signs the browser in changes it (Django's
    ``login``), and the factor's own change would only be replaced a moment later (two new session
    rows instead of one); when the sign-in stops at a later gate, fails, or completes without
    changing the key, it changes here, as :func:`verify` does on its own."""
    verify(request, interaction, authenticator, data, save=False, cycle_session=False)
    session = getattr(request, "session", None)
    key = session.session_key if session is not None else None
    try:
        completed = submit(request, interaction, completion)
    except RequirementMissing:
        cycle_session_key(request)
        interaction.save(update_fields=["state"])
        raise
    except BaseException:
        cycle_session_key(request)
        raise
    if session is not None and session.session_key == key:  # a completion that left the browser's key as it was
        cycle_session_key(request)
    return completed


def submit(request: HttpRequest, interaction: Interaction, completion: Completion | None = None) -> Completed:
    """Check every gate in order; when all are met, finish the interaction (once, even under
    parallel submits) and complete it with ``completion`` (a browser session by default).
    Raises RequirementMissing with the first gate not met, or InteractionError."""
    ctx = context(request, interaction)
    requirement = next_requirement(ctx)
    if requirement is not None:
        raise RequirementMissing(requirement)
    user = ctx.user
    # Every rule once more, as they are now (a rule changed since the first factor; sign-up's address)
    email = access_control.email_of(user) if user is not None else str((ctx.state.get("profile") or {}).get("email") or "")
    access_control.enforce(request, interaction.client_id, user=user, email=email,
                           identifier=user.get_username() if user is not None else email)
    # The sign-in's writes that nothing reads back (the sessions' rows, last_login, the device, the
    # audit events) in one statement when the block ends, on PostgreSQL (identity.later).
    with transaction.atomic(), later.together():
        if not set_if_null(Interaction, interaction.uid, "completed_at", timezone.now(),
                           also={"state": accounts.stored_state(interaction.state)}):
            raise InteractionError("completed")
        if interaction.event == Interaction.SIGN_UP:
            user = accounts.create_account(request, ctx)  # rolled back with the completion if refused
        assert user is not None  # the identify gate is met
        if interaction.event == Interaction.FORGOT_PASSWORD:
            accounts.apply_new_password(request, ctx, user)
        completed = (completion or BrowserSession()).complete(ctx, user, *authentication_methods(ctx))
        verifications = interaction.state["verifications"]
        audit.record(request, AuditEvent.SIGN_IN_SUCCEEDED, user=user, identifier=user.get_username(),
                     authenticator=verifications[0]["authenticator"] if verifications else "",
                     client_id=interaction.client_id)  # in the sign-in's transaction: one commit
    return completed


def authentication_methods(ctx: Context) -> tuple[list[str], str]:
    """``amr`` (RFC 8176) and ``acr`` of the verifications passed: ``mfa`` and the two-factor acr
    once a second factor is among them."""
    from identity.app_settings import app_settings as identity_settings

    amr = {method for verification in ctx.state.get("verifications", []) for method in verification["amr"]}
    if ctx.verifications("second"):
        return sorted(amr | {"mfa"}), identity_settings.ACR_MFA
    return sorted(amr), identity_settings.ACR_PASSWORD


def describe(request: HttpRequest, interaction: Interaction) -> dict[str, Any]:
    """The interaction as the Experience API shows it (SPEC §2's state)."""
    from identity.applications import load_application

    ctx = context(request, interaction)
    requirement = next_requirement(ctx)
    application = load_application(interaction.client_id) if interaction.client_id else None
    return {
        "id": interaction.uid,
        "event": interaction.event,
        "expires_at": interaction.expires_at.isoformat(),
        "application": {"client_id": application.client_id, "name": application.name} if application else None,
        "identified": ctx.user is not None,
        "verifications": [{"method": v["method"], "at": v["at"]} for v in interaction.state.get("verifications", [])],
        "next_step": requirement.code if requirement else "submit",
        "methods": list(requirement.methods) if requirement else [],
    }
