"""A single-page application in a real browser, on its own origin, with a real SPA library.

tests/spa/ is the application: oidc-client-ts from the npm registry (installed by ``make spa``, which
``make test`` runs) and a few lines of JavaScript, served by a small static server on another
127.0.0.1 port than the provider. The person signs in on the hosted page; the application then
reads the provider's answers across origins: tokens, their refresh, userinfo; then it signs out.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from oauth2_provider.models import get_application_model

from identity.models import ApplicationSettings
from identity.subjects import subject_of
from tests.helpers import PASSWORD

pytestmark = pytest.mark.browser

SPA_DIR = Path(__file__).parent / "spa"
WAIT = 15_000  # ms: the machine may be busy
BUNDLE = SPA_DIR / "node_modules" / "oidc-client-ts" / "dist" / "browser" / "oidc-client-ts.min.js"


class SpaServer:
    """Serves tests/spa/ and a ``config.js`` naming the provider and the client."""

    def __init__(self) -> None:
        self.config: dict[str, str] = {}
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(SPA_DIR), **kwargs)

            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/config.js":
                    return super().do_GET()
                body = f"window.SPA_CONFIG = {json.dumps(server.config)};".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/javascript")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return None

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> SpaServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def spa() -> Iterator[SpaServer]:
    if not BUNDLE.exists():
        pytest.fail("oidc-client-ts is not installed: run `make spa` (npm ci --prefix tests/spa)")
    with SpaServer() as server:
        yield server


@pytest.fixture
def spa_client(live_server: Any, spa: SpaServer, transactional_db: Any) -> Any:
    """A public client, registered as an SPA developer would: its callback, its post-logout page and
    its origin (a loopback IP: another port than the provider's, a different origin)."""
    Application = get_application_model()
    application = Application.objects.create(
        name="Browser app", client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=f"{spa.url}/callback.html", post_logout_redirect_uris=f"{spa.url}/index.html",
        allowed_origins=spa.url, algorithm=Application.RS256_ALGORITHM,
    )
    ApplicationSettings.objects.create(application=application, first_party=True)
    spa.config.update(authority=live_server.url, client_id=application.client_id)
    return application


def test_a_single_page_app_signs_in_refreshes_reads_userinfo_and_signs_out(live_server, spa, spa_client, user, page):  # noqa: F811
    from playwright.sync_api import expect

    failures: list[str] = []
    page.on("pageerror", lambda error: failures.append(str(error)))
    status, problem = page.locator("#status"), page.locator("#error")

    page.goto(f"{spa.url}/index.html")
    expect(status).to_have_text("Signed out", timeout=WAIT)

    # Sign in on the hosted page (authorization code + PKCE S256, started by signinRedirect).
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/sign-in/**")
    assert page.get_by_role("heading", name="Sign in to Browser app").is_visible()
    page.get_by_label("E-mail or username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{spa.url}/index.html*")  # through callback.html: signinCallback redeemed the code
    expect(status).to_have_text("Signed in", timeout=WAIT)
    assert problem.inner_text() == "", problem.inner_text()
    assert page.locator("#subject").inner_text() == subject_of(user)
    first_access, first_refresh = page.locator("#access-token").inner_text(), page.locator("#refresh-token").inner_text()
    assert first_access and first_refresh

    # Silent renewal with the refresh token (a cross-origin POST to the token endpoint).
    page.get_by_role("button", name="Refresh tokens").click()
    expect(status).to_have_text("Tokens refreshed", timeout=WAIT)
    assert problem.inner_text() == "", problem.inner_text()
    assert page.locator("#access-token").inner_text() not in ("", first_access)
    assert page.locator("#refresh-token").inner_text() not in ("", first_refresh)  # rotated
    assert page.locator("#subject").inner_text() == subject_of(user)

    # Userinfo with the new access token (fetch with Authorization: a preflight first).
    page.get_by_role("button", name="Load my profile").click()
    expect(page.locator("#previous-token-status")).not_to_be_empty(timeout=WAIT)
    assert problem.inner_text() == "", problem.inner_text()
    profile = json.loads(page.locator("#profile").inner_text())
    assert profile["sub"] == subject_of(user)
    assert profile["email"] == "Alice@example.com"
    assert profile["preferred_username"] == "alice"
    # The access token from before the refresh is dead, and the application can read that it is.
    assert page.locator("#previous-token-status").inner_text() == "401"

    # Sign out at the provider (end session, id_token_hint, registered post_logout_redirect_uri).
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{spa.url}/index.html*")
    expect(status).to_have_text("Signed out", timeout=WAIT)
    assert page.locator("#subject").inner_text() == ""
    # The provider's session is gone too: signing in again asks for the password.
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live_server.url}/sign-in/**")
    assert page.get_by_label("Password").is_visible()
    assert failures == []


def test_a_first_party_single_page_app_calls_the_headless_api_across_origins(live_server, spa, spa_client, user, page,  # noqa: F811
                                                                            monkeypatch):
    """fetch() from the application's origin, as its own sign-in form would: the browser's preflight
    (JSON and X-Authenticator are not simple), the tokens read by the page, then /api/auth/check with
    the access token; a wrong password's error is readable too, Retry-After included when limited."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM beside Playwright's event loop
    ApplicationSettings.objects.filter(application=spa_client).update(headless_api=True)
    page.goto(f"{spa.url}/index.html")
    call = """async ([url, body, token]) => {
        const headers = {"Content-Type": "application/json", "X-Authenticator": "password"};
        if (token) headers["Authorization"] = "Bearer " + token;
        try {
            const response = await fetch(url, {method: body ? "POST" : "GET", headers, body: body ? JSON.stringify(body) : undefined});
            return {status: response.status, body: await response.json()};
        } catch (error) { return {status: 0, body: String(error)}; }
    }"""
    login = f"{live_server.url}/api/authorization/login-by-password"
    body = {"client_id": spa_client.client_id, "email": "alice@example.com", "password": PASSWORD}
    signed_in = page.evaluate(call, [login, body, None])
    assert signed_in["status"] == 200, signed_in
    assert signed_in["body"]["token_type"] == "Bearer" and signed_in["body"]["refresh_token"]

    checked = page.evaluate(call, [f"{live_server.url}/api/auth/check", None, signed_in["body"]["access_token"]])
    assert checked["status"] == 200, checked
    assert checked["body"]["user"]["sub"] == subject_of(user)

    wrong = page.evaluate(call, [login, {**body, "password": "wrong password"}, None])
    assert wrong == {"status": 400, "body": {"key": {"code": "invalid_credentials", "message": wrong["body"]["key"]["message"]}}}

    # Registered nowhere: the browser refuses the page the answer (a TypeError, not a status).
    type(spa_client).objects.filter(pk=spa_client.pk).update(allowed_origins="https://elsewhere.example.com")
    from identity import cors

    cors.origins_changed()
    refused = page.evaluate(call, [login, body, None])
    assert refused["status"] == 0, refused
