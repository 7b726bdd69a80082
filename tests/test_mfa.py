"""Second factors in the engine (part mfa): TOTP accepted once within one step, on the user's own
device under a row lock; backup codes of 80 bits, hashed, single use; an e-mail code never the only
factor; 100 consecutive failures disable a factor; enrolment during sign-in and sign-up; secrets
sealed when the deployment gives a key. Races run in threads (on PostgreSQL with DATABASE_URL)."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core import mail
from django.test import RequestFactory
from django_otp.plugins.otp_totp.models import TOTPDevice

from authenticators import factors
from authenticators.models import Authenticator, BackupCode, OneTimeCode, SecondFactorState
from authenticators.types import backup_code
from experience import interaction as engine
from experience import mfa
from experience.errors import EngineError
from experience.gates import RequirementMissing
from experience.models import AuditEvent, Interaction
from tests.helpers import PASSWORD, TOTP_KEY, entropy_bits, give_totp, run_together, totp_now

pytestmark = pytest.mark.django_db


def browser_request() -> Any:
    request = RequestFactory().post("/sign-in/x/", HTTP_USER_AGENT="pytest")
    request.session = SessionStore()
    request.user = AnonymousUser()
    return request


def after_password(identifier: str = "alice") -> tuple[Any, Interaction]:
    """A new interaction in which the password passed (the first factor only)."""
    request = browser_request()
    interaction = engine.start(request)
    engine.verify(request, interaction, Authenticator.objects.get(name="password"),
                  {"identifier": identifier, "password": PASSWORD})
    return request, interaction


def second(request: Any, interaction: Interaction, name: str, **data: str) -> None:
    engine.verify_second_factor(request, interaction, Authenticator.objects.get(name=name), data)


def key_of(setup: dict[str, Any]) -> bytes:
    """The key an enrolment shows as text (base32, as typed into an app)."""
    secret = setup["secret"]
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


def error_of(call: Any) -> EngineError:
    with pytest.raises(EngineError) as raised:
        call()
    return raised.value


# -- TOTP ------------------------------------------------------------------------------------------------
def test_a_totp_code_passes_as_second_factor_and_the_id_token_amr_says_mfa(totp_user):
    request, interaction = after_password()
    with pytest.raises(RequirementMissing) as missing:
        engine.submit(request, interaction)
    assert missing.value.gate == "second_factor_required"
    assert missing.value.data["methods"] == ["totp", "email_code"]  # e-mail only beside the app
    second(request, interaction, "totp", code=totp_now())
    engine.submit(request, interaction)
    auth = request.session["portcullis_auth"]
    assert auth["amr"] == ["mfa", "otp", "pwd"] and auth["acr"] == "urn:portcullis:acr:2fa"


def test_a_totp_code_is_accepted_once(totp_user):
    code = totp_now()
    request, interaction = after_password()
    second(request, interaction, "totp", code=code)
    request, interaction = after_password()
    replay = error_of(lambda: second(request, interaction, "totp", code=code))
    assert (replay.kind, replay.code) == ("key", "invalid_code")
    interaction.refresh_from_db()
    assert [v["factor"] for v in interaction.state["verifications"]] == ["first"]


def test_an_older_code_is_refused_once_a_newer_one_was_used(totp_user):
    request, interaction = after_password()
    second(request, interaction, "totp", code=totp_now(steps_ahead=1))
    request, interaction = after_password()
    assert error_of(lambda: second(request, interaction, "totp", code=totp_now())).code == "invalid_code"


@pytest.mark.parametrize(("steps", "accepted"), [(-2, False), (-1, True), (1, True), (2, False)])
def test_the_tolerance_is_at_most_one_step(totp_user, steps, accepted, monkeypatch):
    import time

    now = (time.time() // 30) * 30 + 15  # the middle of a time step: the server's clock, frozen
    counter = factors.totp_counter
    monkeypatch.setattr(factors, "totp_counter", lambda step=30, t0=0: counter(step, t0, now))
    TOTPDevice.objects.filter(user=totp_user).update(tolerance=5)  # even when the row allows more
    request, interaction = after_password()
    code = totp_now(steps_ahead=steps, at=now)
    if accepted:
        second(request, interaction, "totp", code=code)
    else:
        assert error_of(lambda: second(request, interaction, "totp", code=code)).code == "invalid_code"


def test_only_the_users_own_device_is_checked(totp_user, django_user_model):
    other = django_user_model.objects.create_user("mallory", "mallory@example.com", PASSWORD)
    other_key = bytes(20)
    give_totp(other, other_key)
    request, interaction = after_password()
    assert error_of(lambda: second(request, interaction, "totp", code=totp_now(other_key))).code == "invalid_code"
    device = TOTPDevice.objects.get(user=other)
    assert error_of(lambda: second(request, interaction, "totp", code=totp_now(), device=str(device.pk))).code == "invalid_code"
    # A failure counts against this user's TOTP only: nothing of the other user or of other factors.
    assert list(SecondFactorState.objects.values_list("user__username", "authenticator__name", "failures")) == [
        ("alice", "totp", 2)]


def test_junk_codes_are_refused_without_an_error(totp_user):
    request, interaction = after_password()
    for junk in ["", "12345", "1234567", "abcdef", "１２３４５６", "1" * 5000, None, ["123456"], {"a": 1}]:
        assert error_of(lambda junk=junk: second(request, interaction, "totp", code=junk)).code == "invalid_code"


@pytest.mark.django_db(transaction=True)
def test_parallel_uses_of_one_totp_code_succeed_once(user, second_factors):
    give_totp(user)
    code = totp_now()
    attempts = []
    for _ in range(8):
        attempts.append(after_password())

    def use(index: int) -> str:
        request, interaction = attempts[index]
        try:
            second(request, interaction, "totp", code=code)
        except EngineError as error:
            return error.code
        return "ok"

    results = run_together(8, use)
    assert sorted(map(str, results)) == ["invalid_code"] * 7 + ["ok"], results
    assert SecondFactorState.objects.get(user=user, authenticator__name="totp").failures == 7


# -- 100 consecutive failures disable a factor --------------------------------------------------------------
def test_100_consecutive_failures_disable_the_factor_but_not_the_requirement(totp_user, settings):
    backup_codes = backup_code.replace_codes(totp_user)
    totp = Authenticator.objects.get(name="totp")
    auth = totp.get_auth(None)
    from authenticators.base import AuthError

    for _ in range(99):
        with pytest.raises(AuthError):
            auth.verify(totp_user, {"code": "000000" if totp_now() != "000000" else "111111"})
    assert SecondFactorState.objects.get(user=totp_user, authenticator=totp).disabled_at is None
    with pytest.raises(AuthError):
        auth.verify(totp_user, {"code": "000000" if totp_now() != "000000" else "111111"})  # the 100th
    request, interaction = after_password()
    locked = error_of(lambda: second(request, interaction, "totp", code=totp_now()))
    assert (locked.kind, locked.code, locked.status) == ("forbidden", "method_disabled", 403)
    # Failing cannot switch MFA off: the sign-in still needs a second factor, another one works.
    with pytest.raises(RequirementMissing) as missing:
        engine.submit(request, interaction)
    assert missing.value.gate == "second_factor_required"
    second(request, interaction, "backup_code", code=backup_codes[0])
    engine.submit(request, interaction)
    # An administrator enables it again.
    SecondFactorState.objects.filter(user=totp_user, authenticator=totp).update(disabled_at=None, failures=0)
    request, interaction = after_password()
    second(request, interaction, "totp", code=totp_now())


def test_a_success_resets_the_count_of_failures(totp_user):
    request, interaction = after_password()
    for _ in range(3):
        error_of(lambda: second(request, interaction, "totp", code="000000" if totp_now() != "000000" else "111111"))
    second(request, interaction, "totp", code=totp_now())
    assert SecondFactorState.objects.get(user=totp_user, authenticator__name="totp").failures == 0


# -- backup codes --------------------------------------------------------------------------------------------
def test_backup_codes_are_ten_of_at_least_64_bits_stored_hashed_and_single_use(totp_user):
    codes = backup_code.replace_codes(totp_user)
    assert len(codes) == len(set(codes)) == 10
    assert entropy_bits([code.replace("-", "") for code in codes]) >= 64
    stored = " ".join(BackupCode.objects.values_list("digest", flat=True))
    assert not any(code.replace("-", "") in stored or code in stored for code in codes)
    request, interaction = after_password()
    second(request, interaction, "backup_code", code=codes[3].upper().replace("-", " "))  # as typed from paper
    request, interaction = after_password()
    assert error_of(lambda: second(request, interaction, "backup_code", code=codes[3])).code == "invalid_code"
    second(request, interaction, "backup_code", code=codes[4])


def test_new_backup_codes_replace_the_old_ones(totp_user):
    old = backup_code.replace_codes(totp_user)
    backup_code.replace_codes(totp_user)
    request, interaction = after_password()
    assert error_of(lambda: second(request, interaction, "backup_code", code=old[0])).code == "invalid_code"


@pytest.mark.django_db(transaction=True)
def test_parallel_uses_of_one_backup_code_succeed_once(user, second_factors):
    give_totp(user)
    code = backup_code.replace_codes(user)[0]
    attempts = [after_password() for _ in range(8)]

    def use(index: int) -> str:
        request, interaction = attempts[index]
        try:
            second(request, interaction, "backup_code", code=code)
        except EngineError as error:
            return error.code
        return "ok"

    assert sorted(map(str, run_together(8, use))) == ["invalid_code"] * 7 + ["ok"]
    assert BackupCode.objects.filter(user=user, used_at__isnull=False).count() == 1


# -- e-mail code -----------------------------------------------------------------------------------------------
def test_an_email_code_is_never_the_only_factor_when_mfa_is_required(user, second_factors, mfa_required):
    request = browser_request()
    interaction = engine.start(request)
    with pytest.raises(RequirementMissing) as missing:
        engine.sign_in(request, interaction, Authenticator.objects.get(name="password"),
                       {"identifier": "alice", "password": PASSWORD})
    assert (missing.value.gate, missing.value.data["methods"]) == ("mfa_enrolment_required", ["totp", "backup_code"])
    with pytest.raises(EngineError) as refused:
        mfa.send_second_factor_code(request, interaction, "email")
    assert refused.value.code == "method_disabled"
    assert mail.outbox == []


def test_an_email_code_beside_totp_goes_to_the_users_verified_address_and_works_once(totp_user):
    request, interaction = after_password()
    sent = mfa.send_second_factor_code(request, interaction, "email")
    assert (sent.timeout, sent.resend_after) == (600, 60)
    assert [message.to for message in mail.outbox] == [["Alice@example.com"]]
    code = re.search(r"\b(\d{6})\b", mail.outbox[0].body).group(1)
    assert not OneTimeCode.objects.filter(digest__contains=code).exists()
    other_request, other_interaction = after_password()
    stolen = error_of(lambda: second(other_request, other_interaction, "email_code", code_id=sent.code_id, code=code))
    assert stolen.code == "invalid_code"  # bound to the interaction that asked for it
    second(request, interaction, "email_code", code_id=sent.code_id, code=code)
    assert error_of(lambda: second(request, interaction, "email_code", code_id=sent.code_id, code=code)).code == "invalid_code"
    engine.submit(request, interaction)
    assert request.session["portcullis_auth"]["amr"] == ["mfa", "otp", "pwd"]


def test_no_email_code_to_an_unverified_address(totp_user):
    from identity.models import Profile

    Profile.objects.filter(user=totp_user).update(email_verified=False)
    request, interaction = after_password()
    assert error_of(lambda: mfa.send_second_factor_code(request, interaction, "email")).code == "method_disabled"
    assert mail.outbox == []


def test_a_second_factor_code_needs_the_first_factor(totp_user):
    request = browser_request()
    interaction = engine.start(request)
    with pytest.raises(RequirementMissing) as missing:
        mfa.send_second_factor_code(request, interaction, "email")
    assert missing.value.gate == "identify"


# -- enrolment ----------------------------------------------------------------------------------------------------
def test_enrolment_in_a_sign_in_persists_at_once_and_counts_as_the_second_factor(user, second_factors, mfa_required):
    request, interaction = after_password()
    setup = mfa.start_totp(request, interaction)
    assert setup["otpauth_uri"].startswith("otpauth://totp/Portcullis:alice?secret=")
    assert setup["qr_svg"].startswith("<svg") and "<path" in setup["qr_svg"] and "http" not in setup["qr_svg"].split("xmlns")[0]
    key = key_of(setup)
    assert error_of(lambda: mfa.issue_backup_codes(request, interaction)).code == "enrolment_not_started"
    assert error_of(lambda: mfa.confirm_totp(request, interaction, "000000" if totp_now(key) != "000000" else "1")).code == "invalid_code"
    mfa.confirm_totp(request, interaction, totp_now(key))
    device = TOTPDevice.objects.get(user=user)
    assert device.confirmed and factors.unseal(device.key) == key
    codes = mfa.issue_backup_codes(request, interaction)
    assert len(codes) == 10 and BackupCode.objects.filter(user=user).count() == 10
    interaction.refresh_from_db()
    assert interaction.state["mfa_enrolled"] == ["totp", "backup_code"]
    engine.submit(request, interaction)
    assert request.session["portcullis_auth"]["amr"] == ["mfa", "otp", "pwd"]
    # The confirming code cannot be used again to sign in.
    request, interaction = after_password()
    assert error_of(lambda: second(request, interaction, "totp", code=totp_now(key))).code == "invalid_code"
    kinds = list(AuditEvent.objects.filter(kind__startswith="mfa.").values_list("kind", "authenticator"))
    assert ("mfa.added", "totp") in kinds and ("mfa.added", "backup_code") in kinds and ("mfa.failed", "totp") in kinds


def test_a_user_who_has_a_factor_cannot_enrol_another_before_passing_it(totp_user):
    request, interaction = after_password()
    with pytest.raises(RequirementMissing) as missing:
        mfa.start_totp(request, interaction)
    assert missing.value.gate == "second_factor_required"
    with pytest.raises(RequirementMissing):
        mfa.issue_backup_codes(request, interaction)


def test_five_wrong_confirmations_discard_the_secret(user, second_factors):
    request, interaction = after_password()
    setup = mfa.start_totp(request, interaction)
    wrong = "000000"
    for _ in range(4):
        assert error_of(lambda: mfa.confirm_totp(request, interaction, wrong)).code in ("invalid_code",)
    assert error_of(lambda: mfa.confirm_totp(request, interaction, wrong)).code == "attempts_exceeded"
    key = key_of(setup)
    assert error_of(lambda: mfa.confirm_totp(request, interaction, totp_now(key))).code == "enrolment_not_started"
    assert not TOTPDevice.objects.filter(user=user).exists()


def test_sign_up_enrolment_waits_for_the_account_then_persists(second_factors, django_user_model, password_authenticator):
    request = browser_request()
    interaction = engine.start(request, Interaction.SIGN_UP)
    assert error_of(lambda: mfa.start_totp(request, interaction)).code == "identify"
    interaction.state["profile"] = {"email": "bob@example.com", "email_verified": True, "verified": True}
    interaction.save()
    setup = mfa.start_totp(request, interaction)
    key = key_of(setup)
    mfa.confirm_totp(request, interaction, totp_now(key))
    codes = mfa.issue_backup_codes(request, interaction)
    assert not TOTPDevice.objects.exists() and not BackupCode.objects.exists()  # no account yet
    interaction.refresh_from_db()
    assert interaction.state["mfa_enrolled"] == ["totp", "backup_code"]
    assert codes[0] not in str(interaction.state) and setup["secret"] not in str(interaction.state)
    bob = django_user_model.objects.create_user("bob", "bob@example.com", PASSWORD)
    mfa.save_pending(interaction, bob)
    device = TOTPDevice.objects.get(user=bob)
    assert factors.unseal(device.key) == key and device.last_t >= 0
    assert "mfa_pending" not in interaction.state  # submit then stores the state without it
    request, interaction = after_password("bob")
    second(request, interaction, "backup_code", code=codes[0])


# -- secrets at rest -------------------------------------------------------------------------------------------------
def test_totp_secrets_are_sealed_when_the_deployment_gives_a_key(user, second_factors, settings):
    settings.PORTCULLIS_TOTP_ENCRYPTION_KEY = "a key from the deployment's secret store"
    device = give_totp(user)
    assert device.key.startswith("aes:") and TOTP_KEY.hex() not in device.key and len(device.key) <= 80
    request, interaction = after_password()
    second(request, interaction, "totp", code=totp_now())
    # Rotation: a new key first, the old one still opens what it sealed.
    settings.PORTCULLIS_TOTP_ENCRYPTION_KEY = ["a new key", "a key from the deployment's secret store"]
    request, interaction = after_password()
    second(request, interaction, "totp", code=totp_now(steps_ahead=1))
    settings.PORTCULLIS_TOTP_ENCRYPTION_KEY = "a wrong key"
    request, interaction = after_password()
    assert error_of(lambda: second(request, interaction, "totp", code=totp_now(steps_ahead=1))).code == "invalid_code"


def test_without_a_key_secrets_are_stored_as_django_otp_stores_them(user, second_factors):
    assert give_totp(user).key == TOTP_KEY.hex()


# -- audit -------------------------------------------------------------------------------------------------------------
def test_mfa_use_and_failure_are_audited_without_codes(totp_user):
    request, interaction = after_password()
    error_of(lambda: second(request, interaction, "totp", code="999999" if totp_now() != "999999" else "888888"))
    code = totp_now()
    second(request, interaction, "totp", code=code)
    events = list(AuditEvent.objects.filter(kind__startswith="mfa.").order_by("pk").values_list(
        "kind", "authenticator", "identifier", "user__username", "user_agent"))
    assert events == [("mfa.failed", "totp", "alice", "alice", "pytest"), ("mfa.used", "totp", "alice", "alice", "pytest")]
    for row in AuditEvent.objects.values():
        assert code not in " ".join(str(value) for value in row.values())


def test_the_encryption_key_setting_is_checked(settings):
    from django.core.checks import run_checks

    settings.PORTCULLIS_TOTP_ENCRYPTION_KEY = ["", 3]
    assert "authenticators.E002" in {message.id for message in run_checks()}
    settings.PORTCULLIS_TOTP_ENCRYPTION_KEY = ""
    assert "authenticators.W001" in {message.id for message in run_checks(include_deployment_checks=True)}
    settings.PORTCULLIS_TOTP_ENCRYPTION_KEY = "k"
    assert "authenticators.W001" not in {message.id for message in run_checks(include_deployment_checks=True)}
