"""Two gunicorn processes (two sync workers each) of one deployment: one PostgreSQL database, one
Redis, one cache key prefix, one issuer, different ports, as behind a load balancer (SPEC §7: nothing
kept per process that another process must see). One browser (one cookie jar) moves between them.

Needs PostgreSQL and Redis on 127.0.0.1 (skipped otherwise). Its own database (cloned from the
migrated template, tests/servers.py; dropped at the end), Redis ``SERVERS_REDIS_URL`` (default db 3)
under a key prefix of its own (deleted at the end)."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from jwcrypto import jwk

from tests.helpers import PASSWORD
from tests.servers import (
    CODE_ID_FIELD,
    PG_PORT,
    REDIS_PORT,
    LiveBrowser,
    Server,
    clear_redis_prefix,
    free_port,
    manage,
    migrated_database,
    pkce,
    reachable,
    server_env,
    token_request,
    verified_claims,
)

pytestmark = pytest.mark.postgres

CLIENT_ID, CLIENT_SECRET = "two-processes", secrets.token_urlsafe(32)
REDIRECT_URI = "https://rp.example.com/callback"
# identity.keys.VERSION_CHECK_SECONDS: how long a worker trusts its key set before asking Redis.
KEY_CHECK_SECONDS = 2.0


@dataclass
class Deployment:
    a: Server
    b: Server
    database: str
    mail: Path


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if not (reachable(PG_PORT) and reachable(REDIS_PORT)):
        pytest.skip("needs PostgreSQL and Redis on 127.0.0.1")
    tmp = tmp_path_factory.mktemp("two-processes")
    redis_url = os.environ.get("SERVERS_REDIS_URL", "redis://127.0.0.1:6379/3")
    prefix = "two-processes-" + secrets.token_hex(6)
    key_file = tmp / "signing-key.pem"  # as docs/deploy.md says: the same key file on every node
    key_file.write_bytes(jwk.JWK.generate(kty="RSA", size=2048).export_to_pem(private_key=True, password=None))
    mail = tmp / "mail"
    port_a, port_b = free_port(), free_port()
    with migrated_database("portcullis_two") as database:
        shared = {"ISSUER": f"http://127.0.0.1:{port_a}", "SECRET_KEY": secrets.token_urlsafe(40),
                  "SIGNING_KEY_FILE": str(key_file), "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                  "EMAIL_FILE_PATH": str(mail), "PORTCULLIS_NEW_SIGN_IN_EMAILS": "0"}
        env_a = server_env(database, tmp / "var-a", port_a, redis_url=redis_url, prefix=prefix, **shared)
        env_b = server_env(database, tmp / "var-b", port_b, redis_url=redis_url, prefix=prefix, **shared)
        a, b = Server(env_a, port_a, tmp / "a.log"), Server(env_b, port_b, tmp / "b.log")
        try:
            manage(env_a, "shell", "-c", "from identity.identifiers import create_user\n"
                   f"for name in ('alice', 'bob', 'carol', 'dave'):\n"
                   f"    create_user({{'username': name, 'email': name + '@example.com'}}, password={PASSWORD!r})")
            manage(env_a, "createapplication", "confidential", "authorization-code", "--client-id", CLIENT_ID,
                   f"--client-secret={CLIENT_SECRET}", "--redirect-uris", REDIRECT_URI, "--algorithm", "RS256",
                   "--name", "Two processes", "--skip-authorization")
            a.start()
            b.start()
            yield Deployment(a, b, database, mail)
        finally:
            a.stop()
            b.stop()
            clear_redis_prefix(redis_url, prefix)


def sign_in_path(response: requests.Response) -> str:
    assert response.status_code in (302, 303), response.text[:1000]
    location = response.headers["Location"]
    assert re.search(r"/sign-in/[^/]+/$", location), location
    return location


def test_a_code_from_one_process_is_redeemed_and_refreshed_on_the_other(deployment: Deployment) -> None:
    """The interaction starts on A, its page is read from A and posted to B; the code comes from A,
    is redeemed on B and the refresh token works on A, then on B again; the code's replay on A
    revokes the family B refreshed."""
    a, b = deployment.a, deployment.b
    browser = LiveBrowser(deployment.database)
    verifier, challenge = pkce()
    state, response = browser.authorize(a, CLIENT_ID, REDIRECT_URI, challenge)
    path = sign_in_path(response)
    signed_in = browser.sign_in_with_password(a, b, path, "alice", PASSWORD)
    code = browser.code_after(a, signed_in, REDIRECT_URI, state)
    tokens = token_request(b, CLIENT_ID, CLIENT_SECRET, grant_type="authorization_code", code=code,
                           redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text
    _kid, claims = verified_claims(a, tokens.json()["id_token"])
    assert claims["email"] == "alice@example.com" and claims["iss"] == a.url
    refreshed = token_request(a, CLIENT_ID, CLIENT_SECRET, grant_type="refresh_token",
                              refresh_token=tokens.json()["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    userinfo = requests.get(b.url + "/oauth/userinfo", timeout=30,
                            headers={"Authorization": "Bearer " + refreshed.json()["access_token"]})
    assert userinfo.status_code == 200 and userinfo.json()["email"] == "alice@example.com"
    onward = token_request(b, CLIENT_ID, CLIENT_SECRET, grant_type="refresh_token",
                           refresh_token=refreshed.json()["refresh_token"])
    assert onward.status_code == 200, onward.text
    # The code is used once, whichever process is asked; its replay on A ends the family B refreshed.
    again = token_request(a, CLIENT_ID, CLIENT_SECRET, grant_type="authorization_code", code=code,
                          redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    ended = token_request(b, CLIENT_ID, CLIENT_SECRET, grant_type="refresh_token",
                          refresh_token=onward.json()["refresh_token"])
    assert ended.status_code == 400 and ended.json()["error"] == "invalid_grant"


def test_a_captcha_shown_by_one_process_is_answered_on_the_other(deployment: Deployment) -> None:
    """Wrong passwords for bob through A until A's page shows a captcha; the right password with the
    captcha's answer, posted to B, signs bob in."""
    a, b = deployment.a, deployment.b
    browser = LiveBrowser(deployment.database)
    verifier, challenge = pkce()
    state, response = browser.authorize(b, CLIENT_ID, REDIRECT_URI, challenge)
    path = sign_in_path(response)
    for _ in range(5):
        failed = browser.sign_in_with_password(a, a, path, "bob", "wrong password")
        assert failed.status_code == 400, failed.text[:1000]
        browser.get(a, path)
        if browser.captcha_shown():
            break
    assert browser.captcha_shown(), "A never asked for a captcha"
    signed_in = browser.post(b, path, {"identifier": "bob", "password": PASSWORD, "authenticator": "password"})
    code = browser.code_after(b, signed_in, REDIRECT_URI, state)
    tokens = token_request(a, CLIENT_ID, CLIENT_SECRET, grant_type="authorization_code", code=code,
                           redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text


def test_a_lockout_counted_on_one_process_holds_on_the_other(deployment: Deployment) -> None:
    """Ten wrong passwords for dave, all through A (captchas answered as they come): the right password
    through B is refused with 429, and so it is through A."""
    a, b = deployment.a, deployment.b
    browser = LiveBrowser(deployment.database)
    _verifier, challenge = pkce()
    _state, response = browser.authorize(a, CLIENT_ID, REDIRECT_URI, challenge)
    path = sign_in_path(response)
    for _ in range(10):
        failed = browser.sign_in_with_password(a, a, path, "dave", "wrong password")
        assert failed.status_code == 400, failed.text[:1000]
        assert "The sign-in details are incorrect." in failed.text  # counted, not a captcha demand
    fresh = LiveBrowser(deployment.database)
    _state, response = fresh.authorize(b, CLIENT_ID, REDIRECT_URI, challenge)
    for server in (b, a):
        refused = fresh.sign_in_with_password(b, server, sign_in_path(response), "dave", PASSWORD)
        assert refused.status_code == 429, refused.text[:1000]
        assert 0 < int(refused.headers["Retry-After"]) <= 900


def test_a_one_time_code_sent_through_one_process_is_accepted_on_the_other(deployment: Deployment) -> None:
    a, b = deployment.a, deployment.b
    browser = LiveBrowser(deployment.database)
    verifier, challenge = pkce()
    state, response = browser.authorize(a, CLIENT_ID, REDIRECT_URI, challenge)
    path = sign_in_path(response) + "?authenticator=email-code"
    assert browser.get(a, path).status_code == 200
    sent = browser.post(a, path, {"authenticator": "email-code", "action": "send", "email": "carol@example.com"})
    assert sent.status_code == 303, sent.text[:1000]
    messages = [file.read_text() for file in sorted(deployment.mail.glob("*.log"))]
    codes = [re.search(r"Your sign-in code is (\d{6})", text) for text in messages if "To: carol@example.com" in text]
    assert codes and codes[-1], messages
    step = browser.get(b, path)
    code_id = CODE_ID_FIELD.search(step.text)
    assert step.status_code == 200 and code_id, step.text[:1000]
    entered = browser.post(b, path, {"authenticator": "email-code", "code_id": code_id.group(1),
                                     "code": codes[-1].group(1)})
    code = browser.code_after(b, entered, REDIRECT_URI, state)
    tokens = token_request(a, CLIENT_ID, CLIENT_SECRET, grant_type="authorization_code", code=code,
                           redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text
    assert verified_claims(b, tokens.json()["id_token"])[1]["amr"] == ["otp"]


def jwks_kids(server: Server) -> tuple[str, set[str]]:
    """(the worker that answered, the kids it publishes), on a new connection."""
    response = requests.get(server.url + "/.well-known/jwks.json", headers={"Connection": "close"}, timeout=30)
    assert response.status_code == 200
    return response.headers["X-Worker-Pid"], {key["kid"] for key in response.json()["keys"]}


def test_a_key_rotated_in_one_process_reaches_the_other_within_its_check_interval(deployment: Deployment) -> None:
    """Rotated by a third process (manage.py, as an operator's script would; the admin action calls the
    same identity.keys.rotate) while SIGNING_KEY_FILE names the first key: every worker of both servers
    publishes the new key within VERSION_CHECK_SECONDS, and B's new ID tokens are signed with it."""
    a, b = deployment.a, deployment.b
    first = {kid for server in (a, b) for kid in jwks_kids(server)[1]}
    assert len(first) == 1, first  # the configured key, imported once
    rotated = manage(a.env, "shell", "-c", "from identity import keys; print(keys.rotate().kid)").stdout.split()[-1]
    rotated_at = time.monotonic()
    seen: dict[tuple[int, str], float] = {}  # (server port, worker pid) -> seconds after the rotation
    deadline = rotated_at + KEY_CHECK_SECONDS + 8  # the interval, plus room for a loaded machine
    while len(seen) < 4 and time.monotonic() < deadline:
        for server in (a, b):
            for pid, (_, kids) in server.on_each_worker(lambda server=server: jwks_kids(server),
                                                        lambda answer: answer[0]).items():
                if rotated in kids:
                    assert first <= kids  # the old key stays published for its tokens
                    seen.setdefault((server.port, pid), time.monotonic() - rotated_at)
        time.sleep(0.1)
    assert len(seen) == 4, f"workers that publish the new key: {seen}"
    browser = LiveBrowser(deployment.database)
    verifier, challenge = pkce()
    state, response = browser.authorize(a, CLIENT_ID, REDIRECT_URI, challenge)
    signed_in = browser.sign_in_with_password(b, b, sign_in_path(response), "alice", PASSWORD)
    code = browser.code_after(a, signed_in, REDIRECT_URI, state)
    tokens = token_request(b, CLIENT_ID, CLIENT_SECRET, grant_type="authorization_code", code=code,
                           redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text
    kid, _claims = verified_claims(a, tokens.json()["id_token"])
    assert kid == rotated
