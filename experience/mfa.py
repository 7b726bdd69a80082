"""Second factors in the engine (part mfa): enrolment during an interaction, the second-factor code
by e-mail, the enrolments of a sign-up saved once the account exists, and the account page's
management of a signed-in user's factors.

Checking a second factor is :func:`experience.interaction.verify_second_factor`; this module sets
factors up. Its rules, for every face:

- Enrolment needs the gates up to the second factor met: the user is identified (sign-up: the
  identifier is verified) and, when they already have a second factor, has passed it; so nobody
  with only a password adds a factor in place of the one they cannot pass.
- ``start_totp`` keeps a new secret in ``state["mfa_pending"]`` (sealed like stored secrets);
  ``confirm_totp`` checks a code of it (at most one step off, 5 tries) and then, in a sign-in, the
  device is saved at once; in a sign-up it waits in the state until :func:`save_pending` (called by
  submit once it created the account). Confirming proves the app: it counts as this interaction's
  second factor. ``state["mfa_enrolled"]`` lists the factors set up in the interaction.
- ``issue_backup_codes`` once a TOTP enrolment is confirmed in the interaction, or once the user
  passed a second factor in it (SPEC §2); the codes are answered once and only their HMACs kept.
- The account page removes a factor and regenerates backup codes only within
  ``PORTCULLIS_REAUTH_TTL`` seconds (300) of a re-authentication: the password again, or a current
  second factor. Five failed re-authentications sign the session out.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from authenticators import factors
from authenticators.base import AuthError, SecondFactorAuth, SentCode
from authenticators.models import Authenticator, BackupCode, SecondFactorState
from authenticators.types import backup_code, email_factor, totp
from experience import audit
from experience import interaction as engine
from experience.errors import EngineError
from experience.gates import Context, IdentifyGate, RequirementMissing, SecondFactorGate
from experience.models import AuditEvent, Interaction
from experience.policy import Policy, policy_for
from identity import authentication
from identity.app_settings import setting

PENDING = "mfa_pending"
ENROLLED = "mfa_enrolled"
CONFIRM_ATTEMPTS = 5
ACCOUNT_SETUP_KEY = "portcullis_mfa_setup"
REAUTH_KEY = "portcullis_reauth"
REAUTH_FAILURES_KEY = "portcullis_reauth_failures"
REAUTH_ATTEMPTS = 5  # failed re-authentications before the session is signed out
TOTP, BACKUP_CODE, EMAIL_CODE = "totp", "backup_code", "email_code"

__all__ = [
    "account_confirm_totp", "account_factors", "account_start_totp", "confirm_totp", "issue_backup_codes",
    "pending_totp", "reauthenticate", "recently_reauthenticated", "regenerate_backup_codes", "remove_factor",
    "remove_factors", "reset_factors", "save_pending", "send_second_factor_code", "start_totp",
]


# -- helpers -----------------------------------------------------------------------------------------
def factor_authenticator(policy: Policy, auth_type: str) -> Authenticator:
    """The enabled authenticator of ``auth_type`` the policy allows, or ``disabled``."""
    for authenticator in policy.second_factors():
        if authenticator.auth_type == auth_type:
            return authenticator
    raise EngineError("disabled")


def enrolment_context(request: HttpRequest, interaction: Interaction) -> Context:
    """The interaction's context when a factor may be set up in it (identified, and past the second
    factor the user already has); else the requirement that is not met."""
    ctx = engine.context(request, interaction)
    for gate in (IdentifyGate(), SecondFactorGate()):
        requirement = gate.pending(ctx)
        if requirement is not None:
            raise RequirementMissing(requirement)
    return ctx


def _label(ctx: Context) -> str:
    user = ctx.user
    if user is not None:
        return str(user.get_username())
    profile = ctx.state.get("profile") or {}
    return str(profile.get("email") or profile.get("username") or profile.get("phone") or "")


def totp_setup(key: bytes, label: str) -> dict[str, Any]:
    """What a face shows to set up ``key``: the secret as text, the otpauth URI and its QR code as
    inline SVG (made here: no external service)."""
    import qrcode
    import qrcode.image.svg

    issuer = str(setting("TOTP_ISSUER", "Portcullis"))
    uri = factors.otpauth_uri(key, label=label or issuer, issuer=issuer)
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    svg = image.to_string(encoding="unicode")
    svg = svg[svg.index("<svg"):]
    return {"secret": factors.b32_secret(key).replace(" ", ""), "otpauth_uri": uri, "qr_svg": svg}


def _enrolled(state: dict[str, Any], factor: str) -> None:
    enrolled = state.setdefault(ENROLLED, [])
    if factor not in enrolled:
        enrolled.append(factor)


def _create_device(user: Any, sealed_key: str, last_t: int) -> Any:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.create(user=user, name="Authenticator app", key=sealed_key, confirmed=True,
                                     last_t=last_t, tolerance=1)


def _locked_state(interaction: Interaction) -> dict[str, Any]:
    """The interaction's state as stored, its row locked (call inside a transaction)."""
    row = Interaction.objects.select_for_update().get(uid=interaction.uid)
    interaction.state = row.state
    return interaction.state


