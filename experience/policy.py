"""The sign-in experience an application gets: which methods, in which order, sign-up, password
policy, MFA and captcha (SPEC §5's ``experience`` document).

:func:`policy_for` is resolved once per request and handed to the gates, to the authenticator
types and to every face, so that no face decides these things on its own. Today every application
gets the default experience: the ``experience.models.Experience`` row edited in admin (or applied by
``manage.py portcullis_config``), or the defaults below when there is none. Per-application
overrides fill it later without any caller changing.

The default experience is read once per change, not once per request: every process keeps it in
memory under a version number that lives in the shared cache and moves on each save or delete of
the row (like ``identity.keys``'s JWKS). The process that saves sees the change at once, the others
within ``VERSION_CHECK_SECONDS``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from django.db import transaction

from identity import versions

if TYPE_CHECKING:
    from django.http import HttpRequest

    from authenticators.models import Authenticator
    from experience.models import Experience

REQUEST_ATTRIBUTE = "_portcullis_policies"
VERSION_KEY = "portcullis:experience:version"
# How long a process trusts its default experience before asking the shared cache whether it changed.
VERSION_CHECK_SECONDS = 2.0
_lock = threading.Lock()


@dataclass(frozen=True)
class SignUpPolicy:
    enabled: bool = True
    identifiers: tuple[str, ...] = ("email",)  # from "email", "phone", "username"
    verify: bool = True


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 8
    blocklist: bool = True
    similarity: bool = True


@dataclass(frozen=True)
class MfaPolicy:
    policy: str = "optional"  # "off" | "optional" | "required"
    factors: tuple[str, ...] = ("totp", "backup_code", "email_code")

    @property
    def enabled(self) -> bool:
        return self.policy != "off"

    @property
    def required(self) -> bool:
        return self.policy == "required"


@dataclass(frozen=True)
class Policy:
    """The effective experience of one application (the default one when ``client_id`` is empty)."""

    client_id: str = ""
    authenticators: tuple[str, ...] | None = None  # first factors in display order; None: every enabled one
    sign_up: SignUpPolicy = field(default_factory=SignUpPolicy)
    password: PasswordPolicy = field(default_factory=PasswordPolicy)
    mfa: MfaPolicy = field(default_factory=MfaPolicy)
    captcha: str = "risk"  # "off" | "risk" | "always"
    sign_in_url: str = ""  # a path on this site for a custom sign-in UI; "" means the hosted pages

    def methods(self) -> list[Authenticator]:
        """What this experience offers: its first factors in display order, then its second factors."""
        enabled = self._enabled()
        return self._first_factors(enabled) + self._second_factors(enabled)

    def first_factors(self) -> list[Authenticator]:
        """The methods that identify a user (every kind but second factors): the enabled ones of the
        experience's ``authenticators`` list, in its order (no list: every enabled one, by sort order).
        A second factor's name in the list is never a sign-in method (the configuration refuses it)."""
        return self._first_factors(self._enabled())

    def second_factors(self) -> list[Authenticator]:
        """The enabled second-factor authenticators this experience allows (MFA ``factors``)."""
        return self._second_factors(self._enabled())

    def first_factor_of(self, auth_type: str) -> Authenticator | None:
        """The first of :meth:`first_factors` of ``auth_type`` (the one a face means by a type)."""
        return next((a for a in self.first_factors() if a.auth_type == auth_type), None)

    @staticmethod
    def _enabled() -> list[Authenticator]:
        """The enabled authenticators whose type is registered, by sort order."""
        from authenticators.models import Authenticator

        return [a for a in Authenticator.objects.enabled() if a.type is not None]

    def _first_factors(self, enabled: list[Authenticator]) -> list[Authenticator]:
        first = [a for a in enabled if a.type is not None and a.type.is_first_factor]
        if self.authenticators is None:
            return first
        by_name = {a.name: a for a in first}
        return [by_name[name] for name in self.authenticators if name in by_name]

    def _second_factors(self, enabled: list[Authenticator]) -> list[Authenticator]:
        if not self.mfa.enabled:
            return []
        return [a for a in enabled
                if a.type is not None and a.type.kind == "second_factor" and a.auth_type in self.mfa.factors]


def from_row(row: Experience | None) -> Policy:
    """The policy a saved default experience describes (the built-in defaults without one)."""
    if row is None:
        return Policy()
    return Policy(
        authenticators=tuple(row.authenticators) if row.authenticators else None,
        sign_up=SignUpPolicy(enabled=row.sign_up_enabled, identifiers=tuple(row.sign_up_identifiers),
                             verify=row.sign_up_verify),
        password=PasswordPolicy(min_length=row.password_min_length, blocklist=row.password_blocklist,
                                similarity=row.password_similarity),
        mfa=MfaPolicy(policy=row.mfa_policy, factors=tuple(row.mfa_factors)),
        captcha=row.captcha_policy,
        sign_in_url=row.sign_in_url,
    )


@dataclass(frozen=True)
class _Memo:
    version: str
    policy: Policy


_memo: _Memo | None = None
_checked_at = 0.0


def _version() -> str:
    return versions.current(VERSION_KEY)


def _bump() -> None:
    global _memo
    versions.bump(VERSION_KEY)
    _memo = None


def experience_changed() -> None:
    """Tell every process to read the default experience again (this one at once, the others within
    seconds). Called on each save and delete of the row: at once, and again when the transaction
    commits, so that a process that read the old row between the two reads it again."""
    _bump()
    transaction.on_commit(_bump)


def default_policy() -> Policy:
    """The default experience, from this process's memory while its version holds."""
    global _memo, _checked_at
    memo = _memo
    now = time.monotonic()
    if memo is not None and now - _checked_at < VERSION_CHECK_SECONDS:
        return memo.policy
    version = _version()
    _checked_at = now
    if memo is not None and memo.version == version:
        return memo.policy
    from experience.models import Experience

    with _lock:
        if _memo is None or _memo.version != version:
            _memo = _Memo(version, from_row(Experience.objects.filter(key=Experience.DEFAULT).first()))
        return _memo.policy


def resolve(client_id: str) -> Policy:
    """The effective experience of ``client_id``: the default experience, for now, for every application
    (per-application overrides come on top of it later)."""
    return replace(default_policy(), client_id=client_id)


def policy_for(client_id: str, request: HttpRequest | None = None) -> Policy:
    """:func:`resolve`, once per request: the answer is kept on ``request``."""
    if request is None:
        return resolve(client_id)
    cache: dict[str, Policy] = getattr(request, REQUEST_ATTRIBUTE, None) or {}
    if client_id not in cache:
        cache[client_id] = resolve(client_id)
        setattr(request, REQUEST_ATTRIBUTE, cache)
    return cache[client_id]


def describe(policy: Policy) -> dict[str, Any]:
    """The policy as SPEC §5's ``experience`` document (the public part a sign-in UI needs)."""
    return {
        "authenticators": [a.name for a in policy.first_factors()],  # forms and buttons; second factors: mfa
        "sign_up": {"enabled": policy.sign_up.enabled, "identifiers": list(policy.sign_up.identifiers),
                    "verify": policy.sign_up.verify},
        "password_policy": {"min_length": policy.password.min_length, "blocklist": policy.password.blocklist,
                            "similarity": policy.password.similarity},
        "mfa": {"policy": policy.mfa.policy, "factors": list(policy.mfa.factors)},
        "captcha": {"policy": policy.captcha},
        "sign_in_url": policy.sign_in_url,
    }
