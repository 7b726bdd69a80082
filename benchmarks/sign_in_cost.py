"""What a hosted-page password sign-in costs beside its password hash, in CPU, in-process.

    python benchmarks/sign_in_cost.py [--sign-ins N] [--settings MODULE]

It signs ``N`` (30) users in one after another through the WSGI handler, as gunicorn hands the
application the POST of the sign-in form (each from a new browser, with an interaction prepared
before the clock starts), and prints the median CPU of one POST (all threads: Argon2 runs its lanes
in threads), the hash's share of it (timed around argon2-cffi's ``verify_secret``, which
``check_password`` calls) and what is left; then the same POST with the hash taken out
(``verify_secret`` answering at once, so that only our own work is left, on warm caches), and one
``check_password`` alone. docs/performance.md ("Where a sign-in's CPU goes beside the hash") has
what these figures showed.

It adds users (``signin-cost-<n>``) to the configured database: run it on a scratch one, with the
environment of the server (``DATABASE_URL``, ``REDIS_URL``, ``ISSUER``, ``DEBUG=0``,
``LOG_LEVEL=WARNING``); ``EMAIL_BACKEND`` is set to the in-memory one. About a minute.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

PASSWORD = "sign-in-cost-password-1"
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sign-ins", type=int, default=30)
    parser.add_argument("--settings", default="benchmarks.bench_settings")
    args = parser.parse_args()
    os.environ["DJANGO_SETTINGS_MODULE"] = args.settings
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    import argon2._password_hasher as argon2_hasher
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import check_password, make_password
    from django.core.management import call_command
    from django.test import Client

    from config.wsgi import application
    from identity.models import Profile

    call_command("migrate", verbosity=0)
    host = urlsplit(os.environ.get("ISSUER", "") or "http://127.0.0.1:8000").netloc
    count = args.sign_ins
    User = get_user_model()
    names = [f"signin-cost-{index}" for index in range(count)]
    for name in names:
        if not User.objects.filter(username=name).exists():
            user = User.objects.create_user(name, f"{name}@example.com", None)
            Profile.objects.create(user=user, email_verified=True)
    User.objects.filter(username__in=names).update(password=make_password(PASSWORD))

    hashing: list[float] = []
    real_verify = argon2_hasher.verify_secret

    def timed_verify(hash: bytes, secret: bytes, type: Any) -> Literal[True]:
        started = time.process_time()
        try:
            return real_verify(hash, secret, type)
        finally:
            hashing.append(time.process_time() - started)

    def prepare() -> tuple[str, str, str]:
        """A new browser at the sign-in page: its interaction's URL, CSRF token and cookies."""
        browser = Client(HTTP_HOST=host)
        url = browser.get("/sign-in/?next=/bench/bare")["Location"]
        match = CSRF.search(browser.get(url).content.decode())
        if not match:
            raise SystemExit("the sign-in page has no CSRF token")
        return url, match.group(1), "; ".join(f"{key}={morsel.value}" for key, morsel in browser.cookies.items())

    def post(prepared: tuple[str, str, str], username: str) -> None:
        url, token, cookies = prepared
        body = urlencode({"csrfmiddlewaretoken": token, "identifier": username, "password": PASSWORD,
                          "authenticator": "password"}).encode()
        environ = {
            "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": url, "QUERY_STRING": "", "RAW_URI": url,
            "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": host, "HTTP_COOKIE": cookies,
            "HTTP_REFERER": f"http://{host}{url}", "HTTP_USER_AGENT": "sign-in-cost", "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/x-www-form-urlencoded", "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.multithread": False,
            "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.url_scheme": "http",
            "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", "SERVER_NAME": host.split(":")[0],
            "SERVER_PORT": host.partition(":")[2] or "80"}
        answered: list[str] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answered.append(status)
            return lambda data: None

        response = application(environ, start_response)
        b"".join(response)
        response.close()
        if not answered or not answered[0].startswith("303"):
            raise SystemExit(f"the sign-in POST answered {answered[:1]}, not 303")

    def sign_ins() -> list[float]:
        prepared = [prepare() for _ in names]  # before the clock, as the peer harness does
        spent = []
        for item, name in zip(prepared, names, strict=True):
            started = time.process_time()
            post(item, name)
            spent.append(time.process_time() - started)
        return spent

    def ms(values: list[float]) -> str:
        return f"{1000 * statistics.median(values):.1f} ms"

    argon2_hasher.verify_secret = timed_verify
    post(prepare(), names[0])  # warm-up
    hashing.clear()
    with_hash = sign_ins()
    if len(hashing) != len(with_hash):
        raise SystemExit("the sign-ins did not check an Argon2 hash (PASSWORD_HASHERS: Argon2 first)")
    rest = [total - hashed for total, hashed in zip(with_hash, hashing, strict=True)]
    print(f"sign-in POST: {ms(with_hash)} of CPU, the hash {ms(hashing)} of it, the rest {ms(rest)}")

    argon2_hasher.verify_secret = _no_hash
    without = sign_ins()
    print(f"sign-in POST with the hash taken out: {ms(without)}")

    argon2_hasher.verify_secret = timed_verify
    encoded = make_password(PASSWORD)
    alone = []
    for _ in range(min(count, 10)):
        started = time.process_time()
        check_password(PASSWORD, encoded)
        alone.append(time.process_time() - started)
    print(f"one check_password alone: {ms(alone)}; the sign-in POST ÷ it: "
          f"{statistics.median(with_hash) / statistics.median(alone):.2f} ×")


def _no_hash(hash: bytes, secret: bytes, type: Any) -> Literal[True]:
    """argon2-cffi's ``verify_secret`` with the hash taken out: every password matches."""
    return True


if __name__ == "__main__":
    main()
