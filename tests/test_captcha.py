"""Captchas (experience.captcha) against the gaps SECURITY.md lists for django-simple-captcha: each
line as the attack it stops."""

from __future__ import annotations

import random
import string
from datetime import timedelta
from typing import Any

import pytest
from captcha.models import CaptchaStore
from django.core.checks import run_checks
from django.test import Client, override_settings
from django.utils import timezone

from experience import captcha
from tests.helpers import run_together

pytestmark = pytest.mark.django_db


def answer_of(key: str) -> str:
    """What a person reads in the picture (the test reads the store)."""
    return CaptchaStore.objects.get(hashkey=key).response


def test_a_challenge_is_an_image_served_under_its_url(client: Client) -> None:
    challenge = captcha.new_challenge()
    assert set(challenge) == {"id", "url"}
    assert challenge["url"] == f"/captcha/image/{challenge['id']}/"
    image = client.get(challenge["url"])
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


def test_the_right_answer_solves_once_and_a_replay_is_refused() -> None:
    key = captcha.new_challenge()["id"]
    answer = answer_of(key)
    assert captcha.solve(key, answer) is True
    assert captcha.solve(key, answer) is False  # replaying a solved captcha (the library's gap: reuse)
    assert not CaptchaStore.objects.filter(hashkey=key).exists()


def test_a_wrong_answer_deletes_the_key_so_there_is_no_second_guess() -> None:
    """django-simple-captcha keeps the key after a wrong answer: unlimited guesses at one image."""
    key = captcha.new_challenge()["id"]
    answer = answer_of(key)
    assert captcha.solve(key, "WRONG1") is False
    assert not CaptchaStore.objects.filter(hashkey=key).exists()
    assert captcha.solve(key, answer) is False


@pytest.mark.parametrize("given", ["", None, 123, ["x"], {"a": 1}])
def test_an_empty_or_malformed_answer_also_burns_the_key(given: Any) -> None:
    key = captcha.new_challenge()["id"]
    answer = answer_of(key)
    assert captcha.solve(key, given) is False
    assert captcha.solve(key, answer) is False


def test_an_expired_challenge_is_refused_even_with_the_right_answer() -> None:
    key = captcha.new_challenge()["id"]
    answer = answer_of(key)
    CaptchaStore.objects.filter(hashkey=key).update(expiration=timezone.now() - timedelta(seconds=1))
    assert captcha.solve(key, answer) is False
    assert not CaptchaStore.objects.filter(hashkey=key).exists()


def test_challenges_expire_after_the_configured_timeout(settings: Any) -> None:
    settings.PORTCULLIS_CAPTCHA_TIMEOUT = 120
    before = timezone.now()
    key = captcha.new_challenge()["id"]
    expiration = CaptchaStore.objects.get(hashkey=key).expiration
    assert before + timedelta(seconds=119) <= expiration <= timezone.now() + timedelta(seconds=121)


def test_the_answer_is_case_insensitive_and_trimmed() -> None:
    key = captcha.new_challenge()["id"]
    assert captcha.solve(key, f"  {answer_of(key).upper()} ") is True


@pytest.mark.parametrize("key", ["", None, 7, "x" * 41, "no-such-key"])
def test_unknown_or_malformed_keys_are_refused_without_an_error(key: Any) -> None:
    assert captcha.solve(key, "abcdef") is False


def test_challenges_come_from_secrets_not_from_random() -> None:
    """The library's default is 4 letters from ``random``, which the image view even seeds with the
    key: a challenge must not be predictable from random's state."""
    random.seed(1)
    first = captcha.challenge()
    random.seed(1)
    second = captcha.challenge()
    assert first != second
    text, answer = first
    assert len(text) >= 6 and answer == text.lower()
    assert set(text) <= set(string.ascii_uppercase + string.digits)
    keys = {captcha.new_challenge()["id"] for _ in range(5)}
    assert len(keys) == 5 and all(len(key) == 40 for key in keys)  # 160 bits from secrets


def test_the_library_uses_our_challenge_function_too() -> None:
    from captcha.conf import settings as captcha_settings

    assert captcha_settings.get_challenge() is captcha.challenge


def test_test_mode_does_not_make_any_answer_pass() -> None:
    """CAPTCHA_TEST_MODE makes the library accept "passed": our solve never consults it."""
    with override_settings(CAPTCHA_TEST_MODE=True):
        key = captcha.new_challenge()["id"]
        assert captcha.solve(key, "passed") is False


def test_test_mode_outside_debug_is_a_system_check_error() -> None:
    with override_settings(CAPTCHA_TEST_MODE=True, DEBUG=False):
        assert "experience.E010" in {message.id for message in run_checks()}
    with override_settings(CAPTCHA_TEST_MODE=True, DEBUG=True):
        assert "experience.E010" not in {message.id for message in run_checks()}
    with override_settings(DEBUG=False):
        assert "experience.E010" not in {message.id for message in run_checks()}


def test_expired_challenges_are_cleaned_up() -> None:
    from django.core.management import call_command

    live = captcha.new_challenge()["id"]
    old = captcha.new_challenge()["id"]
    CaptchaStore.objects.filter(hashkey=old).update(expiration=timezone.now() - timedelta(minutes=1))
    call_command("portcullis_cleanup", verbosity=0)
    assert set(CaptchaStore.objects.values_list("hashkey", flat=True)) == {live}


@pytest.mark.django_db(transaction=True)
def test_parallel_answers_to_one_key_succeed_at_most_once() -> None:
    """Twelve requests race the right answer to one key (the library's check-then-delete is not
    atomic): one wins. Run with DATABASE_URL=postgres://... for real row-level concurrency."""
    key = captcha.new_challenge()["id"]
    answer = answer_of(key)
    results = run_together(12, lambda index: captcha.solve(key, answer))
    assert results.count(True) == 1, results
    assert all(result is False for result in results if result is not True), results
