"""Sign-up and forgot-password: the steps of ``experience.interaction`` that make or change an
account (the engine's ``set_profile``, the code verification of a sign-up and submit's account
creation call these; faces never do).

Sign-up collects its profile in ``state["profile"]`` (no account exists until submit):

- a code verification records the address it was sent to (``email`` / ``phone`` with
  ``email_verified`` / ``phone_verified``) and ``verified``;
- :func:`sign_up_profile` records ``username``, ``name`` and the password, kept only as its hash
  (``password_hash``, ``password_set``), never in plain text;
- :func:`create_account`, in submit's finishing transaction, creates the account with those values
  (the verified flags true) and drops the hash from the stored state.

An address that already has an account is told so only after its code proved that the person owns
it (``account_exists``): sending the code answers the same for every address.

Forgot-password: once a first factor (a code) identified the user, :func:`reset_password` sets the
new password, revokes every refresh and access token of the user, ends every session (Django checks
each session's password-derived hash on every request, so all of them end at once, whatever the
session backend) and tells the user by e-mail.
"""

from __future__ import annotations

import importlib
import importlib.util
import secrets
import sys
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.validators import validate_email
from django.db.models import Field
from django.utils.translation import gettext_lazy as _

from experience import audit
from experience.errors import EngineError
from experience.gates import GATES, Context, RequirementMissing
from experience.models import AuditEvent, Interaction
from experience.passwords import MAX_LENGTH, validate_password
from experience.policy import policy_for
from identity import tokens
from identity.identifiers import (
    E164,
    EMAIL,
    PHONE,
    PHONE_FIELD,
    USERNAME,
    check_available,
    clean_identifiers,
    create_user,
    normalise,
    user_fields,
)

if TYPE_CHECKING:
    from django.http import HttpRequest

    from authenticators.base import CodeAuth
    from authenticators.models import Authenticator

PROFILE_FIELDS = ("username", "email", "phone_number", "name", "password")
NAME_LENGTH = 150
VERIFY_FIRST = _("Confirm this address with a code first.")
ENTER_TEXT = _("Enter text.")
ACCOUNT_EXISTS = {
    EMAIL: _("An account with this e-mail exists. Sign in to it first."),
    PHONE: _("An account with this phone number exists. Sign in to it first."),
}
# The state a new event starts from: the request it serves and the risk rules' demand stay.
KEPT_ON_EVENT = ("authorize", "login_hint", "next", "captcha")


# -- events -------------------------------------------------------------------------------------------
def check_event(request: HttpRequest, client_id: str, event: Any) -> None:
    """Refuse an unknown event, and sign-up when the application's experience switched it off (the
    policy is only resolved for a sign-up)."""
    if event not in {value for value, _label in Interaction.EVENTS}:
        raise EngineError("invalid", fields={"event": [str(_("Choose sign_in, sign_up or forgot_password."))]})
    if event == Interaction.SIGN_UP and not policy_for(client_id, request).sign_up.enabled:
        raise EngineError("sign_up_disabled")


def state_for_event(state: dict[str, Any]) -> dict[str, Any]:
    """A switched event starts over: no user, no verification, no profile (the captcha demand stays)."""
    fresh = {key: state[key] for key in KEPT_ON_EVENT if key in state}
    return {**fresh, "user_id": None, "verifications": []}


def pending_before(ctx: Context, gate_code: str) -> None:
    """Raise the first gate before ``gate_code`` that is not met (a step asked for too early)."""
    for gate in GATES:
        if gate.code == gate_code:
            return
        requirement = gate.pending(ctx)
        if requirement is not None:
            raise RequirementMissing(requirement)


# -- sign-up ----------------------------------------------------------------------------------------
def needs_verified_address(ctx: Context) -> bool:
    """Whether sign-up starts by verifying an e-mail address or phone number by code."""
    sign_up = ctx.policy.sign_up
    return sign_up.verify and any(name in (EMAIL, PHONE) for name in sign_up.identifiers)


def address_kind(destination: str) -> str | None:
    """What a code-kind authenticator's destination is: a phone number (E.164) or an e-mail address."""
    if E164.fullmatch(destination):
        return PHONE
    if "@" in destination:
        return EMAIL
    return None


