"""A person in a real browser: from the demo client, sign in on the hosted page, see the claims."""

from __future__ import annotations

import json

import pytest
from oauth2_provider.models import get_application_model
from playwright.sync_api import expect

from identity.models import ApplicationSettings
from identity.subjects import subject_of
from tests.helpers import PASSWORD

pytestmark = pytest.mark.browser





def test_sign_in_from_the_demo_client_shows_the_claims(live_server, demo_client, user, page, tmp_path):
    page.goto(f"{live_server.url}/demo/")
    page.get_by_role("link", name="Sign in with Portcullis").click()

    page.wait_for_url("**/sign-in/**")
    assert page.get_by_role("heading", name="Sign in to Portcullis demo").is_visible()
    page.get_by_label("E-mail or username").fill("alice@example.com")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    summary = page.get_by_role("alert")
    assert summary.inner_text().splitlines() == ["There is a problem", "The sign-in details are incorrect."]
    # Focus moved to the error summary without any script, so a screen reader reads it first.
    assert page.evaluate("document.activeElement.id") == "form-error"

    page.get_by_label("E-mail or username").fill("alice@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url(f"{live_server.url}/demo/")
    page.screenshot(path=str(tmp_path / "claims.png"), full_page=True)
    # Shown as indented JSON, as in the specifications, not as a Python dict.
    raw = page.locator("#claims").inner_text()
    assert raw.startswith('{\n  "') and "'" not in raw and "True" not in raw
    claims = json.loads(raw)
    userinfo = json.loads(page.locator("#userinfo").inner_text())
    assert claims["sub"] == userinfo["sub"] == subject_of(user)
    assert claims["email"] == "Alice@example.com"
    assert claims["iss"] == live_server.url
    assert claims["amr"] == ["pwd"]
    assert userinfo["email_verified"] is True

    page.get_by_role("link", name="Sign out").click()
    page.wait_for_url(f"{live_server.url}/demo/")
    assert page.get_by_role("link", name="Sign in with Portcullis").is_visible()
    # Signed out at the provider too: signing in again asks for the password.
    page.get_by_role("link", name="Sign in with Portcullis").click()
    page.wait_for_url("**/sign-in/**")


# -- the hosted pages' CSP, with a client on another origin ----------------------------------------
class OtherOrigin:
    """A relying party on another origin (127.0.0.1 and its own port, while the provider is on
    localhost): its callback and sign-out pages, and pages of its own that the test writes."""

    def __init__(self) -> None:
        import http.server
        import threading

        pages: dict[str, str] = {}
        self.pages = pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = pages.get(self.path.split("?")[0], "<!doctype html><title>RP</title><p id=reached>RP</p>")
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def logout_form(self, provider: str, **fields: str) -> str:
        """A page of the RP that POSTs a logout request to the provider (a plain form, no script)."""
        from html import escape

        inputs = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items())
        self.pages["/logout-form"] = (f'<!doctype html><title>RP</title><form method="post" action="{provider}/oauth/logout">'
                                      f'{inputs}<button type="submit">Log out of the RP</button></form>')
        return self.url + "/logout-form"


@pytest.fixture
def other_origin():
    origin = OtherOrigin()
    yield origin
    origin.server.shutdown()
    origin.server.server_close()


def rp_application(other_origin: OtherOrigin, *, first_party: bool):
    Application = get_application_model()
    application = Application.objects.create(
        name="Elsewhere", client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=f"{other_origin.url}/callback", post_logout_redirect_uris=f"{other_origin.url}/bye",
        algorithm=Application.RS256_ALGORITHM,
    )
    ApplicationSettings.objects.create(application=application, first_party=first_party)
    return application


@pytest.fixture
def first_party_rp(transactional_db, other_origin):
    return rp_application(other_origin, first_party=True)


@pytest.fixture
def third_party_rp(transactional_db, other_origin):
    return rp_application(other_origin, first_party=False)


def csp_violations(page) -> list[str]:
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text)
            if "Content Security Policy" in message.text else None)
    return messages


def start_authorization(page, live_server, application, other_origin, **extra: str) -> dict[str, str]:
    from urllib.parse import urlencode

    from tests.helpers import pkce_pair

    verifier, challenge = pkce_pair()
    params = {**authorize_params_for(application, other_origin, challenge), **extra}
    page.goto(f"{live_server.url}/oauth/authorize?{urlencode(params)}")
    params["code_verifier"] = verifier
    return params


def authorize_params_for(application, other_origin: OtherOrigin, challenge: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": application.client_id, "redirect_uri": f"{other_origin.url}/callback",
            "scope": "openid email", "state": "st-1", "nonce": "n-1", "code_challenge": challenge,
            "code_challenge_method": "S256"}


def sign_in_on_hosted_page(page) -> None:
    page.wait_for_url("**/sign-in/**")
    # Styled: the inline <style> is allowed by its hash (unstyled, the button would be grey).
    assert page.get_by_role("button", name="Sign in").evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(59, 91, 219)"
    page.get_by_label("E-mail or username").fill("alice@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def callback_query(page, other_origin: OtherOrigin, path: str = "/callback") -> dict[str, str]:
    from tests.helpers import query_of

    page.wait_for_url(f"{other_origin.url}{path}?*")
    assert page.locator("#reached").is_visible()
    return query_of(page.url)


def redeem(live_server, application, other_origin: OtherOrigin, code: str, verifier: str) -> dict[str, str]:
    import requests

    response = requests.post(f"{live_server.url}/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": f"{other_origin.url}/callback",
        "client_id": application.client_id, "code_verifier": verifier}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_sign_in_redirects_to_a_client_on_another_origin_and_its_logout_post_signs_out(
        live_server, other_origin, first_party_rp, user, page):
    """The sign-in form's answer ends at the client's origin (form-action allows it); the client's
    own page then POSTs a logout with the ID token hint, cross-site, and the browser is signed out."""
    application = first_party_rp
    violations = csp_violations(page)
    params = start_authorization(page, live_server, application, other_origin)
    sign_in_on_hosted_page(page)
    query = callback_query(page, other_origin)
    assert query["state"] == "st-1" and query["code"]
    tokens = redeem(live_server, application, other_origin, query["code"], params["code_verifier"])

    page.goto(other_origin.logout_form(live_server.url, id_token_hint=tokens["id_token"], state="bye-1",
                                       post_logout_redirect_uri=f"{other_origin.url}/bye"))
    page.get_by_role("button", name="Log out of the RP").click()
    assert callback_query(page, other_origin, "/bye") == {"state": "bye-1"}
    start_authorization(page, live_server, application, other_origin, prompt="none")
    assert callback_query(page, other_origin)["error"] == "login_required"
    assert violations == []


def test_consent_redirects_to_a_client_on_another_origin_and_a_hintless_logout_post_asks(
        live_server, other_origin, third_party_rp, user, page):
    application = third_party_rp
    violations = csp_violations(page)
    start_authorization(page, live_server, application, other_origin)
    sign_in_on_hosted_page(page)
    page.get_by_role("button", name="Allow").click()
    assert callback_query(page, other_origin)["code"]

    page.goto(other_origin.logout_form(live_server.url, client_id=application.client_id, state="bye-2",
                                       post_logout_redirect_uri=f"{other_origin.url}/bye"))
    page.get_by_role("button", name="Log out of the RP").click()
    expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    assert callback_query(page, other_origin, "/bye") == {"state": "bye-2"}
    start_authorization(page, live_server, application, other_origin, prompt="none")
    assert callback_query(page, other_origin)["error"] == "login_required"
    assert violations == []
