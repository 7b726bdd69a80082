"""Races against a real server and real threads (SECURITY.md: 20 parallel redemptions of one code give
exactly one success; 10 parallel refreshes of one token give exactly one success and no 500; one
consent page is answered once). Meant for PostgreSQL; they also run on SQLite."""

from __future__ import annotations

import itertools
import re
import threading
from collections import Counter
from typing import Any
from urllib.parse import urlencode, urljoin

import pytest
import requests

from tests.browser_session import Browser
from tests.helpers import (
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
                body = {"raw": response.text[:300], "location": response.headers.get("Location", "")}
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


def refresh_race(base_url: str, app: ClientApp, count: int) -> tuple[dict[str, str], list[tuple[int, dict[str, Any]]]]:
    """``count`` refreshes of one new refresh token at once: the request's body and the answers."""
    _code, data = redeem(base_url, app)
    tokens = requests.post(f"{base_url}/oauth/token", data=data, timeout=TIMEOUT)
    assert tokens.status_code == 200, tokens.text
    refresh_data = {"grant_type": "refresh_token", "refresh_token": tokens.json()["refresh_token"],
                    "client_id": app.client_id, "client_secret": app.client_secret}
    results = race(count, lambda: requests.post(f"{base_url}/oauth/token", data=refresh_data, timeout=TIMEOUT))
    statuses = Counter(status for status, _body in results)
    assert statuses[200] == 1 and statuses[400] == count - 1, results
    assert all(body.get("error") == "invalid_grant" for status, body in results if status != 200), results
    return refresh_data, results


def winners_refresh(base_url: str, refresh_data: dict[str, str], results: list[tuple[int, dict[str, Any]]]) -> Any:
    """The winner's new refresh token, refreshed once more."""
    winner = next(body for status, body in results if status == 200)
    return requests.post(f"{base_url}/oauth/token", data={**refresh_data, "refresh_token": winner["refresh_token"]},
                         timeout=TIMEOUT)


def test_parallel_refreshes_of_one_token_give_exactly_one_success(live_app):
    base_url, app = live_app
    refresh_data, results = refresh_race(base_url, app, 10)
    # Every loser replayed the token after the winner's rotation committed: the family is ended,
    # the winner's new pair with it.
    again = winners_refresh(base_url, refresh_data, results)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text
    winner = next(body for status, body in results if status == 200)
    userinfo = requests.get(f"{base_url}/oauth/userinfo", headers={"Authorization": f"Bearer {winner['access_token']}"},
                            timeout=TIMEOUT)
    assert userinfo.status_code == 401, userinfo.text


@pytest.mark.parametrize("setting, value", [("REFRESH_TOKEN_REUSE_PROTECTION", False),
                                            ("REFRESH_TOKEN_GRACE_PERIOD_SECONDS", 60)])
def test_parallel_refreshes_spare_the_family_when_the_settings_spare_a_retry(live_app, monkeypatch, setting, value):
    """A client that sends its refresh twice at once is treated as one that retries after the
    first answer: with reuse protection off, or within a grace window, the loser is refused and the
    winner's new pair lives on."""
    from oauth2_provider.settings import oauth2_settings

    monkeypatch.setattr(oauth2_settings, setting, value)
    base_url, app = live_app
    refresh_data, results = refresh_race(base_url, app, 4)
    again = winners_refresh(base_url, refresh_data, results)
    assert again.status_code == 200, again.text


# -- one consent page, answered in parallel -----------------------------------------------------------
def consent_page(base_url: str, app: ClientApp) -> tuple[Browser, str, dict[str, str]]:
    """Sign in through the hosted pages up to the consent page; the browser, the authorization
    request's state and the form's fields (CSRF token and key)."""
    browser = Browser(base_url)
    params = authorize_params(app)
    start = browser.session.get(f"{base_url}/oauth/authorize?{urlencode(params)}", allow_redirects=False, timeout=TIMEOUT)
    assert start.status_code == 303, start.text[:300]
    sign_in = browser.session.get(urljoin(base_url, start.headers["Location"]), timeout=TIMEOUT)
    page = browser.session.get(browser.sign_in(sign_in, "alice", PASSWORD), allow_redirects=False, timeout=TIMEOUT)
    assert page.status_code == 200 and 'name="decision"' in page.text, (page.status_code, page.text[:300])
    fields = dict(re.findall(r'name="(csrfmiddlewaretoken|key)" value="([^"]+)"', page.text))
    assert set(fields) == {"csrfmiddlewaretoken", "key"}, page.text
    return browser, params["state"], fields


def answer_in_parallel(base_url: str, browser: Browser, fields: dict[str, str],
                       decisions: list[str]) -> list[tuple[int, dict[str, Any]]]:
    cookies = browser.session.cookies.get_dict()
    turn = itertools.count()

    def send() -> Any:
        decision = decisions[next(turn)]
        return requests.post(f"{base_url}/oauth/authorize/consent", data={**fields, "decision": decision},
                             cookies=cookies, allow_redirects=False, timeout=TIMEOUT)

    return race(len(decisions), send)


@pytest.fixture
def live_third_party_app(live_app: tuple[str, ClientApp]) -> tuple[str, ClientApp]:
    base_url, _first_party = live_app
    return base_url, make_application(first_party=False, name="Third party")


def test_parallel_approvals_of_one_consent_page_give_exactly_one_resume(live_third_party_app):
    from identity.models import Consent

    base_url, app = live_third_party_app
    browser, state, fields = consent_page(base_url, app)
    results = answer_in_parallel(base_url, browser, fields, ["allow"] * 10)
    statuses = Counter(status for status, _body in results)
    assert statuses == {303: 1, 400: 9}, results
    winner = next(body["location"] for status, body in results if status == 303)
    assert winner.startswith("/oauth/authorize?") and "resume=" in winner, winner
    assert all(not body["location"] for status, body in results if status == 400), results  # error pages
    assert Consent.objects.count() == 1
    callback = browser.follow(winner, REDIRECT_URI)
    assert "code" in query_of(callback) and query_of(callback)["state"] == state


def test_allow_and_deny_in_parallel_never_both_count(live_third_party_app):
    from identity.models import Consent

    base_url, app = live_third_party_app
    browser, state, fields = consent_page(base_url, app)
    results = answer_in_parallel(base_url, browser, fields, ["allow", "deny"] * 5)
    statuses = Counter(status for status, _body in results)
    assert statuses == {303: 1, 400: 9}, results
    winner = next(body["location"] for status, body in results if status == 303)
    denials = [body for status, body in results if "error=access_denied" in body.get("location", "")]
    if winner.startswith(REDIRECT_URI):  # the denial won: nothing was granted
        assert query_of(winner)["error"] == "access_denied" and query_of(winner)["state"] == state
        assert not Consent.objects.exists()
    else:  # the approval won: the grant is remembered and a code follows, and nobody was told "denied"
        assert not denials, results
        assert Consent.objects.count() == 1
        callback = browser.follow(winner, REDIRECT_URI)
        assert "code" in query_of(callback), callback
