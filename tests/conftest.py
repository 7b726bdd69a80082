"""Shared fixtures: applications, users, and helpers that speak the protocol."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.core.cache import cache
from django.test import Client
from oauth2_provider.models import get_application_model

from identity import cors, keys
from identity.models import ApplicationSettings, Profile

Application = get_application_model()
PASSWORD = "correct horse battery staple"
REDIRECT_URI = "https://rp.example.com/callback"


@pytest.fixture(autouse=True)
def _fresh_cache_and_keys() -> Any:
    cache.clear()
    keys._memo = None
    cors._memo = None  # the origins of applications a rolled-back test created
    yield
    keys._memo = None
    cors._memo = None


@dataclass
class ClientApp:
    application: Any
    client_id: str
    client_secret: str | None


def make_application(*, public: bool = False, first_party: bool = True, redirect_uri: str = REDIRECT_URI,
                     post_logout: str = "https://rp.example.com/bye", name: str = "Relying party") -> ClientApp:
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
    application.save()
    ApplicationSettings.objects.create(application=application, first_party=first_party)
    return ClientApp(application, application.client_id, secret)


@pytest.fixture
def confidential_app(db: Any) -> ClientApp:
    return make_application()


@pytest.fixture
def public_app(db: Any) -> ClientApp:
    return make_application(public=True)


@pytest.fixture
def other_app(db: Any) -> ClientApp:
    """A second confidential client of the same provider: the attacker's own registration."""
    return make_application(name="Other relying party")


@pytest.fixture
def third_party_app(db: Any) -> ClientApp:
    return make_application(first_party=False, name="Third party")


@pytest.fixture
def password_authenticator(db: Any) -> Any:
    """The default authenticator the data migration creates (transactional tests flush it)."""
    from authenticators.models import Authenticator

    authenticator, _ = Authenticator.objects.get_or_create(
        name="password", defaults={"auth_type": "password", "title": "Password", "enabled": True}
    )
    return authenticator


@pytest.fixture
def user(db: Any, django_user_model: Any, password_authenticator: Any) -> Any:
    account = django_user_model.objects.create_user(
        "alice", "Alice@Example.com", PASSWORD, first_name="Alice", last_name="Liddell"
    )
    Profile.objects.create(user=account, email_verified=True, phone_number="+15551234567")
    return account


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


@pytest.fixture
def flow(client: Client) -> Flow:
    return Flow(client)


def sign_in_url_from(response: Any) -> str:
    location = response["Location"]
    assert re.search(r"/sign-in/[^/]+/$", location), location
    return location


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """Live-server threads close their connections after each request, so the PostgreSQL test
    database can be dropped at the end (persistent connections would outlive the threads)."""
    from django.conf import settings

    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0


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
