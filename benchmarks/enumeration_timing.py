"""User enumeration by timing: how long each step that names an account takes for a known and for
an unknown one (SECURITY.md: "similar timing"). Measured, never asserted (tests/test_enumeration.py
asserts the same status, body and cookies).

Run with ``DEBUG=1 .venv/bin/python benchmarks/enumeration_timing.py [--samples N]``. In-process
(Django's test client, no server): a fresh SQLite database in a temporary directory (migrated,
deleted at the end), an in-memory cache and in-memory e-mail and SMS outboxes, so nothing else on
the machine is touched. Each sample runs in a fresh browser with fresh risk counters and no earlier
code (so cool-downs and captchas do not pile up); known and unknown samples alternate. Steps:
password sign-in (page and API), code sending by e-mail and SMS (page and API), sign-up's and
forgot password's code sending (API), and the answer once an account is locked after 10 failures.
Printed: the median and 90th percentile in milliseconds per step for both, and the difference of
the medians.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "correct horse battery staple"
KNOWN = {"identifier": "alice@example.com", "email": "alice@example.com", "phone": "+14155552671"}
UNKNOWN = {"identifier": "nobody@example.com", "email": "nobody@example.com", "phone": "+14155550100"}
API = "/api/experience/"


def setup(directory: str) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{directory}/timing.sqlite3"
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.conf import settings

    django.setup()
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PORTCULLIS_SMS_BACKEND = "identity.delivery.LocmemSmsBackend"
    settings.ALLOWED_HOSTS = ["*"]
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from authenticators.models import Authenticator
    from identity.models import Profile

    Authenticator.objects.filter(name__in=["sms-code", "email-code"]).update(enabled=True)
    user = get_user_model().objects.create_user("alice", KNOWN["email"], PASSWORD)
    profile, _ = Profile.objects.get_or_create(user=user)
    profile.phone_number, profile.email_verified = KNOWN["phone"], True
    profile.save()


def fresh() -> Any:
    from django.core import mail
    from django.core.cache import cache
    from django.test import Client

    from authenticators.models import OneTimeCode
    from identity import delivery

    cache.clear()
    OneTimeCode.objects.all().delete()
    mail.outbox = []
    delivery.outbox.clear()
    return Client()


def api_post(client: Any, path: str, body: Any) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json",
                       headers={"X-CSRFToken": client.cookies["csrftoken"].value})


def api_start(client: Any, event: str = "sign_in") -> str:
    client.get(API + "config")
    return str(api_post(client, API, {"event": event}).json()["id"])


def page_start(client: Any) -> str:
    url = client.get("/sign-in/")["Location"]
    client.get(url)
    return str(url)


# Each step: prepare (untimed) and return the timed request as a callable.
def password_page(client: Any, who: dict[str, str]) -> Callable[[], Any]:
    url = page_start(client)
    return lambda: client.post(url, {"identifier": who["identifier"], "password": "not the password",
                                     "authenticator": "password"})


def password_api(client: Any, who: dict[str, str]) -> Callable[[], Any]:
    uid = api_start(client)
    return lambda: api_post(client, f"{API}{uid}/password", {"identifier": who["identifier"],
                                                             "password": "not the password"})


def code_page(channel: str) -> Callable[[Any, dict[str, str]], Callable[[], Any]]:
    def step(client: Any, who: dict[str, str]) -> Callable[[], Any]:
        url = page_start(client)
        data = {"email": who["email"]} if channel == "email-code" else {"phone_number": who["phone"]}
        return lambda: client.post(f"{url}?authenticator={channel}", {"authenticator": channel, "action": "send", **data})
    return step


def code_api(event: str, channel: str) -> Callable[[Any, dict[str, str]], Callable[[], Any]]:
    def step(client: Any, who: dict[str, str]) -> Callable[[], Any]:
        uid = api_start(client, event)
        body = {"email": who["email"]} if channel == "email" else {"phone_number": who["phone"]}
        return lambda: api_post(client, f"{API}{uid}/code", body)
    return step


def locked_page(client: Any, who: dict[str, str]) -> Callable[[], Any]:
    from captcha.models import CaptchaStore

    url = page_start(client)
    key = None
    for _ in range(10):
        data = {"identifier": who["identifier"], "password": "not the password", "authenticator": "password"}
        if key:
            data.update(captcha_id=key, captcha_answer=CaptchaStore.objects.get(hashkey=key).response)
        found = re.search(r'name="captcha_id" value="([0-9a-f]+)"', client.post(url, data).content.decode())
        key = found.group(1) if found else None
    return lambda: client.post(url, {"identifier": who["identifier"], "password": PASSWORD, "authenticator": "password"})


STEPS: dict[str, Callable[[Any, dict[str, str]], Callable[[], Any]]] = {
    "password sign-in (page)": password_page,
    "password sign-in (API)": password_api,
    "e-mail code sending (page)": code_page("email-code"),
    "SMS code sending (page)": code_page("sms-code"),
    "e-mail code sending (API)": code_api("sign_in", "email"),
    "SMS code sending (API)": code_api("sign_in", "phone_number"),
    "sign-up code sending (API)": code_api("sign_up", "email"),
    "forgot-password code sending (API)": code_api("forgot_password", "email"),
    "locked after 10 failures (page)": locked_page,
}


def measure(step: Callable[[Any, dict[str, str]], Callable[[], Any]], samples: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for index in range(samples * 2):
        label, who = ("known", KNOWN) if index % 2 == 0 else ("unknown", UNKNOWN)
        request = step(fresh(), who)
        began = time.perf_counter()
        response = request()
        times[label].append((time.perf_counter() - began) * 1000)
        assert response.status_code < 500, response.content[:500]
    return times


def p90(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.9) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=int(os.environ.get("TIMING_SAMPLES", "20")))
    parser.add_argument("--only", default="", help="run the steps whose name contains this text")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the console SMS/e-mail notes, not the numbers
    with tempfile.TemporaryDirectory() as directory:
        setup(directory)
        print("| step | known median (p90) ms | unknown median (p90) ms | difference of medians ms |")
        print("|---|---|---|---|")
        for name, step in STEPS.items():
            if args.only and args.only not in name:
                continue
            samples = max(3, args.samples // 4) if "locked" in name else args.samples
            times = measure(step, samples)
            known, unknown = statistics.median(times["known"]), statistics.median(times["unknown"])
            print(f"| {name} | {known:.1f} ({p90(times['known']):.1f}) | {unknown:.1f} ({p90(times['unknown']):.1f}) "
                  f"| {unknown - known:+.1f} |", flush=True)


if __name__ == "__main__":
    main()
