"""The password policy of a sign-in experience (``policy.password``): what a new password must be,
checked with Django's own validators, and the sentence a page shows before the user types.

The rules follow NIST SP 800-63B: a minimum length (8 by default; NIST recommends at least 15 when
the password is the only factor, see docs/configuration.md), a long maximum (:data:`MAX_LENGTH`, so
passphrases and password managers work), no composition rules, a blocklist of common passwords
(Django's ``CommonPasswordValidator``) and no password close to the user's own identifiers or name
(``UserAttributeSimilarityValidator``). Every character is allowed, spaces too; nothing is stripped.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from experience.errors import EngineError
from identity.identifiers import EMAIL, PHONE, USERNAME, identifiers_of

if TYPE_CHECKING:
    from experience.policy import Policy

MAX_LENGTH = 4096  # far above NIST's 64; a bound on the hashing work of one attempt
FIELD = "password"

# What the similarity check compares the password with, and how a message names each.
LABELS: dict[str, Any] = {
    "username": _("username"),
    "email": _("e-mail address"),
    "name": _("name"),
    "phone_number": _("phone number"),
}


class _Values(SimpleNamespace):
    """The user's values as the object Django's similarity validator reads (attributes and
    ``_meta.get_field(name).verbose_name``)."""

    _meta = SimpleNamespace(get_field=lambda name: SimpleNamespace(verbose_name=LABELS[name]))


def values_of(user_or_values: Any) -> dict[str, str]:
    """The values a password must not resemble: from an account, or from a sign-up's profile
    (``{"username", "email", "phone_number" | "phone", "name"}``)."""
    if isinstance(user_or_values, Mapping):
        given = dict(user_or_values)
        given.setdefault("phone_number", given.get(PHONE) or "")
    elif user_or_values is not None:
        known = identifiers_of(user_or_values)
        given = {"username": known.get(USERNAME, ""), "email": known.get(EMAIL, ""),
                 "phone_number": known.get(PHONE, ""), "name": user_or_values.get_full_name()
                 if hasattr(user_or_values, "get_full_name") else ""}
    else:
        given = {}
    return {name: str(given.get(name) or "") for name in LABELS if isinstance(given.get(name), str)}


def validators(policy: Policy) -> list[Any]:
    """Django's validators, configured from ``policy.password``."""
    rules = policy.password
    chosen: list[Any] = [password_validation.MinimumLengthValidator(max(1, int(rules.min_length)))]
    if rules.blocklist:
        chosen.append(password_validation.CommonPasswordValidator())
    if rules.similarity:
        chosen.append(password_validation.UserAttributeSimilarityValidator(tuple(LABELS)))
    return chosen


def validate_password(password: Any, policy: Policy, user_or_values: Any = None) -> None:
    """Refuse a new password the policy does not allow: ``EngineError("invalid", fields={"password":
    [messages]})``, every failed rule's message, translated."""
    if not isinstance(password, str) or not password:
        raise EngineError("invalid", fields={FIELD: [str(_("Enter a password."))]})
    if len(password) > MAX_LENGTH:
        message = ngettext("Use at most %(count)d character.", "Use at most %(count)d characters.", MAX_LENGTH)
        raise EngineError("invalid", fields={FIELD: [message % {"count": MAX_LENGTH}]})
    values: Any = _Values(**{name: value for name, value in values_of(user_or_values).items() if value})
    try:
        password_validation.validate_password(password, values, validators(policy))
    except ValidationError as error:
        raise EngineError("invalid", fields={FIELD: [str(message) for message in error.messages]}) from None


def describe_rules(policy: Policy) -> str:
    """The policy as one translated sentence, shown next to the password field before typing."""
    rules = policy.password
    count = max(1, int(rules.min_length))
    parts = [ngettext("Use at least %(count)d character; spaces and any symbols are welcome.",
                      "Use at least %(count)d characters; spaces and any symbols are welcome.", count)
             % {"count": count}]
    if rules.blocklist:
        parts.append(str(_("Common passwords are refused.")))
    if rules.similarity:
        parts.append(str(_("Choose one unlike your name, username, e-mail address or phone number.")))
    return " ".join(parts)


__all__ = ["MAX_LENGTH", "describe_rules", "validate_password", "validators", "values_of"]
