"""The sign-in experience an application gets: which methods, in which order, sign-up, password
policy, MFA and captcha (SPEC §5's ``experience`` document).

:func:`policy_for` is resolved once per request and handed to the gates, to the authenticator
types and to every face, so that no face decides these things on its own. Today every application
gets the default experience (the ``experience.models.Experience`` row edited in admin or applied by
``manage.py portcullis_config``, or the defaults below when there is none) with its own overrides
on top (``experience.models.ApplicationExperience``: a partial document; a missing key inherits,
objects merge per key at every level, a list replaces the inherited list).

The experiences (and the enabled authenticators) are read once per change, not once per request:
every process keeps the default and each application's overrides it has met in memory under a
version number that lives in the shared cache and moves on each save or delete of a row (like
``identity.keys``'s JWKS). The process that saves sees the change at once, the others within
``VERSION_CHECK_SECONDS``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from django.db import transaction

from experience.access import AccessRules
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
class Branding:
    display_name: str = ""  # empty: the application's name
    logo_url: str = ""
    logo_dark_url: str = ""
    favicon_url: str = ""
    primary_color: str = ""  # empty: the built-in colours
    primary_color_dark: str = ""
    custom_css: str = ""
    terms_url: str = ""
    privacy_url: str = ""
    support_email: str = ""

    def name_for(self, application: Any = None) -> str:
        """The name pages and messages show: the display name, else the application's, else "Portcullis"."""
        return self.display_name or (str(application.name) if application is not None and application.name
                                     else "Portcullis")


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
    branding: Branding = field(default_factory=Branding)
    language: str = ""  # "": the site's LANGUAGE_CODE
    access: AccessRules = field(default_factory=AccessRules)

    def methods(self) -> list[Authenticator]:
        """What this experience offers: its first factors in display order, then its second factors."""
        enabled = enabled_authenticators()
        return self._first_factors(enabled) + self._second_factors(enabled)

    def first_factors(self) -> list[Authenticator]:
        """The methods that identify a user (every kind but second factors): the enabled ones of the
        experience's ``authenticators`` list, in its order (no list: every enabled one, by sort order).
        A second factor's name in the list is never a sign-in method (the configuration refuses it)."""
        return self._first_factors(enabled_authenticators())

    def second_factors(self) -> list[Authenticator]:
        """The enabled second-factor authenticators this experience allows (MFA ``factors``)."""
        return self._second_factors(enabled_authenticators())

    def first_factor_of(self, auth_type: str) -> Authenticator | None:
        """The first of :meth:`first_factors` of ``auth_type`` (the one a face means by a type)."""
        return next((a for a in self.first_factors() if a.auth_type == auth_type), None)

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


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` on top of ``base``: objects merge per key at every level; anything else (a list
    too) replaces the inherited value."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def from_document(document: dict[str, Any], client_id: str = "") -> Policy:
    """The policy a complete ``experience`` document describes."""
    sign_up, password, mfa = document["sign_up"], document["password_policy"], document["mfa"]
    branding_fields = {name for name in Branding.__dataclass_fields__}
    return Policy(
        client_id=client_id,
        authenticators=tuple(document["authenticators"]) if document.get("authenticators") else None,
        sign_up=SignUpPolicy(enabled=sign_up["enabled"], identifiers=tuple(sign_up["identifiers"]),
                             verify=sign_up["verify"]),
        password=PasswordPolicy(min_length=password["min_length"], blocklist=password["blocklist"],
                                similarity=password["similarity"]),
        mfa=MfaPolicy(policy=mfa["policy"], factors=tuple(mfa["factors"])),
        captcha=document["captcha"]["policy"],
        sign_in_url=document["sign_in_url"],
        branding=Branding(**{key: value for key, value in document.get("branding", {}).items()
                             if key in branding_fields}),
        language=document.get("language", ""),
        access=AccessRules.from_document(document.get("access_rules", {})),
    )


def default_document(row: Experience | None) -> dict[str, Any]:
    """A saved default experience as a complete document (the built-in defaults without one)."""
    from experience.models import Experience

    return (row or Experience()).policies()


def from_row(row: Experience | None) -> Policy:
    """The policy a saved default experience describes (the built-in defaults without one)."""
    return from_document(default_document(row))


@dataclass
class _Memo:
    version: str
    document: dict[str, Any]
    policy: Policy
    applications: dict[str, Policy] = field(default_factory=dict)  # client_id -> its effective policy
    enabled: list[Authenticator] | None = None  # enabled_authenticators(), once read


_memo: _Memo | None = None
_checked_at = 0.0
MAX_REMEMBERED_APPLICATIONS = 4096  # beyond: forgotten and read again (a bound on this memory)


def _version() -> str:
    return versions.current(VERSION_KEY)


def _bump() -> None:
    global _memo
    versions.bump(VERSION_KEY)
    _memo = None


def experience_changed() -> None:
    """Tell every process to read the experiences again (this one at once, the others within
    seconds). Called on each save and delete of a default or application experience: at once, and
    again when the transaction commits, so that a process that read the old row between the two
    reads it again."""
    _bump()
    transaction.on_commit(_bump)


def _current() -> _Memo:
    """The memo of this process while its version holds (read again when the version moved)."""
    global _memo, _checked_at
    memo = _memo
    now = time.monotonic()
    if memo is not None and now - _checked_at < VERSION_CHECK_SECONDS:
        return memo
    version = _version()
    _checked_at = now
    if memo is not None and memo.version == version:
        return memo
    from experience.models import Experience

    with _lock:
        if _memo is None or _memo.version != version:
            document = default_document(Experience.objects.filter(key=Experience.DEFAULT).first())
            _memo = _Memo(version, document, from_document(document))
        return _memo


def default_policy() -> Policy:
    """The default experience, from this process's memory while its version holds."""
    return _current().policy


def enabled_authenticators() -> list[Authenticator]:
    """The enabled authenticators whose type is registered, by sort order: read once per version,
    like the experiences (an authenticator's save or delete moves the version, see
    ``experience.models``). The rows are shared by the requests of a process: read them, never
    change them (a change goes through a fresh row and its ``save()``)."""
    memo = _current()
    enabled = memo.enabled
    if enabled is None:
        from authenticators.models import Authenticator

        enabled = memo.enabled = [a for a in Authenticator.objects.enabled() if a.type is not None]
    return enabled


def overrides_of(client_id: str) -> dict[str, Any]:
    """``client_id``'s stored overrides as a partial document (empty: none)."""
    from experience.models import ApplicationExperience

    row = ApplicationExperience.objects.filter(application__client_id=client_id).first()
    return row.document() if row is not None else {}


def resolve(client_id: str) -> Policy:
    """The effective experience of ``client_id``: its overrides merged over the default experience
    (the default alone for ``""`` and for an application without overrides)."""
    memo = _current()
    if not client_id:
        return memo.policy
    policy = memo.applications.get(client_id)
    if policy is None:
        overrides = overrides_of(client_id)
        policy = from_document(merge(memo.document, overrides), client_id) if overrides \
            else replace(memo.policy, client_id=client_id)
        if len(memo.applications) >= MAX_REMEMBERED_APPLICATIONS:
            memo.applications.clear()
        memo.applications[client_id] = policy
    return policy


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
    """The policy as SPEC §5's ``experience`` document: the public part a sign-in UI needs (the
    access rules are not in it: they are the server's to apply, not the client's to read)."""
    return {
        "branding": {name: getattr(policy.branding, name) for name in Branding.__dataclass_fields__},
        "language": policy.language,
        "authenticators": [a.name for a in policy.first_factors()],  # forms and buttons; second factors: mfa
        "sign_up": {"enabled": policy.sign_up.enabled, "identifiers": list(policy.sign_up.identifiers),
                    "verify": policy.sign_up.verify},
        "password_policy": {"min_length": policy.password.min_length, "blocklist": policy.password.blocklist,
                            "similarity": policy.password.similarity},
        "mfa": {"policy": policy.mfa.policy, "factors": list(policy.mfa.factors)},
        "captcha": {"policy": policy.captcha},
        "sign_in_url": policy.sign_in_url,
    }


def effective(client_id: str) -> list[tuple[str, Any, str]]:
    """Each value of ``client_id``'s effective experience with where it comes from: ``"application"``
    (its overrides), ``"default"`` (the stored default experience) or ``"built-in"`` (no default
    stored), as ``(path, value, source)`` in document order, for the admin."""
    from experience.models import Experience

    stored = Experience.objects.filter(key=Experience.DEFAULT).exists()
    overrides = overrides_of(client_id) if client_id else {}
    document = merge(_current().document, overrides)
    rows: list[tuple[str, Any, str]] = []
    for key, value in document.items():
        parts = value.items() if isinstance(value, dict) else [(None, value)]
        for name, item in parts:
            own = overrides.get(key, {}) if isinstance(value, dict) else overrides
            source = "application" if (name if name is not None else key) in own else \
                ("default" if stored else "built-in")
            rows.append((key if name is None else f"{key}.{name}", item, source))
    return rows
