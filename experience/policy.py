"""The sign-in experience an application gets: which methods, in which order, sign-up, password
policy, MFA and captcha (SPEC §5's ``experience`` document).

:func:`policy_for` is resolved once per request and handed to the gates, to the authenticator
types and to every face, so that no face decides these things on its own. Today every application
gets the defaults below; per-application overrides (and a default edited in admin) fill it later
without any caller changing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.http import HttpRequest

    from authenticators.models import Authenticator

REQUEST_ATTRIBUTE = "_portcullis_policies"


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
    authenticators: tuple[str, ...] | None = None  # names in display order; None: every enabled one
    sign_up: SignUpPolicy = field(default_factory=SignUpPolicy)
    password: PasswordPolicy = field(default_factory=PasswordPolicy)
    mfa: MfaPolicy = field(default_factory=MfaPolicy)
    captcha: str = "risk"  # "off" | "risk" | "always"
    sign_in_url: str = ""  # a path on this site for a custom sign-in UI; "" means the hosted pages

    def methods(self) -> list[Authenticator]:
        """The enabled authenticators whose type is registered, in this experience's order."""
        from authenticators.models import Authenticator

        enabled = [a for a in Authenticator.objects.enabled() if a.type is not None]
        if self.authenticators is None:
            return enabled
        by_name = {a.name: a for a in enabled}
        return [by_name[name] for name in self.authenticators if name in by_name]

    def first_factors(self) -> list[Authenticator]:
        """The methods that identify a user (every kind but second factors)."""
        return [a for a in self.methods() if a.type is not None and a.type.is_first_factor]

    def second_factors(self) -> list[Authenticator]:
        """The enabled second-factor authenticators this experience allows (MFA ``factors``)."""
        if not self.mfa.enabled:
            return []
        from authenticators.models import Authenticator

        return [a for a in Authenticator.objects.enabled()
                if a.type is not None and a.type.kind == "second_factor" and a.auth_type in self.mfa.factors]


def resolve(client_id: str) -> Policy:
    """The effective experience of ``client_id``: the defaults, for now, for every application."""
    return Policy(client_id=client_id)


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
