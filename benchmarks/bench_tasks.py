"""Django-side steps of the benchmark, run by benchmarks/run.py in a subprocess with the same
environment as the server (DJANGO_SETTINGS_MODULE=benchmarks.bench_settings).

    setup    migrate, bootstrap, one confidential first-party application with a known secret,
             N users with a known password; then counts the queries of one request per endpoint
    hash     times django.contrib.auth.hashers.make_password (the password hasher in force)
    cleanup  deletes the benchmark's cache keys (its own KEY_PREFIX only)

Each prints one line ``BENCH_JSON {...}`` with its result.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
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
    """Queries of one signed-in authorize, one token and one userinfo request, and of warm discovery
    and JWKS, counted in-process with Django's test client against the benchmark database."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

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
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/oauth/authorize?" + urlencode(query))
    counts["authorize"] = len(captured)
    code = parse_qs(urlsplit(response["Location"]).query).get("code", [""])[0]
    basic = base64.b64encode(f"{client_id}:{args.secret}".encode()).decode()
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/oauth/token", {"grant_type": "authorization_code", "code": code,
                                                "redirect_uri": args.redirect_uri, "code_verifier": verifier},
                               HTTP_AUTHORIZATION=f"Basic {basic}")
    counts["token"] = len(captured)
    if response.status_code != 200:
        counts["token_error"] = response.status_code
        return counts
    access_token = response.json()["access_token"]
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/oauth/userinfo", HTTP_AUTHORIZATION=f"Bearer {access_token}")
    counts["userinfo"] = len(captured)
    for name, path in (("discovery", "/.well-known/openid-configuration"), ("jwks", "/.well-known/jwks.json")):
        client.get(path)
        with CaptureQueriesContext(connection) as captured:
            client.get(path)
        counts[name] = len(captured)
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
    args = parser.parse_args()
    {"setup": setup, "hash": hash_time, "cleanup": cleanup}[args.command](args)


if __name__ == "__main__":
    main()
