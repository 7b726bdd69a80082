"""The tests' helpers, in one module: applications and flows that speak the protocol, checks of JWTs
the way a relying party makes them (with the published JWKS only), token-endpoint calls, page
assertions. Fixtures live in conftest.py."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import secrets
import shutil
import string
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from jwcrypto import jwk, jwt
from oauth2_provider.models import get_application_model

from identity.models import ApplicationSettings

Application = get_application_model()
PASSWORD = "correct horse battery staple"
# Debian's Chromium, driven by Playwright (which cannot download browsers here).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REDIRECT_URI = "https://rp.example.com/callback"

NEW_PASSWORD = "a long and unusual passphrase"  # a password the policy accepts, for sign-up and reset
HUGE = "A" * 100_000
NUL = "\x00"

# Form bodies Django cannot read (the tests of "never a 500" send them with CSRF as a browser would).
CSRF_SECRET = "A" * 32  # a well-formed CSRF cookie; the form repeats it, as a real page would
FORM = f"identifier=alice&password=x&key=k&decision=allow&consent=1&token=x&csrfmiddlewaretoken={CSRF_SECRET}"
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART_UTF16 = ("--b\r\nContent-Disposition: form-data; name=\"identifier\"\r\n\r\nalice\r\n--b--\r\n").encode("utf-16")
UNREADABLE_FORMS: dict[str, tuple[str, bytes]] = {
    "utf-16": (f"{URLENCODED}; charset=utf-16", FORM.encode("utf-16")),
    "utf-16-declared-utf-8-sent": (f"{URLENCODED}; charset=utf-16", FORM.encode()),
    "utf-32": (f"{URLENCODED}; charset=utf-32", FORM.encode("utf-32")),
    "latin-1": (f"{URLENCODED}; charset=iso-8859-1", FORM.encode("latin-1")),
    "too-many-fields": (URLENCODED, ("&".join(f"f{i}=x" for i in range(1500)) + "&" + FORM).encode()),
    "multipart-too-many-fields": ("multipart/form-data; boundary=b", (
        "".join(f"--b\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nx\r\n" for i in range(1500)) + "--b--\r\n").encode()),
}


def browser_request(session: SessionStore | None = None) -> Any:
    """A request of an anonymous browser with a session, for calling the engine directly."""
    request = RequestFactory().post("/sign-in/x/")
    request.session = session or SessionStore()
    request.user = AnonymousUser()
    return request


def password_data(identifier: str = "alice", password: str = PASSWORD) -> dict[str, str]:
    return {"identifier": identifier, "password": password}






# Every client secret make_application() made in this process: the session's log check looks for them
# (tests/log_capture.py).
CLIENT_SECRETS: list[str] = []


@dataclass
class ClientApp:
    application: Any
    client_id: str
    client_secret: str | None


def make_application(*, public: bool = False, first_party: bool = True, redirect_uri: str = REDIRECT_URI,
                     post_logout: str = "https://rp.example.com/bye", name: str = "Relying party",
                     headless: bool = False) -> ClientApp:
    secret = None if public else secrets.token_urlsafe(32)
    application = Application(
        name=name,
        client_type=Application.CLIENT_PUBLIC if public else Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uri,
        post_logout_redirect_uris=post_logout,
        algorithm=Application.RS256_ALGORITHM,
    )
    if secret:
        application.client_secret = secret
        CLIENT_SECRETS.append(secret)
    application.save()
    ApplicationSettings.objects.create(application=application, first_party=first_party, headless_api=headless)
    return ClientApp(application, application.client_id, secret)


def credentials(app: ClientApp) -> dict[str, str]:
    """The JSON APIs' client authentication in the body: ``client_id``, and a confidential app's secret."""
    return {"client_id": app.client_id, **({"client_secret": app.client_secret} if app.client_secret else {})}














def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def authorize_params(app: ClientApp, challenge: str | None = None, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile email phone",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
    }
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return params


def sign_in_on_page(client: Client, sign_in_url: str, identifier: str = "alice", password: str = PASSWORD) -> Any:
    page = client.get(sign_in_url)
    assert page.status_code == 200, page.content
    return client.post(sign_in_url, {"identifier": identifier, "password": password, "authenticator": "password"})


@dataclass
class Flow:
    """Drives a browser through authorize → sign-in → code with the Django test client."""

    client: Client

    def authorize(self, params: dict[str, str]) -> Any:
        return self.client.get("/oauth/authorize?" + urlencode(params))

    def code_for(self, app: ClientApp, params: dict[str, str] | None = None, *, identifier: str = "alice",
                 password: str = PASSWORD) -> tuple[str, dict[str, str]]:
        params = params or authorize_params(app)
        response = self.authorize(params)
        while response.status_code in (302, 303) and "/sign-in/" in response["Location"]:
            response = sign_in_on_page(self.client, response["Location"], identifier, password)
            assert response.status_code == 303, response.content
            response = self.client.get(response["Location"])
        assert response.status_code == 302, getattr(response, "content", b"")[:500]
        query = query_of(response["Location"])
        assert "code" in query, query
        return query["code"], params

    def token(self, app: ClientApp, code: str, params: dict[str, str], **extra: str) -> Any:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": params["redirect_uri"],
                "client_id": app.client_id, **extra}
        if app.client_secret:
            data["client_secret"] = app.client_secret
        return self.client.post("/oauth/token", data)




def form_errors(html: str) -> list[str]:
    """The messages of a page's error summary (the element a failed form focuses on load)."""
    summary = re.search(r'<div class="error-summary" id="form-error" role="alert" tabindex="-1" autofocus[^>]*>(.*?)</div>', html, re.S)
    assert summary, html
    return [re.sub(r"<[^>]+>", "", item) for item in re.findall(r"<li>(.*?)</li>", summary.group(1), re.S)]


