"""Captchas over django-simple-captcha, closing its gaps (SECURITY.md):

- the challenge comes from :mod:`secrets` (:func:`challenge`: 6 characters by default; the
  library's own is 4 letters from :mod:`random`), and the key too (160 bits);
- each key gets exactly **one** attempt: :func:`solve` deletes it on any answer, right or wrong, in
  one conditional ``DELETE ... WHERE hashkey = %s AND response = %s AND expiration > now`` (then an
  unconditional one), so two parallel answers to one key succeed at most once;
- it expires (``PORTCULLIS_CAPTCHA_TIMEOUT`` seconds, 5 minutes by default);
- ``CAPTCHA_TEST_MODE`` outside DEBUG is a system check error (``experience.E002``).

Friction, not protection: solving a captcha never lifts the per-account limits (``experience.risk``).
The image is served by the library's view at ``captcha/image/<id>/`` (its URLs are included in
``config/urls.py``; a host project includes ``captcha.urls`` at ``captcha/`` too).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from identity.app_settings import setting

# No look-alikes (0/O, 1/I/L): the answer is compared case-insensitively.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
MAX_KEY = 40  # CaptchaStore.hashkey's length


def length() -> int:
    return max(5, int(setting("CAPTCHA_LENGTH", 6)))


def timeout() -> int:
    """Seconds a challenge lives."""
    return int(setting("CAPTCHA_TIMEOUT", 300))


def challenge() -> tuple[str, str]:
    """A django-simple-captcha challenge function (``CAPTCHA_CHALLENGE_FUNCT``): what the image
    shows and the expected answer, from :mod:`secrets`."""
    text = "".join(secrets.choice(ALPHABET) for _ in range(length()))
    return text, text.lower()


def new_challenge(request: HttpRequest | None = None) -> dict[str, str]:
    """A fresh challenge: ``{"id", "url"}`` (the image's URL, absolute when ``request`` is given)."""
    from captcha.models import CaptchaStore

    text, answer = challenge()
    key = secrets.token_hex(MAX_KEY // 2)
    CaptchaStore.objects.create(challenge=text, response=answer, hashkey=key,
                                expiration=timezone.now() + timedelta(seconds=timeout()))
    return {"id": key, "url": image_url(key, request)}


def image_url(key: str, request: HttpRequest | None = None) -> str:
    try:
        path = reverse("captcha-image", kwargs={"key": key})
    except NoReverseMatch:  # a host project that did not include captcha.urls
        path = f"/captcha/image/{key}/"
    return request.build_absolute_uri(path) if request is not None else path


def solve(key: Any, answer: Any) -> bool:
    """Whether ``answer`` solves the live challenge ``key``. The key is deleted whatever the
    answer (one attempt per key), atomically: of parallel answers at most one is right."""
    from captcha.models import CaptchaStore

    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        return False
    given = answer.strip().lower() if isinstance(answer, str) else ""
    store = CaptchaStore.objects.filter(hashkey=key)
    with transaction.atomic():
        # One statement decides: the row goes with the right answer (deleted rows counted).
        solved = bool(given) and store.filter(response=given, expiration__gt=timezone.now()).delete()[0] > 0
        if not solved:
            store.delete()  # a wrong (or empty, or late) answer burns the key too
    return solved


def cleanup(now: Any) -> int:
    """Delete expired challenges (``portcullis_cleanup``)."""
    from captcha.models import CaptchaStore

    return CaptchaStore.objects.filter(expiration__lte=now).delete()[0]


def installed() -> bool:
    from django.apps import apps

    return apps.is_installed("captcha")