def _save(interaction: Interaction) -> None:
    Interaction.objects.filter(uid=interaction.uid).update(state=interaction.state)


# -- enrolment in an interaction --------------------------------------------------------------------
def start_totp(request: HttpRequest, interaction: Interaction) -> dict[str, Any]:
    """Begin setting up an authenticator app: a new secret, kept (sealed) in the interaction until
    it is confirmed. Answers ``{"secret", "otpauth_uri", "qr_svg"}``."""
    ctx = enrolment_context(request, interaction)
    factor_authenticator(ctx.policy, TOTP)
    if ctx.user is not None and totp.device_of(ctx.user) is not None:
        raise EngineError("already_enrolled")
    key = factors.new_totp_key()
    with transaction.atomic():
        state = _locked_state(interaction)
        state.setdefault(PENDING, {})[TOTP] = {"key": factors.seal(key), "attempts": 0, "confirmed": False}
        _save(interaction)
    return totp_setup(key, _label(ctx))


def pending_totp(request: HttpRequest, interaction: Interaction) -> dict[str, Any] | None:
    """The setup of the TOTP enrolment in progress (to show it again), or None."""
    pending = (interaction.state.get(PENDING) or {}).get(TOTP)
    if not pending or pending.get("confirmed"):
        return None
    try:
        key = factors.unseal(pending["key"])
    except (KeyError, ValueError):
        return None
    return totp_setup(key, _label(engine.context(request, interaction)))


def confirm_totp(request: HttpRequest, interaction: Interaction, code: str) -> None:
    """Check a code of the pending secret. A sign-in saves the device at once; a sign-up keeps it
    for :func:`save_pending`. Either way it counts as this interaction's second factor."""
    ctx = enrolment_context(request, interaction)
    authenticator = factor_authenticator(ctx.policy, TOTP)
    user = ctx.user
    failure = ""
    with transaction.atomic():
        state = _locked_state(interaction)
        pending = (state.get(PENDING) or {}).get(TOTP)
        if not pending or pending.get("confirmed"):
            failure = "enrolment_not_started"
        elif user is not None and totp.device_of(user) is not None:
            failure = "already_enrolled"
        else:
            try:
                key = factors.unseal(pending["key"])
            except ValueError:
                key = b""
            counter = factors.match_totp(key, code, last_t=-1) if key else None
            if counter is None:
                pending["attempts"] = int(pending.get("attempts", 0)) + 1
                failure = "invalid_code"
                if pending["attempts"] >= CONFIRM_ATTEMPTS:
                    state[PENDING].pop(TOTP, None)  # start again with a new secret
                    failure = "attempts_exceeded"
            elif user is not None:
                _create_device(user, pending["key"], counter)
                state[PENDING].pop(TOTP, None)
            else:
                pending.update(confirmed=True, last_t=counter)
            if not failure:
                _enrolled(state, TOTP)
                engine.record_verification(request, interaction, authenticator, ["otp"], "second")
        _save(interaction)
    if failure:
        if failure in ("invalid_code", "attempts_exceeded"):
            audit.record(request, AuditEvent.MFA_FAILED, user=user, identifier=_label(ctx),
                         authenticator=authenticator.name, client_id=interaction.client_id, reason="enrolment")
        raise EngineError(failure)
    audit.record(request, AuditEvent.MFA_ADDED, user=user, identifier=_label(ctx), authenticator=authenticator.name,
                 client_id=interaction.client_id, reason="" if user is not None else "pending_sign_up")


