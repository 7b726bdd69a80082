"""What the second-factor types share (part mfa): the consecutive-failure counter that disables a
factor, TOTP arithmetic (RFC 6238) and the sealing of TOTP secrets, and backup codes.

- **Failures.** :func:`checking` locks the user's :class:`~authenticators.models.SecondFactorState`
  row for one authenticator while a type checks a code: every check of that user's factor is
  serialised, a success resets the count, a failure adds one, and the ``FACTOR_MAX_FAILURES``-th
  (100) consecutive failure disables the factor for that user (``method_disabled``) until an
  administrator clears ``disabled_at``. A disabled factor still counts as set up, so the sign-in
  still asks for a second factor (another one, or none is possible): failing cannot remove MFA.
- **TOTP secrets** are stored in ``TOTPDevice.key`` as django-otp does (hex) unless the deployment
  sets ``PORTCULLIS_TOTP_ENCRYPTION_KEY`` (one key, or a list: the first encrypts, every one
  decrypts, for rotation); then they are sealed with AES-256-GCM (``aes:`` + base64url of nonce,
  ciphertext and tag). django-otp's own ``verify_token`` / ``config_url`` are never used on them.
- **Backup codes**: 16 characters from a 32-letter alphabet (80 bits), shown grouped by four;
  stored as an HMAC-SHA256 keyed by ``SECRET_KEY`` (a slow hash adds nothing to 80 random bits).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from identity.app_settings import setting

SEALED_PREFIX = "aes:"
BACKUP_ALPHABET = "abcdefghjkmnpqrstuvwxyz023456789"  # 32 symbols (5 bits), no i, l, o, 1: read from paper
BACKUP_CODE_LENGTH = 16  # 80 bits
BACKUP_CODE_COUNT = 10


def max_failures() -> int:
    return int(setting("FACTOR_MAX_FAILURES", 100))


# -- the consecutive-failure counter -------------------------------------------------------------------
@dataclass
class Check:
    """One locked check of a factor: the type sets ``ok``; ``disabled`` when the factor was already
    disabled (the type must not even look at the code)."""

    state: Any
    disabled: bool
    ok: bool = False


def factor_state(user: Any, authenticator: Any, *, lock: bool = False) -> Any:
    """The user's state row for ``authenticator`` (made when missing), locked when asked."""
    from authenticators.models import SecondFactorState

    rows = SecondFactorState.objects.select_for_update() if lock else SecondFactorState.objects
    state = rows.filter(user=user, authenticator=authenticator).first()
    if state is None:
        try:
            with transaction.atomic():
                SecondFactorState.objects.create(user=user, authenticator=authenticator)
        except IntegrityError:
            pass  # a parallel check made it
        state = rows.get(user=user, authenticator=authenticator)
    return state


def is_disabled(user: Any, authenticator: Any) -> bool:
    from authenticators.models import SecondFactorState

    return SecondFactorState.objects.filter(user=user, authenticator=authenticator, disabled_at__isnull=False).exists()


@contextmanager
def checking(user: Any, authenticator: Any) -> Iterator[Check]:
    """A transaction with the user's factor state locked; on leaving, the count is reset (``ok``)
    or raised by one, disabling the factor at the limit. The caller raises after the block, so the
    count is committed whatever the outcome."""
    with transaction.atomic():
        state = factor_state(user, authenticator, lock=True)
        check = Check(state, disabled=state.disabled_at is not None)
        yield check
        if check.disabled:
            return
        if check.ok:
            state.failures, state.last_used_at = 0, timezone.now()
        else:
            state.failures += 1
            if state.failures >= max_failures():
                state.disabled_at = timezone.now()
        state.save(update_fields=["failures", "disabled_at", "last_used_at"])


# -- TOTP (RFC 6238 over django-otp's HOTP) ------------------------------------------------------------
def totp_code(key: bytes, counter: int, digits: int = 6) -> str:
    from django_otp.oath import hotp

    return f"{hotp(key, counter, digits):0{digits}d}"


