"""Upstream identity providers for the tests of upstream sign-in, on 127.0.0.1:

- :func:`start_portcullis`: a second, real Portcullis server (its own SQLite file, a user with a
  verified e-mail, a confidential first-party client), driven through its hosted sign-in page by
  :func:`sign_in_upstream` (a ``requests.Session``, stopping at the redirect to our callback);
- :class:`FakeProvider`: a tiny OpenID Connect provider (and GitHub's OAuth endpoints) that can be
  told to misbehave (wrong nonce, aud, iss, key, expired token, 500, unverified e-mail, ...).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_PASSWORD = "upstream horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


# -- a second Portcullis --------------------------------------------------------------------------------
@dataclass
class UpstreamServer:
    """A running upstream Portcullis: ``issuer`` (its URL), the client registered for our callback,
    and its user (``sub`` is that user's subject identifier there)."""

    issuer: str
    client_id: str
    client_secret: str
    username: str
    email: str
    password: str
    sub: str
    process: subprocess.Popen[bytes]
    directory: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self) -> str:
        return (self.directory / "server.log").read_text(errors="replace")


SETUP = """
import json, os
from oauth2_provider.models import get_application_model
from identity.identifiers import create_user
from identity.models import ApplicationSettings, Profile
from identity.subjects import subject_of
spec = json.loads(os.environ["UPSTREAM_SPEC"])
user = create_user({"username": spec["username"], "email": spec["email"], "first_name": "Bob",
                    "last_name": "Upstream"}, password=spec["password"], profile={"email_verified": True})
Application = get_application_model()
app = Application(name="Downstream Portcullis", client_type=Application.CLIENT_CONFIDENTIAL,
                  authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
                  redirect_uris=" ".join(spec["redirect_uris"]), algorithm=Application.RS256_ALGORITHM,
                  client_secret=spec["client_secret"])
app.save()
ApplicationSettings.objects.create(application=app, first_party=True)
print("SETUP" + json.dumps({"client_id": app.client_id, "sub": subject_of(user)}))
"""


def upstream_env(directory: Path, port: int) -> dict[str, str]:
    """The environment of the upstream's processes: its own database, var dir and cache; DEBUG on."""
    env = {key: value for key, value in os.environ.items()
           if key not in {"DATABASE_URL", "REDIS_URL", "ISSUER", "SIGNING_KEY_PEM", "SIGNING_KEY_FILE"}}
    env.update(DATABASE_URL=f"sqlite:///{directory / 'upstream.sqlite3'}", PORTCULLIS_VAR_DIR=str(directory),
               DEBUG="1", ISSUER=f"http://127.0.0.1:{port}", SECRET_KEY=secrets.token_urlsafe(40),
               DJANGO_SETTINGS_MODULE="config.settings", ALLOWED_HOSTS="127.0.0.1,localhost",
               PYTHONUNBUFFERED="1")
    return env


def start_portcullis(directory: Path, redirect_uris: list[str], *, username: str = "bob",
                     email: str = "bob@example.org", password: str = UPSTREAM_PASSWORD,
                     timeout: float = 90) -> UpstreamServer:
    """Migrate a fresh upstream database in ``directory``, create its user and client, and serve it
    (``manage.py runserver --noreload``) until discovery answers. Call ``.stop()`` when done."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = upstream_env(directory, port)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=timeout)
    client_secret = secrets.token_urlsafe(32)
    spec = json.dumps({"username": username, "email": email, "password": password,
                       "redirect_uris": redirect_uris, "client_secret": client_secret})
    setup = subprocess.run([*manage, "shell", "-c", SETUP], env={**env, "UPSTREAM_SPEC": spec}, cwd=ROOT, check=True,
                           capture_output=True, text=True, timeout=timeout)
    line = next(line for line in setup.stdout.splitlines() if line.startswith("SETUP"))
    made = json.loads(line[len("SETUP"):])
    log = (directory / "server.log").open("wb")
    process = subprocess.Popen([*manage, "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
                               env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    server = UpstreamServer(f"http://127.0.0.1:{port}", made["client_id"], client_secret, username, email,
                            password, made["sub"], process, directory)
    _wait_for(server, timeout)
    return server


def _wait_for(server: UpstreamServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError("the upstream server stopped:\n" + server.log())
        try:
            if requests.get(server.issuer + "/.well-known/openid-configuration", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("the upstream server did not answer:\n" + server.log())


def sign_in_upstream(authorize_url: str, callback_prefix: str, *, identifier: str,
                     password: str = UPSTREAM_PASSWORD) -> dict[str, str]:
    """Be the browser: open the upstream authorization URL, sign in on its hosted page, and stop at
    the redirect to ``callback_prefix``; the callback's query parameters (``code``, ``state``, ``iss``)."""
    import re

    browser = requests.Session()
    response = browser.get(authorize_url, allow_redirects=False, timeout=10)
    for _hop in range(10):
        if response.status_code not in (301, 302, 303, 307, 308):
            raise AssertionError(f"unexpected {response.status_code} at {response.url}: {response.text[:500]}")
        location = urljoin(response.url, response.headers["Location"])
        if location.startswith(callback_prefix):
            return query(location)
        page = browser.get(location, allow_redirects=False, timeout=10)
        if page.status_code == 200 and "/sign-in/" in location:
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            assert token, page.text[:500]
            response = browser.post(location, data={"csrfmiddlewaretoken": token.group(1), "identifier": identifier,
                                                    "password": password, "authenticator": "password"},
                                    allow_redirects=False, timeout=10)
        else:
            response = page
    raise AssertionError("too many redirects")