def sign_in_url_from(response: Any) -> str:
    location = response["Location"]
    assert re.search(r"/sign-in/[^/]+/$", location), location
    return location




def run_together(count: int, work: Any) -> list[Any]:
    """Run ``work(index)`` in ``count`` threads released at once; each result, or the exception it
    raised. Each thread closes its own database connection (transactional tests)."""
    import threading

    from django.db import connection

    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except Exception as error:  # noqa: BLE001  the caller asserts on it
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


# -- ID tokens and JWTs ------------------------------------------------------------------------------
def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_header(token: str) -> dict[str, Any]:
    return json.loads(b64url_decode(token.split(".")[0]))


def jwt_payload(token: str) -> dict[str, Any]:
    """The claims, unverified (for tests that build tampered tokens)."""
    return json.loads(b64url_decode(token.split(".")[1]))


def fetch_jwks(client: Client) -> tuple[dict[str, Any], jwk.JWKSet]:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200, response.content
    document = response.json()
    return document, jwk.JWKSet.from_json(response.content)


def verify_id_token(client: Client, id_token: str) -> dict[str, Any]:
    """Verify the signature against the published JWKS, as a relying party would; the claims."""
    _document, keyset = fetch_jwks(client)
    token = jwt.JWT(jwt=id_token, key=keyset, algs=["RS256"], check_claims=False)
    return json.loads(token.claims)


