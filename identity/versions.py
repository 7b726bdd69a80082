"""Versions in the shared cache: how a process learns that something it keeps in memory (the
signing keys, the default sign-in experience) changed in another process."""

from __future__ import annotations

from django.core.cache import cache
from django.utils import timezone


def current(key: str) -> str:
    """The version under ``key``, made (once, by whichever process comes first) when missing."""
    version = cache.get(key)
    if version is None:
        version = str(timezone.now().timestamp())
        cache.add(key, version, None)
        version = cache.get(key, version)
    return str(version)


def bump(key: str) -> None:
    """A new version under ``key``: every process reads its copy again."""
    cache.set(key, str(timezone.now().timestamp()), None)