def totp_counter(step: int = 30, t0: int = 0, now: float | None = None) -> int:
    return int(((time.time() if now is None else now) - t0) // step)


def normalise_code(code: Any, digits: int = 6) -> str:
    """The digits of a typed code (spaces allowed), or "" when it is not ``digits`` digits."""
    if not isinstance(code, str) or len(code) > 32:
        return ""
    code = "".join(code.split())
    return code if len(code) == digits and code.isascii() and code.isdigit() else ""


def match_totp(key: bytes, code: Any, *, last_t: int, step: int = 30, t0: int = 0, digits: int = 6,
               tolerance: int = 1) -> int | None:
    """The time step ``code`` belongs to, within ``tolerance`` (at most one) step of now and after
    ``last_t`` (a code is accepted once), or None."""
    code = normalise_code(code, digits)
    if not code:
        return None
    now = totp_counter(step, t0)
    tolerance = max(0, min(int(tolerance), 1))
    found = None
    for counter in range(now - tolerance, now + tolerance + 1):
        if counter > last_t and hmac.compare_digest(totp_code(key, counter, digits), code):
            found = counter
    return found


def otpauth_uri(key: bytes, *, label: str, issuer: str, digits: int = 6, step: int = 30) -> str:
    secret = base64.b32encode(key).decode().rstrip("=")
    issuer = issuer.replace(":", "")
    params = urlencode({"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": digits, "period": step},
                       quote_via=quote)
    return f"otpauth://totp/{quote(issuer)}:{quote(label)}?{params}"


def b32_secret(key: bytes) -> str:
    """The secret as an authenticator app's manual entry wants it, grouped by four."""
    text = base64.b32encode(key).decode().rstrip("=")
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


# -- sealing TOTP secrets -------------------------------------------------------------------------------
def _encryption_keys() -> list[bytes]:
    configured = setting("TOTP_ENCRYPTION_KEY", "")
    values = [configured] if isinstance(configured, str) else list(configured or [])
    return [hashlib.sha256(b"portcullis.totp-key:" + str(value).encode()).digest() for value in values if value]


def seal(key: bytes) -> str:
    """How a TOTP secret is stored: sealed when the deployment gives a key, hex otherwise."""
    keys = _encryption_keys()
    if not keys:
        return key.hex()
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(12)
    sealed = nonce + AESGCM(keys[0]).encrypt(nonce, key, b"portcullis.totp")
    return SEALED_PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def unseal(stored: str) -> bytes:
    """The secret of a stored key (hex or sealed); ValueError when no configured key opens it."""
    if not stored.startswith(SEALED_PREFIX):
        try:
            return binascii.unhexlify(stored.encode())
        except (binascii.Error, ValueError) as error:
            raise ValueError("not a hex key") from error
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    raw = stored[len(SEALED_PREFIX):]
    data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    for key in _encryption_keys():
        try:
            return AESGCM(key).decrypt(data[:12], data[12:], b"portcullis.totp")
        except InvalidTag:
            continue
    raise ValueError("no configured PORTCULLIS_TOTP_ENCRYPTION_KEY opens this TOTP secret")


def new_totp_key() -> bytes:
    return secrets.token_bytes(20)


# -- backup codes -------------------------------------------------------------------------------------
def new_backup_code() -> str:
    raw = "".join(secrets.choice(BACKUP_ALPHABET) for _ in range(BACKUP_CODE_LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, BACKUP_CODE_LENGTH, 4))


def normalise_backup_code(code: Any) -> str:
    if not isinstance(code, str) or len(code) > 64:
        return ""
    return "".join(ch for ch in code.lower() if ch not in " -\t")


def backup_digest(code: str) -> str:
    return salted_hmac("portcullis.backup-code", normalise_backup_code(code), algorithm="sha256").hexdigest()
