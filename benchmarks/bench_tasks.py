"""Django-side steps of the benchmark, run by benchmarks/run.py in a subprocess with the same
environment as the server (DJANGO_SETTINGS_MODULE=benchmarks.bench_settings).

    setup    migrate, bootstrap, one confidential first-party application with a known secret,
             N users with a known password; then counts the queries of one request per endpoint
    hash     times django.contrib.auth.hashers.make_password (the password hasher in force)
    cleanup  deletes the benchmark's cache keys (its own KEY_PREFIX only)
    costs    SQL statements, commits and Redis commands of one request per endpoint, as a Markdown
             table (adds an application and a few users to the configured database: use a scratch one);
             --show "sign-in POST" prints those requests' SQL

Each prints one line ``BENCH_JSON {...}`` with its result.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.bench_settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402


def emit(result: dict) -> None:
    print("BENCH_JSON " + json.dumps(result), flush=True)


def setup(args: argparse.Namespace) -> None:
    from django.contrib.auth import get_user_model
    from oauth2_provider.models import get_application_model

    from identity.models import ApplicationSettings, Profile

    call_command("migrate", interactive=False, verbosity=0)
    call_command("portcullis_bootstrap", base_url=args.base_url, stdout=open(os.devnull, "w"))

    Application = get_application_model()
    application = Application(
        name="Benchmark relying party",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=args.redirect_uri,
        algorithm=Application.RS256_ALGORITHM,
    )
    application.client_secret = args.secret  # DOT hashes it on save with CLIENT_SECRET_HASHER
    application.save()
    ApplicationSettings.objects.create(application=application, first_party=True)

    from django.contrib.auth.hashers import make_password

    User = get_user_model()
    users = []
    for index in range(args.users):
        username = f"bench{index}"
        user = User.objects.create_user(username, f"{username}@example.com", None,
                                        first_name="Bench", last_name=str(index))
        Profile.objects.create(user=user, email_verified=True)
        users.append(username)
    # One hash of the password for every user (a hash each would cost the setup a second a user on a
    # busy machine); sign-ins still check it at the hasher's full cost.
    User.objects.filter(username__in=users).update(password=make_password(args.password))

    stored_secret = Application.objects.get(pk=application.pk).client_secret
    emit({
        "client_id": application.client_id,
        "users": users,
        "secret_hash_algorithm": stored_secret.split("$", 1)[0],
        "queries": count_queries(application.client_id, args, users[0]),
    })


def count_queries(client_id: str, args: argparse.Namespace, username: str) -> dict:
    """SQL statements (and commits) of one signed-in authorize, one token and one userinfo request,
    and of warm discovery and JWKS, counted in-process with Django's test client against the
    benchmark database."""
    from django.test import Client

    host = urlsplit(args.base_url).netloc
    client = Client(HTTP_HOST=host)

    def params() -> tuple[dict, str]:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        return {"response_type": "code", "client_id": client_id, "redirect_uri": args.redirect_uri,
                "scope": "openid profile email", "state": secrets.token_urlsafe(8),
                "nonce": secrets.token_urlsafe(8), "code_challenge": challenge,
                "code_challenge_method": "S256"}, verifier

    # Sign in once (not counted).
    first, _ = params()
    response = client.get("/oauth/authorize?" + urlencode(first))
    for _hop in range(5):
        if response.status_code in (302, 303) and "/sign-in/" in response["Location"]:
            sign_in = response["Location"]
            client.get(sign_in)
            response = client.post(sign_in, {"identifier": username, "password": args.password,
                                              "authenticator": "password"})
            response = client.get(response["Location"])
        else:
            break
    if response.status_code != 302 or not response["Location"].startswith(args.redirect_uri):
        return {"error": f"sign-in for query counting failed: {response.status_code}"}
    client.get("/.well-known/jwks.json")

    counts: dict[str, object] = {}
    query, verifier = params()
    work, response = measure(lambda: client.get("/oauth/authorize?" + urlencode(query)))
    counts["authorize"], counts["authorize_commits"] = work["statements"], work["commits"]
    code = parse_qs(urlsplit(response["Location"]).query).get("code", [""])[0]
    basic = base64.b64encode(f"{client_id}:{args.secret}".encode()).decode()
    work, response = measure(lambda: client.post("/oauth/token", {
        "grant_type": "authorization_code", "code": code, "redirect_uri": args.redirect_uri,
        "code_verifier": verifier}, HTTP_AUTHORIZATION=f"Basic {basic}"))
    counts["token"], counts["token_commits"] = work["statements"], work["commits"]
    if response.status_code != 200:
        counts["token_error"] = response.status_code
        return counts
    access_token = response.json()["access_token"]
    work, response = measure(lambda: client.get("/oauth/userinfo", HTTP_AUTHORIZATION=f"Bearer {access_token}"))
    counts["userinfo"], counts["userinfo_commits"] = work["statements"], work["commits"]
    for name, path in (("discovery", "/.well-known/openid-configuration"), ("jwks", "/.well-known/jwks.json")):
        client.get(path)
        work, _response = measure(lambda path=path: client.get(path))
        counts[name] = work["statements"]
    return counts


def hash_time(args: argparse.Namespace) -> None:
    from django.contrib.auth.hashers import get_hasher, make_password

    make_password("warm-up password")
    timings, cpu = [], []
    for _ in range(args.count):
        started, started_cpu = time.perf_counter(), time.process_time()
        make_password(args.password)
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    emit({"algorithm": get_hasher().algorithm, "median_s": statistics.median(timings), "all_s": timings,
          "cpu_s": sum(cpu) / len(cpu)})


def cleanup(args: argparse.Namespace) -> None:
    from django.core.cache import cache

    deleted = cache.delete_pattern("*") if hasattr(cache, "delete_pattern") else None
    emit({"deleted_cache_keys": deleted})


# -- costs: SQL statements, commits and Redis commands per request ------------------------------------

class RedisCounter:
    """Counts the Redis commands (and round trips) redis-py sends while active: plain commands
    through ``Redis.execute_command``, a pipeline's queued commands when it executes."""

    def __init__(self) -> None:
        self.commands = 0
        self.round_trips = 0
        self._saved: list[tuple[type, str, object]] = []

    def __enter__(self) -> RedisCounter:
        try:
            from redis.client import Pipeline, Redis
        except ImportError:  # no redis-py: nothing to count
            return self
        counter = self
        plain, pipelined = Redis.execute_command, Pipeline.execute

        def execute_command(client, *args, **kwargs):
            counter.commands += 1
            counter.round_trips += 1
            return plain(client, *args, **kwargs)

        def execute(pipeline, *args, **kwargs):
            if pipeline.command_stack:
                counter.commands += len(pipeline.command_stack)
                counter.round_trips += 1
            return pipelined(pipeline, *args, **kwargs)

        self._saved = [(Redis, "execute_command", plain), (Pipeline, "execute", pipelined)]
        Redis.execute_command = execute_command
        Pipeline.execute = execute
        return self

    def __exit__(self, *exc: object) -> None:
        for klass, name, original in self._saved:
            setattr(klass, name, original)