def issue_backup_codes(request: HttpRequest, interaction: Interaction) -> list[str]:
    """Ten new backup codes, answered once: after a TOTP enrolment confirmed in this interaction,
    or once the user passed a second factor in it. They replace the user's earlier codes."""
    ctx = enrolment_context(request, interaction)
    authenticator = factor_authenticator(ctx.policy, BACKUP_CODE)
    if TOTP not in ctx.state.get(ENROLLED, []) and not (ctx.user is not None and ctx.verifications("second")):
        raise EngineError("enrolment_not_started")
    user = ctx.user
    with transaction.atomic():
        state = _locked_state(interaction)
        if user is not None:
            codes = backup_code.replace_codes(user)
        else:
            codes = [factors.new_backup_code() for _ in range(factors.BACKUP_CODE_COUNT)]
            state.setdefault(PENDING, {})[BACKUP_CODE] = [factors.backup_digest(code) for code in codes]
        _enrolled(state, BACKUP_CODE)
        _save(interaction)
    audit.record(request, AuditEvent.MFA_ADDED, user=user, identifier=_label(ctx), authenticator=authenticator.name,
                 client_id=interaction.client_id, reason="" if user is not None else "pending_sign_up")
    return codes


def save_pending(interaction: Interaction, user: Any) -> None:
    """Sign-up's submit, once it created ``user``: the factors set up before the account existed
    become the account's (the pending secrets leave the state, which the caller then stores)."""
    pending = interaction.state.get(PENDING) or {}
    added = []
    with transaction.atomic():
        setup = pending.get(TOTP)
        if setup and setup.get("confirmed") and totp.device_of(user) is None:
            _create_device(user, setup["key"], int(setup.get("last_t", -1)))
            added.append(TOTP)
        digests = pending.get(BACKUP_CODE)
        if isinstance(digests, list) and digests:
            backup_code.replace_codes(user, [str(digest) for digest in digests])
            added.append(BACKUP_CODE)
        interaction.state.pop(PENDING, None)  # the caller (submit) stores the state
        names = dict(Authenticator.objects.filter(auth_type__in=added).values_list("auth_type", "name"))
        AuditEvent.objects.bulk_create(
            AuditEvent(kind=AuditEvent.MFA_ADDED, user=user, identifier=user.get_username()[:254],
                       authenticator=names.get(factor, factor), client_id=interaction.client_id) for factor in added)


def send_second_factor_code(request: HttpRequest, interaction: Interaction, channel: str = "email") -> SentCode:
    """A second-factor code to the identified user's own verified address (``channel`` ``email``;
    the e-mail-code factor must be one the user may use: beside another factor, never alone)."""
    ctx = engine.context(request, interaction)
    requirement = IdentifyGate().pending(ctx)
    if requirement is not None or ctx.user is None:
        raise RequirementMissing(requirement or engine.identify_requirement(ctx))
    if channel not in ("email", EMAIL_CODE):
        raise EngineError("disabled")
    authenticator = factor_authenticator(ctx.policy, EMAIL_CODE)
    auth = authenticator.get_auth(request, policy=ctx.policy, binding=interaction.uid)
    if not isinstance(auth, email_factor.EmailFactorAuth):
        raise EngineError("unknown_authenticator")
    try:
        return auth.send_code_to(ctx.user)
    except AuthError as error:
        raise engine.engine_error(error) from None


# -- the account page: a signed-in user's factors --------------------------------------------------------
def account_policy(request: HttpRequest) -> Policy:
    return policy_for("", request)


def account_factors(request: HttpRequest, user: Any) -> list[dict[str, Any]]:
    """The second factors the default experience allows, and the user's state of each."""
    policy = account_policy(request)
    disabled = set(SecondFactorState.objects.filter(user=user, disabled_at__isnull=False)
                   .values_list("authenticator_id", flat=True))
    rows = []
    for authenticator in policy.second_factors():
        auth = authenticator.get_auth(request, policy=policy)
        if not isinstance(auth, SecondFactorAuth):
            continue
        row: dict[str, Any] = {"authenticator": authenticator, "auth_type": authenticator.auth_type,
                               "enrolled": auth.enrolled(user), "disabled": authenticator.pk in disabled,
                               "removable": authenticator.auth_type in (TOTP, BACKUP_CODE)}
        if authenticator.auth_type == BACKUP_CODE:
            row["unused"] = backup_code.unused_codes(user)
        if authenticator.auth_type == EMAIL_CODE:
            row["email"] = email_factor.verified_email(user)
        rows.append(row)
    return rows


