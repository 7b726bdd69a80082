"""Submit's gates: small objects checked in SPEC §2's fixed order; the first one not met is the
interaction's next step (like allauth's login stages).

Each gate answers :meth:`Gate.pending` with a :class:`Requirement` (its code, the methods that can
meet it, and data a face shows) or None when it is met. The state the gates read is the
interaction's JSON:

- ``captcha``: ``{"required": bool, "passed": bool}`` (the risk rules set ``required``);
- ``user_id``: the identified account (``identify`` records it);
- ``verifications``: ``[{"method", "authenticator", "factor": "first" | "second", "amr", "at"}]``;
- ``new_password_hash`` (and ``password_set``): the forgot-password flow's new password, checked and
  kept as its hash until submit applies it;
- ``profile``: sign-up's collected identifiers (``{"email": ..., "email_verified": bool, ...}``);
- ``mfa_enrolled``: factors enrolled during this interaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib.auth import get_user_model

from authenticators.base import SecondFactorAuth, enrolled_each
from experience.errors import EngineError
from experience.models import Interaction
from identity.app_settings import setting

if TYPE_CHECKING:
    from django.http import HttpRequest

    from authenticators.models import Authenticator
    from experience.policy import Policy


@dataclass(frozen=True)
class Requirement:
    """What the interaction still needs: a gate's code and the methods that can meet it."""

    code: str
    methods: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    def error(self) -> RequirementMissing:
        return RequirementMissing(self)


class RequirementMissing(EngineError):
    """Submit found a gate that is not met (the ``requirement`` error kind)."""

    def __init__(self, requirement: Requirement) -> None:
        self.requirement = requirement
        super().__init__(requirement.code, methods=list(requirement.methods), **requirement.data)

    @property
    def gate(self) -> str:
        return self.requirement.code


@dataclass
class Context:
    """One request's view of an interaction, handed to every gate."""

    request: HttpRequest
    interaction: Interaction
    policy: Policy

    @property
    def state(self) -> dict[str, Any]:
        return self.interaction.state

    @cached_property
    def user(self) -> Any | None:
        """The identified, active account, or None."""
        user_id = self.state.get("user_id")
        if not user_id:
            return None
        user = getattr(self.interaction, "identified_user", None)  # verified during this request
        if user is not None and str(user.pk) == str(user_id):
            return user if user.is_active else None
        return get_user_model()._default_manager.filter(pk=user_id, is_active=True).first()

    def verifications(self, factor: str) -> list[dict[str, Any]]:
        return [v for v in self.state.get("verifications", []) if v.get("factor", "first") == factor]

    @cached_property
    def second_factors(self) -> list[Authenticator]:
        """The second-factor authenticators the policy allows and the user has set up."""
        user = self.user
        if user is None:
            return []
        enrolled = []
        policy = self.policy
        if not policy.mfa.enabled and mfa_required(self):  # staff, with MFA off for everyone else
            policy = replace(policy, mfa=replace(policy.mfa, policy="required"))
        factors = [(authenticator, auth) for authenticator in policy.second_factors()
                   if isinstance(auth := authenticator.get_auth(self.request, policy=self.policy,
                                                                binding=self.interaction.uid), SecondFactorAuth)]
        # each factor looked up once: those offered beside others (the e-mail code) last, told the rest
        alone = [(authenticator, auth) for authenticator, auth in factors if not auth.beside_others]
        answers = enrolled_each(user, [auth for _, auth in alone])
        own = {authenticator.pk for (authenticator, _), yes in zip(alone, answers, strict=True) if yes}
        others = [authenticator for authenticator, _ in factors if authenticator.pk in own]
        for authenticator, auth in factors:
            if authenticator.pk in own or (auth.beside_others and auth.enrolled_beside(user, others)):
                enrolled.append(authenticator)
        return enrolled


class Gate(ABC):
    code: ClassVar[str]

    @abstractmethod
    def pending(self, ctx: Context) -> Requirement | None:
        """The requirement this gate still makes, or None when it is met."""


