"""Upstream OpenID Connect end to end: this server (the live server) signs users in through a
second, real Portcullis server (another process, its own database) configured as an ``oidc``
authenticator, the way a person's browser goes: the client's authorization request, the hosted
sign-in page, the upstream's own sign-in page, the callback, and back to the client with a code
that the client redeems. And the API clients' third-party flow through the same upstream."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urljoin

import pytest
import requests
from django.contrib.auth import get_user_model

from authenticators.models import Authenticator, UserAuthenticator
from identity.identifiers import create_user
from identity.models import ApplicationSettings
from identity.subjects import subject_of
from tests.helpers import REDIRECT_URI, authorize_params, jwt_payload, make_application, pkce_pair, query_of
from tests.upstream import ROOT, FakeProvider, free_port, sign_in_upstream, start_portcullis, upstream_env

NAME = "corp"
FRONT_END = "http://127.0.0.1:9/app/signed-in"  # the API client's front end (never contacted)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: Any, live_server: Any) -> Iterator[Any]:
    server = start_portcullis(tmp_path_factory.mktemp("upstream"), [f"{live_server.url}/auth/{NAME}/callback"])
    yield server
    server.stop()


@pytest.fixture
def corp(transactional_db: Any, settings: Any, upstream: Any) -> Authenticator:
    settings.PORTCULLIS_OIDC_ALLOW_INSECURE_ISSUERS = True
    return Authenticator.objects.create(
        name=NAME, auth_type="oidc", title="Corp", sort_order=5,
        options={"issuer": upstream.issuer, "client_id": upstream.client_id, "client_secret": upstream.client_secret,
                 "scopes": ["openid", "email", "profile"], "claims": {"email": "email", "name": "name"},
                 "sign_up": True, "link_by_email": False, "domains": []})


def options(authenticator: Authenticator, **changes: Any) -> None:
    authenticator.options = {**authenticator.options, **changes}
    authenticator.save()


class Person:
    """A browser at this server (a requests.Session following redirects by hand)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.browser = requests.Session()

    def hop(self, url: str, stop: str) -> requests.Response | str:
        """GET ``url`` and follow redirects on this server; the first URL starting with ``stop``, or
        the page where the redirects end."""
        for _hop in range(10):
            response = self.browser.get(urljoin(self.base, url), allow_redirects=False, timeout=15)
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            url = urljoin(response.url, response.headers["Location"])
            if url.startswith(stop):
                return url
        raise AssertionError("too many redirects")

    def sign_in_page(self, app: Any) -> tuple[str, dict[str, str], str]:
        verifier, challenge = pkce_pair()
        params = authorize_params(app, challenge)
        page = self.hop("/oauth/authorize?" + urlencode(params), "https://")
        assert isinstance(page, requests.Response) and page.status_code == 200 and "/sign-in/" in page.url
        return page.url, params, verifier

    def upstream_url(self, sign_in_url: str) -> str:
        """The hosted page's "Continue with Corp": the link form of the method (``?authenticator=``)."""
        location = self.hop(sign_in_url.split("?")[0] + "?" + urlencode({"authenticator": NAME}), "http://127.0.0.1")
        assert isinstance(location, str), location
        return location

    def callback(self, params: dict[str, str]) -> requests.Response | str:
        return self.hop(f"/auth/{NAME}/callback?" + urlencode(params), REDIRECT_URI)