# -- a fake OpenID Connect provider (and GitHub) -----------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def half_hash(value: str) -> str:
    return b64url(hashlib.sha256(value.encode()).digest()[:16])


@dataclass
class FakeProvider:
    """An upstream on ``url``. ``faults`` makes it misbehave, one word each: ``nonce``, ``aud``,
    ``iss``, ``other_key`` (signed by a key not in its JWKS, same kid), ``unknown_kid``,
    ``expired``, ``token_500``, ``token_error``, ``no_id_token``, ``bad_at_hash``. ``claims`` are
    added to the ID token (``email_verified: False``, say); ``issuer`` may hold ``{tenantid}``
    (Entra ID's multi-tenant discovery). ``requests`` logs ``(method, path, form)``."""

    client_id: str = "downstream"
    client_secret: str = "downstream-secret"
    sub: str = "upstream-user-1"
    claims: dict[str, Any] = field(default_factory=dict)
    faults: set[str] = field(default_factory=set)
    issuer_template: str = ""
    github_user: dict[str, Any] = field(default_factory=dict)
    github_emails: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
        self.codes: dict[str, dict[str, str]] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def issuer(self) -> str:
        return self.issuer_template or self.url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # the browser's leg: what the authorization endpoint would redirect back with
    def authorize(self, authorize_url: str) -> dict[str, str]:
        params = query(authorize_url)
        code = secrets.token_urlsafe(16)
        self.codes[code] = params
        return {"code": code, "state": params["state"]}

    def metadata(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "authorization_endpoint": self.url + "/authorize",
                "token_endpoint": self.url + "/token", "jwks_uri": self.url + "/jwks",
                "userinfo_endpoint": self.url + "/userinfo",
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]}

    def id_token(self, request: dict[str, str], access_token: str) -> str:
        now = int(time.time())
        issuer = self.issuer.replace("{tenantid}", "tenant-1")
        claims: dict[str, Any] = {
            "iss": issuer + "/other" if "iss" in self.faults else issuer, "sub": self.sub,
            "aud": "someone-else" if "aud" in self.faults else self.client_id,
            "iat": now - (7200 if "expired" in self.faults else 0),
            "exp": now - 3600 if "expired" in self.faults else now + 300,
            "nonce": "wrong" if "nonce" in self.faults else request.get("nonce"),
            "at_hash": half_hash("x" if "bad_at_hash" in self.faults else access_token),
            "tid": "tenant-1", "email": "carol@example.net", "email_verified": True, "name": "Carol Upstream",
            **self.claims,
        }
        key = self.other_key if "other_key" in self.faults else self.key
        kid = "k2" if "unknown_kid" in self.faults else "k1"
        return jwt.encode({"alg": "RS256", "kid": kid}, claims, key)

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        if "token_500" in self.faults:
            return 500, {"error": "server_error"}
        request = self.codes.pop(form.get("code", ""), None)
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        authenticated = authorization == expected or (form.get("client_id") == self.client_id
                                                      and form.get("client_secret") == self.client_secret)
        if request is None or "token_error" in self.faults or not authenticated:
            return 400, {"error": "invalid_grant"}
        challenge = b64url(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
        if request.get("code_challenge") != challenge or request.get("redirect_uri") != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        access_token = secrets.token_urlsafe(24)
        answer: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer", "expires_in": 300}
        if "no_id_token" not in self.faults and not self.github_user:
            answer["id_token"] = self.id_token(request, access_token)
        return 200, answer


def _handler(provider: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            path = urlsplit(self.path).path
            provider.requests.append(("GET", path, {}))
            if path.endswith("/.well-known/openid-configuration"):
                self.answer(200, provider.metadata())
            elif path == "/jwks":
                self.answer(200, {"keys": [provider.key.as_dict(private=False)]})
            elif path in ("/userinfo", "/user", "/user/emails"):
                if not self.headers.get("Authorization", "").startswith("Bearer "):
                    self.answer(401, {"message": "Requires authentication"})
                elif path == "/user/emails":
                    self.answer(200, provider.github_emails)
                elif path == "/user":
                    self.answer(200, provider.github_user)
                else:
                    self.answer(200, {"sub": provider.sub, "email": "carol@example.net", "email_verified": True,
                                      **provider.claims})
            else:
                self.answer(404, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802
            path = urlsplit(self.path).path
            length = int(self.headers.get("Content-Length") or 0)
            form = {key: values[0] for key, values in parse_qs(self.rfile.read(length).decode()).items()}
            provider.requests.append(("POST", path, form))
            if path in ("/token", "/login/oauth/access_token"):
                status, body = provider.token(form, self.headers.get("Authorization", ""))
                if provider.github_user and status != 200:
                    status = 200  # GitHub answers errors with 200 and an "error" member
                self.answer(status, body)
            else:
                self.answer(404, {"error": "not_found"})

    return Handler