def verify_address(request: HttpRequest, ctx: Context, authenticator: Authenticator, auth: CodeAuth,
                   data: dict[str, Any]) -> str:
    """A sign-up's code: the address it was sent to is verified (recorded in the profile, no account
    yet). ``account_exists`` when an account holds the address (its owner just proved it); the
    error of the code otherwise. Answers the address's kind; the caller saves the state."""
    from authenticators.base import AuthError

    if not ctx.policy.sign_up.enabled:
        raise EngineError("sign_up_disabled")
    pending_before(ctx, "identify")
    if not authenticator.enabled:
        raise EngineError("disabled")
    try:
        destination = auth.check_code(str(data.get("code_id") or ""), str(data.get("code") or ""))
    except AuthError as error:
        audit.record(request, AuditEvent.SIGN_UP_FAILED, authenticator=authenticator.name,
                     client_id=ctx.interaction.client_id, reason=error.reason)
        raise EngineError(error.code, error.message, **error.data) from None
    kind = address_kind(destination)
    if kind is None:
        raise EngineError("unknown_authenticator")  # a code type that does not verify an address
    try:
        check_available({kind: destination})
    except ValidationError:
        audit.record(request, AuditEvent.SIGN_UP_FAILED, identifier=destination, authenticator=authenticator.name,
                     client_id=ctx.interaction.client_id, reason="account_exists")
        raise EngineError("account_exists", ACCOUNT_EXISTS[kind]) from None
    profile = dict(ctx.state.get("profile") or {})
    profile.update({kind: destination, f"{kind}_verified": True, "verified": True})
    ctx.state["profile"] = profile
    return kind


def sign_up_profile(ctx: Context, data: dict[str, Any]) -> None:
    """Check and record sign-up's ``username``, ``name``, ``password`` (and, when the policy does not
    verify addresses, ``email`` / ``phone_number``). All or nothing: ``EngineError("invalid",
    fields=...)`` leaves the state as it was. The caller saves the state."""
    if not ctx.policy.sign_up.enabled:
        raise EngineError("sign_up_disabled")
    # A verified address comes first; a sign-up by username alone is identified by its profile.
    pending_before(ctx, "profile_incomplete" if needs_verified_address(ctx) else "identify")
    profile = dict(ctx.state.get("profile") or {})
    given = {name: data[name] for name in PROFILE_FIELDS if data.get(name) not in (None, "")}
    errors: dict[str, list[str]] = {name: [str(ENTER_TEXT)] for name, value in given.items()
                                    if not isinstance(value, str)}
    changes: dict[str, Any] = {}
    for name, value in given.items():
        if name in errors or name == "password":
            continue
        try:
            changes.update(_profile_value(ctx, profile, name, value))
        except ValidationError as error:
            errors[name] = [str(message) for message in error.messages]
    password = given.get("password")
    if isinstance(password, str):
        try:
            validate_password(password, ctx.policy, {**profile, **changes})
        except EngineError as error:
            errors.update(error.data["fields"])
        else:
            changes.update(password_hash=make_password(password), password_set=True)
    if errors:
        raise EngineError("invalid", fields=errors)
    profile.update(changes)
    if not needs_verified_address(ctx) and any(profile.get(name) for name in ctx.policy.sign_up.identifiers):
        profile["verified"] = True  # nothing to verify by code: the identifier itself identifies
    ctx.state["profile"] = profile