def sign_in_through_upstream(live_server: Any, app: Any, upstream: Any) -> dict[str, Any]:
    """The whole round trip; the client's token response."""
    person = Person(live_server.url)
    sign_in_url, params, verifier = person.sign_in_page(app)
    page = person.browser.get(sign_in_url, timeout=10)
    assert re.search(r"Continue with Corp", page.text), "the hosted page offers the upstream as a button"
    upstream_url = person.upstream_url(sign_in_url)
    assert upstream_url.startswith(upstream.issuer + "/oauth/authorize?")
    back = sign_in_upstream(upstream_url, f"{live_server.url}/auth/{NAME}/callback", identifier=upstream.username,
                            password=upstream.password)
    arrived = person.callback(back)
    assert isinstance(arrived, str), (arrived.status_code, arrived.text[:400])
    answer = query_of(arrived)
    assert answer["state"] == params["state"]
    token = requests.post(f"{live_server.url}/oauth/token", timeout=10, data={
        "grant_type": "authorization_code", "code": answer["code"], "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier, "client_id": app.client_id, "client_secret": app.client_secret})
    assert token.status_code == 200, token.text
    return token.json()


def test_first_sign_in_creates_the_account_and_the_second_reuses_it(live_server, corp, upstream):
    app = make_application()
    tokens = sign_in_through_upstream(live_server, app, upstream)
    user = get_user_model().objects.get()
    link = UserAuthenticator.objects.get()
    assert (link.authenticator, link.user, link.uuid) == (corp, user, upstream.sub)
    userinfo = requests.get(f"{live_server.url}/oauth/userinfo", timeout=10,
                            headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert userinfo["email"] == upstream.email and userinfo["email_verified"] is True
    assert jwt_payload(tokens["id_token"])["sub"] == userinfo["sub"] != upstream.sub  # our own subject

    again = sign_in_through_upstream(live_server, app, upstream)
    assert get_user_model().objects.count() == 1 and UserAuthenticator.objects.count() == 1
    assert jwt_payload(again["id_token"])["sub"] == userinfo["sub"]


def existing_account(email: str, *, verified: bool = True) -> Any:
    return create_user({"username": "robert", "email": email}, password="a long local password 1",
                       profile={"email_verified": verified})


def test_an_existing_account_is_linked_by_its_verified_e_mail_only_when_linking_is_on(live_server, corp, upstream):
    app = make_application()
    robert = existing_account(upstream.email)

    person = Person(live_server.url)
    sign_in_url, _params, _verifier = person.sign_in_page(app)
    back = sign_in_upstream(person.upstream_url(sign_in_url), f"{live_server.url}/auth/{NAME}/callback",
                            identifier=upstream.username, password=upstream.password)
    refused = person.callback(back)
    assert isinstance(refused, requests.Response) and refused.status_code == 400
    assert "An account with this e-mail exists. Sign in to it first." in refused.text
    assert UserAuthenticator.objects.count() == 0 and get_user_model().objects.count() == 1

    options(corp, link_by_email=True)
    tokens = sign_in_through_upstream(live_server, app, upstream)
    assert UserAuthenticator.objects.get().user == robert and get_user_model().objects.count() == 1
    assert jwt_payload(tokens["id_token"])["sub"] == subject_of(robert)


def set_upstream_email_verified(upstream: Any, verified: bool) -> None:
    """Change the upstream user's e-mail flag in the upstream's own database (another process)."""
    env = upstream_env(upstream.directory, int(upstream.issuer.rsplit(":", 1)[1]))
    code = ("from identity.models import Profile; "
            f"Profile.objects.filter(user__username={upstream.username!r}).update(email_verified={verified!r})")
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", code], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=60)


def test_an_unverified_upstream_e_mail_links_nothing(live_server, corp, upstream):
    app = make_application()
    existing_account(upstream.email)
    options(corp, link_by_email=True)
    set_upstream_email_verified(upstream, False)
    try:
        person = Person(live_server.url)
        sign_in_url, _params, _verifier = person.sign_in_page(app)
        back = sign_in_upstream(person.upstream_url(sign_in_url), f"{live_server.url}/auth/{NAME}/callback",
                                identifier=upstream.username, password=upstream.password)
        refused = person.callback(back)
    finally:
        set_upstream_email_verified(upstream, True)
    assert isinstance(refused, requests.Response) and refused.status_code == 400
    assert "Start again" in refused.text
    assert UserAuthenticator.objects.count() == 0 and get_user_model().objects.count() == 1


def test_a_forged_or_replayed_state_is_refused_and_creates_nothing(live_server, corp, upstream):
    app = make_application()
    person = Person(live_server.url)
    sign_in_url, _params, _verifier = person.sign_in_page(app)
    back = sign_in_upstream(person.upstream_url(sign_in_url), f"{live_server.url}/auth/{NAME}/callback",
                            identifier=upstream.username, password=upstream.password)

    forged = person.callback({**back, "state": back["state"][:-2] + "xx"})
    assert isinstance(forged, requests.Response) and forged.status_code == 400 and "Start again" in forged.text
    assert get_user_model().objects.count() == 0

    assert isinstance(person.callback(back), str)  # the genuine one signs in, once
    replayed = person.callback(back)
    assert isinstance(replayed, requests.Response) and replayed.status_code == 400
    assert get_user_model().objects.count() == 1 and UserAuthenticator.objects.count() == 1


@pytest.mark.parametrize("fault", ["nonce", "other_key"])
def test_an_id_token_with_a_wrong_nonce_or_another_key_signs_nobody_in(live_server, transactional_db, settings, fault):
    settings.PORTCULLIS_OIDC_ALLOW_INSECURE_ISSUERS = True
    provider = FakeProvider(faults={fault}, claims={"email": "eve@example.org", "email_verified": True})
    try:
        Authenticator.objects.create(name=NAME, auth_type="oidc", title="Corp", options={
            "issuer": provider.issuer, "client_id": provider.client_id, "client_secret": provider.client_secret})
        app = make_application()
        person = Person(live_server.url)
        sign_in_url, _params, _verifier = person.sign_in_page(app)
        refused = person.callback(provider.authorize(person.upstream_url(sign_in_url)))
    finally:
        provider.stop()
    assert isinstance(refused, requests.Response) and refused.status_code == 400
    assert "could not be verified" in refused.text
    assert get_user_model().objects.count() == 0 and UserAuthenticator.objects.count() == 0


def test_an_upstream_that_is_down_gets_a_clear_page_not_a_500(live_server, transactional_db, settings):
    settings.PORTCULLIS_OIDC_ALLOW_INSECURE_ISSUERS = True
    Authenticator.objects.create(name=NAME, auth_type="oidc", title="Corp", options={
        "issuer": f"http://127.0.0.1:{free_port()}", "client_id": "x", "client_secret": "y"})
    person = Person(live_server.url)
    sign_in_url, _params, _verifier = person.sign_in_page(make_application())
    page = person.hop(sign_in_url.split("?")[0] + "?" + urlencode({"authenticator": NAME}), "http://127.0.0.1")
    assert isinstance(page, requests.Response), page
    assert page.status_code == 503
    assert "cannot be reached just now" in page.text
    assert "Start again" in page.text or "Sign in" in page.text


def test_the_third_party_flow_trades_a_single_use_exchange_code_for_tokens(live_server, corp, upstream):
    app = make_application(redirect_uri=FRONT_END)
    ApplicationSettings.objects.filter(application=app.application).update(headless_api=True)
    asked = requests.get(f"{live_server.url}/api/auth/{NAME}/authorize-url", timeout=10,
                         params={"client_id": app.client_id, "redirect": FRONT_END},
                         auth=(app.client_id, app.client_secret))
    assert asked.status_code == 200, asked.text
    back = sign_in_upstream(asked.json()["url"], f"{live_server.url}/auth/{NAME}/callback",
                            identifier=upstream.username, password=upstream.password)
    front_end = Person(live_server.url).hop(f"/auth/{NAME}/callback?" + urlencode(back), FRONT_END)
    assert isinstance(front_end, str), front_end
    answer = query_of(front_end)
    assert answer["authenticator"] == NAME and "access_token" not in front_end

    trade = {"client_id": app.client_id, "client_secret": app.client_secret, "code": answer["code"]}
    tokens = requests.post(f"{live_server.url}/api/auth/token", json=trade, timeout=10)
    assert tokens.status_code == 200, tokens.text
    assert {"access_token", "refresh_token", "id_token", "token_type", "expires_in"} <= set(tokens.json())
    checked = requests.get(f"{live_server.url}/api/auth/check", timeout=10,
                           headers={"Authorization": f"Bearer {tokens.json()['access_token']}"})
    assert checked.status_code == 200 and checked.json()["user"]["email"] == upstream.email

    again = requests.post(f"{live_server.url}/api/auth/token", json=trade, timeout=10)
    assert again.status_code == 400 and again.json()["key"]["code"] == "invalid_code"