class CaptchaGate(Gate):
    code = "captcha_required"

    def pending(self, ctx: Context) -> Requirement | None:
        captcha = ctx.state.get("captcha") or {}
        if ctx.policy.captcha != "off" and captcha.get("required") and not captcha.get("passed"):
            return Requirement(self.code, ("captcha",))
        return None


class IdentifyGate(Gate):
    code = "identify"

    def pending(self, ctx: Context) -> Requirement | None:
        if ctx.interaction.event == Interaction.SIGN_UP:
            identified = bool((ctx.state.get("profile") or {}).get("verified"))
        else:
            identified = ctx.user is not None and bool(ctx.verifications("first"))
        return None if identified else identify_requirement(ctx)


def identify_requirement(ctx: Context) -> Requirement:
    """What identifying takes: one of the policy's first factors (sign-up and forgot-password: a
    code to an address)."""
    methods = ctx.policy.first_factors()
    if ctx.interaction.event in (Interaction.SIGN_UP, Interaction.FORGOT_PASSWORD):
        methods = [a for a in methods if a.type is not None and a.type.kind == "code"]
    return Requirement(IdentifyGate.code, tuple(a.name for a in methods))


class NewPasswordGate(Gate):
    code = "new_password_required"

    def pending(self, ctx: Context) -> Requirement | None:
        if ctx.interaction.event == Interaction.FORGOT_PASSWORD and not ctx.state.get("new_password_hash"):
            return Requirement(self.code, ("password",))
        return None


class SecondFactorGate(Gate):
    """A user who has a second factor the policy allows proves it (MFA ``off`` asks for none, but
    for staff when :func:`mfa_required`)."""

    code = "second_factor_required"

    def pending(self, ctx: Context) -> Requirement | None:
        if ctx.interaction.event == Interaction.SIGN_UP or not ctx.second_factors:
            return None
        if ctx.verifications("second"):
            return None
        return Requirement(self.code, tuple(a.auth_type for a in ctx.second_factors))


class ProfileGate(Gate):
    """Sign-up collects what the policy's identifiers need, verified when the policy says so, and a
    password."""

    code = "profile_incomplete"

    def pending(self, ctx: Context) -> Requirement | None:
        if ctx.interaction.event != Interaction.SIGN_UP:
            return None
        profile = ctx.state.get("profile") or {}
        sign_up = ctx.policy.sign_up
        missing = [name for name in sign_up.identifiers if not profile.get(name)]
        if sign_up.verify:
            missing += [f"{name}_verified" for name in sign_up.identifiers
                        if name in ("email", "phone") and profile.get(name) and not profile.get(f"{name}_verified")]
        if not profile.get("password_set"):
            missing.append("password")
        return Requirement(self.code, ("profile",), {"missing": missing}) if missing else None


def mfa_required(ctx: Context) -> bool:
    """Whether this sign-in needs a second factor: the policy requires MFA, or the user is staff
    and ``PORTCULLIS_STAFF_MFA_REQUIRED`` is on (the default: the admin is the most valuable door)."""
    if ctx.policy.mfa.required:
        return True
    user = ctx.user
    return bool(user is not None and getattr(user, "is_staff", False) and setting("STAFF_MFA_REQUIRED", True))


class MfaEnrolmentGate(Gate):
    code = "mfa_enrolment_required"

    def pending(self, ctx: Context) -> Requirement | None:
        if not mfa_required(ctx) or ctx.state.get("mfa_enrolled"):
            return None
        if ctx.user is not None and ctx.second_factors:
            return None
        return Requirement(self.code, tuple(f for f in ctx.policy.mfa.factors if f != "email_code"))


# SPEC §2's order. A face learns the next step from the first gate that answers a requirement.
GATES: tuple[Gate, ...] = (
    CaptchaGate(), IdentifyGate(), NewPasswordGate(), SecondFactorGate(), ProfileGate(), MfaEnrolmentGate(),
)


def next_requirement(ctx: Context) -> Requirement | None:
    """The first gate not met, or None when the interaction may be submitted."""
    for gate in GATES:
        requirement = gate.pending(ctx)
        if requirement is not None:
            return requirement
    return None