def _profile_value(ctx: Context, profile: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    """One checked profile value as state keys; ``ValidationError`` when a rule refuses it."""
    if name == "name":
        value = value.strip()
        if len(value) > NAME_LENGTH:
            raise ValidationError(_("Use at most %(count)d characters."), params={"count": NAME_LENGTH})
        return {"name": value}
    if name == "username":
        return {"username": _clean_username(value)}
    kind = PHONE if name == PHONE_FIELD else EMAIL
    address = normalise(kind, value)
    if address == profile.get(kind):
        return {}
    if ctx.policy.sign_up.verify:
        raise ValidationError(VERIFY_FIRST)  # an address is only ever recorded once its code proved it
    if kind == EMAIL:
        validate_email(address)
    cleaned = _first_error(lambda: clean_identifiers({kind: address}))
    return {kind: cleaned[kind], f"{kind}_verified": False}


def _clean_username(value: str) -> str:
    model = get_user_model()
    username = normalise(USERNAME, value)
    field = model._meta.get_field(model.USERNAME_FIELD)
    if isinstance(field, Field):
        field.run_validators(username)  # the model's own rules (characters, length)
    return _first_error(lambda: clean_identifiers({USERNAME: username}))[USERNAME]


def _first_error(clean: Any) -> Any:
    """``clean()``, with a ``ValidationError`` keyed by field turned into the field's messages."""
    try:
        return clean()
    except ValidationError as error:
        raise ValidationError(error.messages) from None


def stored_state(state: dict[str, Any]) -> dict[str, Any]:
    """The state a finished interaction keeps: without a new password's hash or a second factor's
    pending secret."""
    kept = {key: value for key, value in state.items() if key not in ("mfa_pending", "new_password_hash")}
    profile = state.get("profile")
    if isinstance(profile, dict) and "password_hash" in profile:
        kept["profile"] = {key: value for key, value in profile.items() if key != "password_hash"}
    return kept


def create_account(request: HttpRequest, ctx: Context) -> Any:
    """The new account of a complete sign-up (in submit's transaction): its identifiers, name and
    password from the profile, its verified addresses marked verified. ``EngineError("invalid",
    fields=...)`` when an identifier was taken meanwhile (the transaction rolls back)."""
    if not ctx.policy.sign_up.enabled:
        raise EngineError("sign_up_disabled")
    profile = ctx.state.get("profile") or {}
    model = get_user_model()
    fields = user_fields(model)
    generated = not profile.get("username")
    values: dict[str, Any] = {model.USERNAME_FIELD: profile.get("username") or f"user-{secrets.token_hex(6)}"}
    if profile.get(EMAIL) and EMAIL in fields:
        values[fields[EMAIL]] = profile[EMAIL]
    if profile.get("name") and _has_field(model, "first_name"):
        values["first_name"] = profile["name"]
    extra = {"email_verified": bool(profile.get(EMAIL) and profile.get("email_verified")),
             "phone_number_verified": bool(profile.get(PHONE) and profile.get("phone_verified")),
             PHONE_FIELD: profile.get(PHONE) or None}
    try:
        user = create_user(values, password=None, profile=extra, check_script=not generated)
    except ValidationError as error:
        raise EngineError("invalid", fields={key: [str(m) for m in ms] for key, ms in error.message_dict.items()}) from None
    user.password = profile["password_hash"]
    user.save(update_fields=["password"])
    if not ctx.verifications("first"):  # nothing verified by code: the new password established it
        ctx.state.setdefault("verifications", []).append(
            {"method": "password", "authenticator": "", "factor": "first", "amr": ["pwd"], "at": int(time.time())})
    ctx.interaction.identified_user = user
    audit.record(request, AuditEvent.SIGN_UP, user=user, identifier=user.get_username(),
                 client_id=ctx.interaction.client_id)
    save_pending_mfa(ctx.interaction, user)
    Interaction.objects.filter(uid=ctx.interaction.uid).update(state=stored_state(ctx.state))
    return user


def _has_field(model: Any, name: str) -> bool:
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


# -- forgot password --------------------------------------------------------------------------------
def reset_password(request: HttpRequest, ctx: Context, data: dict[str, Any]) -> None:
    """The identified user's new password, checked and kept (as its hash) in the interaction: it
    replaces the old one only when the reset is submitted, after every later gate (a user with a
    second factor proves it first, so an e-mail alone cannot change the password). Raises the
    requirement when nobody is identified yet, ``EngineError("invalid", fields={"password": ...})``
    when the policy refuses it."""
    pending_before(ctx, "new_password_required")
    user = ctx.user
    assert user is not None  # the identify gate is met
    password = data.get("password")
    validate_password(password, ctx.policy, user)
    assert isinstance(password, str) and len(password) <= MAX_LENGTH
    ctx.state["new_password_hash"] = make_password(password)
    ctx.state["password_set"] = True
    ctx.interaction.save(update_fields=["state"])


def apply_new_password(request: HttpRequest, ctx: Context, user: Any) -> None:
    """A submitted reset (in submit's transaction): the new password replaces the old one, every
    refresh token is revoked and every other session ends (Django checks the password's hash on each
    request); the user is told by e-mail once the transaction commits."""
    user.password = ctx.state["new_password_hash"]
    user.save(update_fields=["password"])
    tokens.revoke_user_tokens(user)
    audit.record(request, AuditEvent.PASSWORD_RESET, user=user, identifier=user.get_username(),
                 client_id=ctx.interaction.client_id)
    notify_password_changed(request, user)  # sent once the transaction commits (experience.notifications)


# -- other parts' hooks (the lead wires them at merge: part codes' notifications, part mfa) ---------------
def optional_module(name: str) -> ModuleType | None:
    """``name`` when that module is installed (another part of the product provides it), else None."""
    if name in sys.modules:
        return sys.modules[name]
    return importlib.import_module(name) if importlib.util.find_spec(name) is not None else None


def notify_password_changed(request: HttpRequest, user: Any) -> None:
    """The user is told that their password changed (``experience.notifications``)."""
    notifications = optional_module("experience.notifications")
    if notifications is not None:
        notifications.password_changed(request, user)


def save_pending_mfa(interaction: Interaction, user: Any) -> None:
    """Factors enrolled during the sign-up are saved for the new account (``experience.mfa``)."""
    from experience import mfa  # mfa uses the engine, which uses this module

    mfa.save_pending(interaction, user)