def account_start_totp(request: HttpRequest, user: Any) -> dict[str, Any]:
    """Begin adding an authenticator app on the account page (the secret waits in the session)."""
    factor_authenticator(account_policy(request), TOTP)
    if totp.device_of(user) is not None:
        raise EngineError("already_enrolled")
    pending = request.session.get(ACCOUNT_SETUP_KEY)
    key = b""
    if isinstance(pending, dict) and pending.get("uid") == str(user.pk):
        try:
            key = factors.unseal(str(pending.get("key", "")))
        except ValueError:
            key = b""
    if not key:
        key = factors.new_totp_key()
        request.session[ACCOUNT_SETUP_KEY] = {"uid": str(user.pk), "key": factors.seal(key), "attempts": 0}
    return totp_setup(key, str(user.get_username()))


def account_confirm_totp(request: HttpRequest, user: Any, code: str) -> None:
    authenticator = factor_authenticator(account_policy(request), TOTP)
    pending = request.session.get(ACCOUNT_SETUP_KEY)
    if not isinstance(pending, dict) or pending.get("uid") != str(user.pk):
        raise EngineError("enrolment_not_started")
    try:
        key = factors.unseal(str(pending.get("key", "")))
    except ValueError:
        request.session.pop(ACCOUNT_SETUP_KEY, None)
        raise EngineError("enrolment_not_started") from None
    counter = factors.match_totp(key, code, last_t=-1)
    if counter is None:
        pending["attempts"] = int(pending.get("attempts", 0)) + 1
        audit.record(request, AuditEvent.MFA_FAILED, user=user, identifier=user.get_username(),
                     authenticator=authenticator.name, reason="enrolment")
        if pending["attempts"] >= CONFIRM_ATTEMPTS:
            request.session.pop(ACCOUNT_SETUP_KEY, None)
            raise EngineError("attempts_exceeded")
        request.session[ACCOUNT_SETUP_KEY] = pending
        raise EngineError("invalid_code")
    with transaction.atomic():
        if totp.device_of(user, lock=True) is not None:
            raise EngineError("already_enrolled")
        _create_device(user, str(pending["key"]), counter)
    request.session.pop(ACCOUNT_SETUP_KEY, None)
    audit.record(request, AuditEvent.MFA_ADDED, user=user, identifier=user.get_username(),
                 authenticator=authenticator.name)


def reauth_ttl() -> int:
    return int(setting("REAUTH_TTL", 300))


def recently_reauthenticated(request: HttpRequest, user: Any) -> bool:
    mark = request.session.get(REAUTH_KEY)
    return (isinstance(mark, dict) and mark.get("uid") == str(user.pk)
            and time.time() - float(mark.get("at", 0)) <= reauth_ttl())


def reauthenticate(request: HttpRequest, user: Any, method: str, data: dict[str, Any]) -> None:
    """Confirm it is still ``user``: ``method`` ``password`` (``data["password"]``) or the name of
    one of the user's second factors (its data). Raises ``reauthentication_failed``."""
    ok = False
    authenticator_name = method
    if method == "password":
        password = data.get("password")
        ok = isinstance(password, str) and bool(password) and user.has_usable_password() and user.check_password(password)
    else:
        policy = account_policy(request)
        authenticator = next((a for a in policy.second_factors() if a.name == method), None)
        if authenticator is None:
            raise EngineError("reauthentication_failed")
        auth = authenticator.get_auth(request, policy=policy, binding=f"reauth:{request.session.session_key or ''}")
        try:
            if isinstance(auth, SecondFactorAuth):
                auth.verify(user, data)
                ok = True
        except AuthError as error:
            if error.code == "factor_disabled":
                raise engine.engine_error(error) from None
    if not ok:
        audit.record(request, AuditEvent.MFA_FAILED, user=user, identifier=user.get_username(),
                     authenticator=authenticator_name, reason="reauthentication")
        failures = int(request.session.get(REAUTH_FAILURES_KEY, 0)) + 1
        request.session[REAUTH_FAILURES_KEY] = failures
        if failures >= REAUTH_ATTEMPTS:  # a stolen session cannot guess the password for long
            authentication.sign_out(request)
        raise EngineError("reauthentication_failed")
    request.session.pop(REAUTH_FAILURES_KEY, None)
    request.session[REAUTH_KEY] = {"uid": str(user.pk), "at": time.time()}


