"""The subject identifier (``sub``) applications know a user by.

Random, opaque and stable (:func:`identity.models.new_subject`, kept on the user's
:class:`~identity.models.Profile`): it tells nothing about how many accounts exist or in which order
they came, and survives moving accounts between databases. The browser session keeps the user's
primary key internally; everything a client sends or receives names the subject.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from identity.models import Profile


def ensure_profile(user: Any) -> Profile:
    """The user's profile: the one loaded with the user (no query), or the stored one, or a new one.

    Race-safe: two requests that create a missing profile at once get the same row (and subject)."""
    try:
        return user.portcullis_profile
    except Profile.DoesNotExist:
        pass
    profile, _created = Profile.objects.get_or_create(user=user)
    user.portcullis_profile = profile
    return profile


def subject_of(user: Any) -> str:
    """The ``sub`` of ``user``."""
    return ensure_profile(user).subject


def subject_for_user_id(user_id: Any) -> str | None:
    """The ``sub`` of the user with primary key ``user_id`` (a session's), None when there is none."""
    subject = Profile.objects.filter(user_id=user_id).values_list("subject", flat=True).first()
    if subject is not None:
        return subject
    user = get_user_model()._default_manager.filter(pk=user_id).first()
    return subject_of(user) if user is not None else None


def user_for_subject(subject: str) -> Any | None:
    """The user a ``sub`` names, or None."""
    if not isinstance(subject, str) or not subject or len(subject) > 64 or "\x00" in subject:
        return None
    profile = Profile.objects.select_related("user").filter(subject=subject).first()
    return profile.user if profile is not None else None