def expected_at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return b64url_encode(digest[: len(digest) // 2])


def issue_tokens(flow: Flow, app: ClientApp, scope: str = "openid profile email phone", **extra: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Run authorize → sign-in → token for ``app``; the token response body and the request."""
    verifier, challenge = pkce_pair()
    params = authorize_params(app, challenge, scope=scope, **extra)
    code, params = flow.code_for(app, params)
    response = flow.token(app, code, params, code_verifier=verifier)
    assert response.status_code == 200, response.content
    return response.json(), params


def userinfo(client: Client, access_token: str) -> Any:
    return client.get("/oauth/userinfo", HTTP_AUTHORIZATION=f"Bearer {access_token}")


# -- the token endpoint --------------------------------------------------------------------------------
TOKEN_URL = "/oauth/token"
USERINFO_URL = "/oauth/userinfo"
REVOKE_URL = "/oauth/revoke"
INTROSPECT_URL = "/oauth/introspect"

UNRESERVED = set(string.ascii_letters + string.digits + "-._~")


def basic_auth(app: ClientApp, secret: str | None = None) -> str:
    raw = f"{app.client_id}:{secret if secret is not None else app.client_secret}".encode()
    return "Basic " + base64.b64encode(raw).decode()




def error_of(response: Any) -> str | None:
    try:
        return response.json().get("error")
    except ValueError:
        return None


def tokens_for(flow: Flow, app: ClientApp, *, pkce: bool = True, **authorize_extra: str) -> dict[str, Any]:
    """Authorize (signing in when needed) and redeem the code; the token response body."""
    verifier, challenge = pkce_pair() if pkce else (None, None)
    code, params = flow.code_for(app, authorize_params(app, challenge, **authorize_extra))
    extra = {"code_verifier": verifier} if verifier else {}
    response = flow.token(app, code, params, **extra)
    assert response.status_code == 200, response.content
    return response.json()


def refresh(client: Client, app: ClientApp, refresh_token: str, *, secret: str | None = None) -> Any:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": app.client_id}
    secret = secret if secret is not None else app.client_secret
    if secret:
        data["client_secret"] = secret
    return client.post(TOKEN_URL, data)


def userinfo_status(client: Client, access_token: str) -> int:
    return client.get(USERINFO_URL, HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code


def revoke(client: Client, app: ClientApp, token: str, hint: str | None = None) -> Any:
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    return client.post(REVOKE_URL, data, HTTP_AUTHORIZATION=basic_auth(app))


def introspect(client: Client, app: ClientApp | None, token: str, *, secret: str | None = None) -> Any:
    headers = {} if app is None else {"HTTP_AUTHORIZATION": basic_auth(app, secret)}
    return client.post(INTROSPECT_URL, {"token": token}, **headers)


def entropy_bits(samples: list[str]) -> float:
    """A lower bound of the randomness of tokens shaped like ``samples``: the shortest length times
    log2 of the smallest usual alphabet that holds every character seen."""
    seen = set("".join(samples))
    alphabets = [
        set(string.digits),
        set(string.hexdigits.lower()),
        set(string.hexdigits),
        set(string.ascii_letters + string.digits),
        set(string.ascii_letters + string.digits + "-_"),
        UNRESERVED,
    ]
    for alphabet in alphabets:
        if seen <= alphabet:
            return min(len(s) for s in samples) * math.log2(len(alphabet))
    raise AssertionError(f"unexpected characters in tokens: {sorted(seen - UNRESERVED)}")


def checksum(token: str) -> str:
    """How DOT finds a token stored hashed at rest."""
    return hashlib.sha256(token.encode()).hexdigest()


# -- pages ---------------------------------------------------------------------------------------------
def authorize(client: Client, params: dict[str, str]) -> Any:
    """GET the authorization endpoint with ``params``."""
    return client.get("/oauth/authorize?" + urlencode(params))


def assert_error_page(response: Any) -> None:
    """An error shown in the browser: never a redirect anywhere."""
    assert response.status_code == 400, (response.status_code, response.get("Location"))
    assert not response.has_header("Location"), response["Location"]


def assert_no_framing(response: Any) -> None:
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.get("Content-Security-Policy", ""), response.get(
        "Content-Security-Policy")


def b64(raw: bytes | str) -> str:
    """Standard base64 of ``raw`` (an HTTP Basic credential, say)."""
    return base64.b64encode(raw.encode() if isinstance(raw, str) else raw).decode()


# -- one-time codes by e-mail ------------------------------------------------------------------------
def code_in_mail(message: Any) -> str:
    """The 6-digit code in an e-mail (the built-in ``email-code`` type's, a second factor's)."""
    found = re.search(r"\b(\d{6})\b", message.body)
    assert found, message.body
    return found.group(1)


# -- part mfa: second factors -------------------------------------------------------------------------
TOTP_KEY = bytes(range(1, 21))


def totp_now(key: bytes = TOTP_KEY, steps_ahead: int = 0, at: float | None = None) -> str:
    """The authenticator app's code now (or at ``at``, or ``steps_ahead`` time steps later), by
    RFC 6238 as django-otp's reference implementation computes it."""
    import time

    from django_otp.oath import TOTP

    totp = TOTP(key, step=30, digits=6)
    totp.time = (time.time() if at is None else at) + 30 * steps_ahead
    return f"{totp.token():06d}"


def give_totp(user: Any, key: bytes = TOTP_KEY) -> Any:
    """A confirmed authenticator app for ``user`` (stored as the server stores secrets)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from authenticators.factors import seal

    return TOTPDevice.objects.create(user=user, name="Phone", key=seal(key), confirmed=True)


def secret_from_page(html: str) -> bytes:
    """The TOTP key an enrolment page shows as text (base32)."""
    import base64

    match = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', html)
    assert match, html
    text = match.group(1).replace(" ", "")
    return base64.b32decode(text + "=" * (-len(text) % 8))


def follow_to_code(client: Client, response: Any) -> str:
    """Follow 302/303 answers (authorization endpoint, resumes) until the client's redirect URI; its code."""
    for _ in range(6):
        assert response.status_code in (302, 303), getattr(response, "content", b"")[:800]
        location = response["Location"]
        if location.startswith(REDIRECT_URI):
            query = query_of(location)
            assert "code" in query, query
            return query["code"]
        response = client.get(location)
    raise AssertionError("no code reached the client")


# -- branding (experience.branding): images made in the test, an application's experience ----------------
def png(width: int = 3, height: int = 2, rgb: tuple[int, int, int] = (11, 110, 79)) -> bytes:
    """A small valid PNG of one colour."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def svg(fill: str = "#0b6e4f") -> bytes:
    """A small SVG logo (120 x 40) that passes experience.branding.svg_problem."""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40" viewBox="0 0 120 40">'
            f'<rect width="120" height="40" fill="{fill}"/></svg>').encode()


def branded(app: ClientApp, overrides: dict[str, Any], **images: bytes) -> Any:
    """``app``'s ApplicationExperience with ``overrides`` and images (field name -> bytes), checked
    as the admin checks them (uploads stored under MEDIA_ROOT: point it at a temporary directory)."""
    from django.core.files.base import ContentFile

    from experience import branding
    from experience.models import ApplicationExperience

    row = ApplicationExperience(application=app.application, overrides=overrides)
    for field_name, data in images.items():
        setattr(row, field_name, branding.image_file(ContentFile(data)))
    row.full_clean(exclude=["application"])
    row.save()
    return row


# -- counting what a request asks of the database ----------------------------------------------
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


WRITES = ("INSERT", "UPDATE", "DELETE")
WRITE_IN_WITH = re.compile(r"\b(?:INSERT INTO|UPDATE|DELETE FROM)\b")  # a data-modifying WITH query


@dataclass
class DatabaseWork:
    """What one block asked of the database: its SQL statements, and the transaction control
    Django logs beside them (``BEGIN``/``COMMIT`` of an ``atomic`` block; each is a round trip)."""

    ordered: list[str] = field(default_factory=list)  # everything, in order
    statements: list[str] = field(default_factory=list)
    control: list[str] = field(default_factory=list)

    @property
    def commits(self) -> int:
        """How many commits: one per write in autocommit, one per transaction."""
        commits, depth = 0, 0
        for sql in self.ordered:
            word = sql.split(None, 1)[0].upper() if sql else ""
            if word == "BEGIN":
                depth += 1
            elif word in ("COMMIT", "ROLLBACK") and depth:
                depth -= 1
                commits += word == "COMMIT"
            elif not depth and (word in WRITES or word == "WITH" and WRITE_IN_WITH.search(sql)):
                commits += 1
        return commits


@contextmanager
def database_work() -> Iterator[DatabaseWork]:
    work = DatabaseWork()
    with CaptureQueriesContext(connection) as captured:
        yield work
    for query in captured.captured_queries:
        sql = str(query["sql"]).strip()
        work.ordered.append(sql)
        word = sql.split(None, 1)[0].upper() if sql else ""
        (work.control if word in TRANSACTION_CONTROL else work.statements).append(sql)


@contextmanager
def open_connection() -> Iterator[None]:
    """Requests over WSGI (schemathesis' ``from_wsgi``) that leave the test's database connection open,
    as Django's test client does (its transaction holds the fixtures)."""
    from django.core import signals
    from django.db import close_old_connections

    for signal in (signals.request_started, signals.request_finished):
        signal.disconnect(close_old_connections)
    try:
        yield
    finally:
        for signal in (signals.request_started, signals.request_finished):
            signal.connect(close_old_connections)