WRITES = ("INSERT", "UPDATE", "DELETE", "WITH-WRITE")
WRITE_IN_WITH = re.compile(r"\b(?:INSERT INTO|UPDATE|DELETE FROM)\b")


def measure(request_fn: Any) -> tuple[dict, Any]:
    """Run ``request_fn()`` once, counting its SQL statements, commits and Redis commands."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured, RedisCounter() as redis_counter:
        response = request_fn()
    statements: Counter = Counter()
    commits, depth = 0, 0
    for query in captured.captured_queries:
        word = (str(query["sql"]).split(None, 1) or [""])[0].upper()
        if word == "BEGIN":
            depth += 1
        elif word in ("COMMIT", "ROLLBACK"):
            depth = max(0, depth - 1)
            commits += word == "COMMIT"
        elif word not in ("SAVEPOINT", "RELEASE"):
            if word == "WITH" and WRITE_IN_WITH.search(str(query["sql"])):
                word = "WITH-WRITE"  # data-modifying WITH queries: several rows, one statement
            statements[word] += 1
            if word in WRITES and not depth:
                commits += 1  # autocommit: each write outside a transaction is one
    writes = sum(statements[word] for word in WRITES)
    return {"status": response.status_code, "statements": sum(statements.values()), "writes": writes,
            "commits": commits, "redis": redis_counter.commands, "redis_round_trips": redis_counter.round_trips,
            "sql": [str(query["sql"]) for query in captured.captured_queries]}, response


def costs(args: argparse.Namespace) -> None:
    """One request of each endpoint, counted; a first round warms the caches and is not counted,
    then ``--repeat`` rounds are, and the median of each count is shown."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from oauth2_provider.models import get_application_model

    from authenticators.models import Authenticator
    from identity.models import ApplicationSettings, Profile

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # nothing printed, nothing sent
    call_command("migrate", interactive=False, verbosity=0)
    call_command("portcullis_bootstrap", base_url=args.base_url, stdout=open(os.devnull, "w"))
    Authenticator.objects.update_or_create(name="email-code", defaults={
        "auth_type": "email-code", "title": "E-mail code", "enabled": True, "sort_order": 5})
    run = secrets.token_hex(3)
    secret = secrets.token_urlsafe(32)
    Application = get_application_model()
    application = Application(name=f"Cost probe {run}", client_type=Application.CLIENT_CONFIDENTIAL,
                              authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
                              redirect_uris=args.redirect_uri, algorithm=Application.RS256_ALGORITHM)
    application.client_secret = secret
    application.save()
    ApplicationSettings.objects.create(application=application, first_party=True, headless_api=True)
    client_id = application.client_id
    password = "cost-" + secrets.token_urlsafe(12)
    User = get_user_model()
    names = [f"cost-{run}-{index}" for index in range(args.repeat + 1)]
    for name in names:
        user = User.objects.create_user(name, f"{name}@example.com", password, first_name="Cost", last_name="Probe")
        Profile.objects.create(user=user, email_verified=True)

    host = urlsplit(args.base_url).netloc
    basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    results: dict[str, list[dict]] = {}

    def step(counted: bool, name: str, request_fn: Any, *expect: int) -> Any:
        result, response = measure(request_fn)
        if response.status_code not in expect:
            raise SystemExit(f"{name}: HTTP {response.status_code}, expected {expect}: {response.content[:300]!r}")
        if counted:
            results.setdefault(name, []).append(result)
            if args.show and args.show.lower() in name.lower():
                print(f"-- {name}:", *(f"   {sql[:args.width]}" for sql in result["sql"]), sep="\n", file=sys.stderr)
        return response

    def json_post(path: str, body: dict, **headers: str) -> Any:
        return Client(HTTP_HOST=host).post(path, json.dumps(body), content_type="application/json", **headers)

    def one_round(counted: bool, username: str) -> None:
        email = f"{username}@example.com"
        browser = Client(HTTP_HOST=host)
        page_url = step(counted, "hosted sign-in start (GET /sign-in/ → 302)", lambda: browser.get("/sign-in/?next=/"),
                        302)["Location"]
        step(counted, "hosted sign-in page GET", lambda: browser.get(page_url), 200)
        step(counted, "hosted sign-in POST (password)", lambda: browser.post(page_url, {
            "identifier": username, "password": password, "authenticator": "password"}), 302, 303)
        step(counted, "discovery", lambda: Client(HTTP_HOST=host).get("/.well-known/openid-configuration"), 200)
        step(counted, "JWKS", lambda: Client(HTTP_HOST=host).get("/.well-known/jwks.json"), 200)
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": args.redirect_uri,
                  "scope": "openid profile email", "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8),
                  "code_challenge": challenge, "code_challenge_method": "S256"}
        response = step(counted, "authorize (signed in)", lambda: browser.get("/oauth/authorize?" + urlencode(params)), 302)
        code = parse_qs(urlsplit(response["Location"]).query).get("code", [""])[0]
        backchannel = Client(HTTP_HOST=host, HTTP_AUTHORIZATION=basic)
        issued = step(counted, "token (code exchange)", lambda: backchannel.post("/oauth/token", {
            "grant_type": "authorization_code", "code": code, "redirect_uri": args.redirect_uri,
            "code_verifier": verifier}), 200).json()
        tokens = step(counted, "token (refresh)", lambda: backchannel.post("/oauth/token", {
            "grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}), 200).json()
        step(counted, "userinfo", lambda: Client(HTTP_HOST=host).get(
            "/oauth/userinfo", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}"), 200)
        step(counted, "introspect", lambda: backchannel.post("/oauth/introspect", {"token": tokens["access_token"]}), 200)
        step(counted, "revoke (a refresh token)", lambda: backchannel.post("/oauth/revoke", {
            "token": tokens["refresh_token"], "token_type_hint": "refresh_token"}), 200)
        step(counted, "e-mail code send (POST /api/auth/send-code)", lambda: json_post("/api/auth/send-code", {
            "client_id": client_id, "client_secret": secret, "email": email}, HTTP_X_AUTHENTICATOR="email-code"), 200)
        step(counted, "headless login-by-password", lambda: json_post("/api/authorization/login-by-password", {
            "client_id": client_id, "client_secret": secret, "email": email, "password": password}), 200)


    for index, username in enumerate(names):
        one_round(index > 0, username)  # the first round warms the caches

    medians = {name: {key: int(statistics.median(row[key] for row in rows)) for key in rows[0] if key not in ("status", "sql")}
               for name, rows in results.items()}
    print(costs_table(medians, args.repeat))
    emit({"costs": medians})


def costs_table(medians: dict[str, dict[str, int]], repeat: int) -> str:
    from django.conf import settings

    lines = [
        "| request | SQL statements | of them writes | commits | Redis commands (round trips) |",
        "|---|---|---|---|---|",
    ]
    for name, row in medians.items():
        lines.append(f"| {name} | {row['statements']} | {row['writes']} | {row['commits']} | "
                     f"{row['redis']} ({row['redis_round_trips']}) |")
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    lines += ["", f"Counted in-process (Django's test client; {engine}; cache "
              f"{settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]}; sessions "
              f"{settings.SESSION_ENGINE.rsplit('.', 1)[-1]}), median of {repeat} requests of each, after one "
              "uncounted round that warms the caches. Commits: each write outside a transaction counts one, "
              "each transaction one."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--base-url", required=True)
    p.add_argument("--redirect-uri", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--password", required=True)
    p = sub.add_parser("hash")
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--password", required=True)
    sub.add_parser("cleanup")
    p = sub.add_parser("costs")
    p.add_argument("--base-url", default=os.environ.get("ISSUER", "http://127.0.0.1:8000"))
    p.add_argument("--redirect-uri", default="http://127.0.0.1:9/cb")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--show", default="", help="print the SQL of the requests whose name contains this")
    p.add_argument("--width", type=int, default=160, help="characters of each SQL statement shown")
    args = parser.parse_args()
    {"setup": setup, "hash": hash_time, "cleanup": cleanup, "costs": costs}[args.command](args)


if __name__ == "__main__":
    main()
