"""Races on the token endpoint, against a real server and real threads (SECURITY.md: 20 parallel
redemptions of one code give exactly one success; 10 parallel refreshes of one token give exactly one
success and no 500). Meant for PostgreSQL; they also run on SQLite."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from tests.browser_session import Browser
from tests.conftest import (
    PASSWORD,
    REDIRECT_URI,
    ClientApp,
    authorize_params,
    make_application,
    pkce_pair,
    query_of,
)

# On SQLite the test database is a file (config/settings.py), so parallel writers wait for the lock
# as they do in a deployment, instead of failing at once as in an in-memory database.
pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 30


def code_via_browser(base_url: str, app: ClientApp, params: dict[str, str]) -> str:
    """Sign in through the hosted pages with a scripted browser; the code the client receives."""
    callback = Browser(base_url).follow(f"{base_url}/oauth/authorize?{urlencode(params)}", REDIRECT_URI)
    query = query_of(callback)
    assert "code" in query, query
    return query["code"]


def race(count: int, send: Any) -> list[tuple[int, dict[str, Any]]]:
    """Run ``send()`` in ``count`` threads released together; their (status, JSON body)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=TIMEOUT)
            response = send()
            try:
                body = response.json()
            except ValueError:
                body = {"raw": response.text[:300]}
            results[index] = (response.status_code, body)
        except Exception as error:  # noqa: BLE001  reported by the assertions below
            results[index] = (-1, {"exception": repr(error)})

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(not thread.is_alive() for thread in threads)
    return results


@pytest.fixture
def live_app(live_server: Any, django_user_model: Any) -> tuple[str, ClientApp]:
    from authenticators.models import Authenticator
    from identity.models import Profile

    # Another module's transactional test may have flushed the migration-made authenticator.
    Authenticator.objects.get_or_create(
        name="password", defaults={"auth_type": "password", "title": "Password", "enabled": True, "sort_order": 0,
                               "options": {"allow_email": True, "allow_username": True}})
    account = django_user_model.objects.create_user("alice", "alice@example.com", PASSWORD)
    Profile.objects.create(user=account, email_verified=True)
    return live_server.url, make_application()


def redeem(base_url: str, app: ClientApp) -> tuple[str, dict[str, str]]:
    """A fresh code and the token-request body that redeems it."""
    verifier, challenge = pkce_pair()
    params = authorize_params(app, challenge)
    code = code_via_browser(base_url, app, params)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": params["redirect_uri"],
            "code_verifier": verifier, "client_id": app.client_id, "client_secret": app.client_secret}
    return code, data


def test_parallel_redemptions_of_one_code_give_exactly_one_success(live_app):
    base_url, app = live_app
    _code, data = redeem(base_url, app)
    results = race(20, lambda: requests.post(f"{base_url}/oauth/token", data=data, timeout=TIMEOUT))
    statuses = Counter(status for status, _body in results)
    assert statuses[200] == 1, results
    assert statuses[400] == 19, results
    assert all(body.get("error") == "invalid_grant" for status, body in results if status != 200), results
    assert not any(status >= 500 or status < 0 for status in statuses), results
    # The loser's replay revoked the family: the winner's tokens are revoked too, or at least every
    # answer is coherent. What must hold: no second set of tokens exists.
    from oauth2_provider.models import get_access_token_model

    assert get_access_token_model().objects.count() <= 1


def test_parallel_refreshes_of_one_token_give_exactly_one_success(live_app):
    base_url, app = live_app
    _code, data = redeem(base_url, app)
    tokens = requests.post(f"{base_url}/oauth/token", data=data, timeout=TIMEOUT)
    assert tokens.status_code == 200, tokens.text
    refresh_data = {"grant_type": "refresh_token", "refresh_token": tokens.json()["refresh_token"],
                    "client_id": app.client_id, "client_secret": app.client_secret}
    results = race(10, lambda: requests.post(f"{base_url}/oauth/token", data=refresh_data, timeout=TIMEOUT))
    statuses = Counter(status for status, _body in results)
    assert not any(status >= 500 or status < 0 for status in statuses), results
    assert statuses[200] == 1, results
    assert all(body.get("error") == "invalid_grant" for status, body in results if status != 200), results