def _require_reauthentication(request: HttpRequest, user: Any) -> None:
    if not recently_reauthenticated(request, user):
        raise EngineError("reauthentication_failed")


def remove_factor(request: HttpRequest, user: Any, auth_type: str) -> None:
    """Remove the user's authenticator app or backup codes (after a re-authentication)."""
    _require_reauthentication(request, user)
    if auth_type not in (TOTP, BACKUP_CODE):
        raise EngineError("disabled")
    remove_factors(request, user, [auth_type])


def remove_factors(request: HttpRequest, user: Any, auth_types: list[str], *, device: Any = None,
                   reason: str = "") -> list[str]:
    """Remove the user's second factors of ``auth_types`` (``totp``: their authenticator apps, or only
    ``device``; ``backup_code``: all their codes) with the failure state of each, and record one
    ``mfa.removed`` per factor that was set up; the types removed. Used by the account page (after a
    re-authentication) and by the admin (:func:`reset_factors`)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    removed_types = []
    with transaction.atomic():
        for auth_type in auth_types:
            if auth_type == TOTP:
                devices = TOTPDevice.objects.filter(user=user)
                removed, _ = (devices.filter(pk=device.pk) if device is not None else devices).delete()
                gone = not TOTPDevice.objects.filter(user=user).exists()  # else another app stays, with its state
            elif auth_type == BACKUP_CODE:
                removed, _ = BackupCode.objects.filter(user=user).delete()
                gone = True
            else:
                continue
            if gone:
                SecondFactorState.objects.filter(user=user, authenticator__auth_type=auth_type).delete()
            if removed:
                removed_types.append(auth_type)
                _log_removed(request, user, auth_type, reason)
    return removed_types


def _log_removed(request: HttpRequest, user: Any, auth_type: str, reason: str) -> None:
    authenticator = Authenticator.objects.filter(auth_type=auth_type).order_by("sort_order", "pk").first()
    audit.record(request, AuditEvent.MFA_REMOVED, user=user, identifier=user.get_username(),
                 authenticator=authenticator.name if authenticator else auth_type, reason=reason)


def reset_factors(request: HttpRequest, user: Any) -> list[str]:
    """An administrator's "reset MFA": every second factor of the user goes (authenticator apps,
    backup codes, and every factor's failure state, so a factor disabled by failures is enabled
    again), so their next sign-in asks for none; an experience that requires two-factor has them
    enrol again during it. The e-mail code needs another factor beside it, so it goes with them."""
    removed = remove_factors(request, user, [TOTP, BACKUP_CODE], reason="admin")
    SecondFactorState.objects.filter(user=user).delete()
    return removed


def backup_codes_need_reauthentication(request: HttpRequest, user: Any) -> bool:
    """Replacing codes that still work needs a re-authentication; making the first ones does not."""
    return backup_code.unused_codes(user) > 0 and not recently_reauthenticated(request, user)


def regenerate_backup_codes(request: HttpRequest, user: Any) -> list[str]:
    """New backup codes for a signed-in user who has an authenticator app or codes; replacing codes
    that still work needs a re-authentication. The old ones stop working."""
    if backup_codes_need_reauthentication(request, user):
        raise EngineError("reauthentication_failed")
    if totp.device_of(user) is None and not BackupCode.objects.filter(user=user).exists():
        raise EngineError("enrolment_not_started")
    authenticator = factor_authenticator(account_policy(request), BACKUP_CODE)
    codes = backup_code.replace_codes(user)
    audit.record(request, AuditEvent.MFA_ADDED, user=user, identifier=user.get_username(),
                 authenticator=authenticator.name, reason="regenerated")
    return codes


def signed_in_user(request: HttpRequest) -> Any | None:
    """The user signed in through Portcullis (the provider's view), or None."""
    return request.user if authentication.current(request) is not None else None

