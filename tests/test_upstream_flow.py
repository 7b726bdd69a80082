"""Signing in through a redirect-type authenticator (an upstream provider): the hosted pages' button,
the callback ``/auth/<name>/callback`` continuing the interaction through its gates, and the API
clients' third-party flow (authorize-url, the callback's exchange code, ``POST /api/auth/token``).
The upstream is a test-only type (tests/fake_upstream.py): its ``complete()`` trusts the e-mail the
callback's ``code`` names, as a real upstream's verified e-mail."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from authenticators.models import Authenticator, UserAuthenticator
from experience.models import AuditEvent, ExchangeCode, UpstreamRedirect
from tests import fake_upstream
from tests.helpers import (
    REDIRECT_URI,
    ClientApp,
    authorize_params,
    basic_auth,
    follow_to_code,
    jwt_payload,
    make_application,
    pkce_pair,
    query_of,
    run_together,
    sign_in_url_from,
    totp_now,
)


@pytest.fixture
def acme(db: Any) -> Any:
    """A redirect-type authenticator "Acme" of the test type (cleaned up after)."""
    fake_upstream.register()
    authenticator = Authenticator.objects.create(name="acme", auth_type=fake_upstream.TYPE, title="Acme",
                                                 sort_order=20, options={"sign_up": True})
    yield authenticator
    fake_upstream.unregister()


def start_sign_in(client: Client, app: ClientApp, challenge: str) -> tuple[str, dict[str, str]]:
    params = authorize_params(app, challenge)
    response = client.get("/oauth/authorize", params)
    return sign_in_url_from(response), params


def press_button(client: Client, sign_in_url: str, name: str = "acme") -> dict[str, str]:
    """POST the sign-in page's "Continue with ..." button; the upstream URL's query."""
    response = client.post(sign_in_url, {"action": "redirect", "authenticator": name})
    assert response.status_code == 303, response.content
    assert response["Location"].startswith(fake_upstream.UPSTREAM + "?")
    return query_of(response["Location"])


def callback(client: Client, state: str, code: str = "alice@example.com", name: str = "acme", **extra: str) -> Any:
    return client.get(f"/auth/{name}/callback", {"state": state, "code": code, **extra})


def links() -> int:
    return UserAuthenticator.objects.count()


# -- the hosted pages ------------------------------------------------------------------------------------------
def test_a_button_signs_in_upstream_and_ends_at_the_client_with_a_code(client, user, acme, confidential_app):
    verifier, challenge = pkce_pair()
    sign_in_url, params = start_sign_in(client, confidential_app, challenge)
    page = client.get(sign_in_url).content.decode()
    assert re.search(r'<button type="submit" name="authenticator" value="acme" class="secondary">Continue with Acme</button>',
                     page)
    assert "http://upstream.test" not in page and "https://upstream.test" in client.get(sign_in_url)[
        "Content-Security-Policy"]  # the button's redirect may end upstream (form-action)

    upstream = press_button(client, sign_in_url)
    assert upstream["redirect_uri"] == "http://testserver/auth/acme/callback"
    assert UpstreamRedirect.objects.get().digest != upstream["state"]  # only its digest is kept

    code = follow_to_code(client, callback(client, upstream["state"]))
    token = client.post("/oauth/token", {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                                         "client_id": confidential_app.client_id, "code_verifier": verifier,
                                         "client_secret": confidential_app.client_secret})
    assert token.status_code == 200, token.content
    claims = jwt_payload(token.json()["id_token"])
    assert claims["email"] == "Alice@example.com" and claims["nonce"] == params["nonce"] and claims["amr"] == ["fed"]
    assert UserAuthenticator.objects.get(authenticator=acme).user == user
    assert AuditEvent.objects.filter(kind=AuditEvent.SIGN_IN_SUCCEEDED, authenticator="acme", user=user).exists()


def test_the_method_link_starts_the_upstream_sign_in_too(client, user, acme, confidential_app):
    sign_in_url, _params = start_sign_in(client, confidential_app, pkce_pair()[1])
    response = client.get(sign_in_url, {"authenticator": "acme"})
    assert response.status_code == 302 and response["Location"].startswith(fake_upstream.UPSTREAM)
    follow_to_code(client, callback(client, query_of(response["Location"])["state"]))


def test_buttons_follow_the_sort_order(client, user, acme, confidential_app):
    Authenticator.objects.create(name="zeta", auth_type=fake_upstream.TYPE, title="Zeta", sort_order=10)
    sign_in_url, _params = start_sign_in(client, confidential_app, pkce_pair()[1])
    page = client.get(sign_in_url).content.decode()
    assert re.findall(r"Continue with (\w+)", page) == ["Zeta", "Acme"]


def test_a_user_with_a_second_factor_is_asked_for_it_after_the_callback(client, totp_user, acme, confidential_app):
    verifier, challenge = pkce_pair()
    sign_in_url, params = start_sign_in(client, confidential_app, challenge)
    response = callback(client, press_button(client, sign_in_url)["state"])
    assert response.status_code == 302
    second_factor = response["Location"]
    assert second_factor == sign_in_url + "second-factor/", second_factor
    assert "_auth_user_id" not in client.session  # nobody is signed in after the upstream alone
    authorize_again = client.get("/oauth/authorize", params)  # no code before the second factor
    assert authorize_again["Location"] == second_factor
    code = follow_to_code(client, client.post(second_factor + "?authenticator=totp",
                                              {"authenticator": "totp", "code": totp_now()}))
    token = client.post("/oauth/token", {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                                         "client_id": confidential_app.client_id, "code_verifier": verifier,
                                         "client_secret": confidential_app.client_secret})
    assert {"fed", "otp", "mfa"} <= set(jwt_payload(token.json()["id_token"])["amr"])


def test_a_new_upstream_account_is_created_when_the_type_allows_it(client, db, password_authenticator, acme,
                                                                   confidential_app):
    sign_in_url, _params = start_sign_in(client, confidential_app, pkce_pair()[1])
    follow_to_code(client, callback(client, press_button(client, sign_in_url)["state"], code="new@acme.test"))
    assert get_user_model().objects.get(email="new@acme.test").authenticator_links.get().authenticator == acme


@pytest.mark.parametrize("case", ["forged", "missing", "replayed", "expired", "upstream_error", "another_browser"])
def test_a_callback_that_does_not_check_out_shows_a_page_to_start_again(client, user, acme, confidential_app, case):
    sign_in_url, params = start_sign_in(client, confidential_app, pkce_pair()[1])
    state = press_button(client, sign_in_url)["state"]
    before = links()
    browser = client
    if case == "forged":
        state = state[:-2] + ("AA" if not state.endswith("AA") else "BB")
    elif case == "missing":
        state = ""
    elif case == "replayed":
        follow_to_code(client, callback(client, state, code="alice@example.com"))
        before = links()
    elif case == "expired":
        UpstreamRedirect.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    elif case == "another_browser":
        browser = Client()  # an attacker's callback URL opened by someone else signs nobody in there
    response = callback(browser, state, code="new@acme.test", **({"error": "access_denied"} if case == "upstream_error" else {}))
    assert response.status_code == 400, (response.status_code, response.get("Location"))
    page = response.content.decode()
    assert re.search(r'<a class="button" href="[^"]+">Start again</a>', page)
    expected = {"upstream_error": "The sign-in was cancelled or refused by the provider. Start again.",
                "another_browser": "This sign-in page has expired. Go back to the application and start again."}.get(
        case, "This sign-in could not be completed. Start again.")
    assert expected in page
    assert links() == before and not get_user_model().objects.filter(email="new@acme.test").exists()
    assert response["X-Frame-Options"] == "DENY"


def test_the_start_again_link_goes_back_to_the_authorization_request(client, user, acme, confidential_app):
    sign_in_url, params = start_sign_in(client, confidential_app, pkce_pair()[1])
    state = press_button(client, sign_in_url)["state"]
    page = callback(client, state, error="access_denied").content.decode()
    found = re.search(r'<a class="button" href="([^"]+)">Start again</a>', page)
    assert found, page
    restart = found.group(1)
    assert restart.startswith("/oauth/authorize?") and query_of(restart.replace("&amp;", "&"))["state"] == params["state"]


def test_an_unknown_authenticator_callback_is_a_not_found_page(client, db, acme):
    response = client.get("/auth/nobody/callback", {"state": "x", "code": "y"})
    assert response.status_code == 404
    assert "This sign-in method does not exist." in response.content.decode()


def test_a_disabled_authenticator_is_no_button_and_its_link_does_nothing(client, user, acme, confidential_app):
    acme.enabled = False
    acme.save()
    sign_in_url, _params = start_sign_in(client, confidential_app, pkce_pair()[1])
    assert "Continue with" not in client.get(sign_in_url).content.decode()
    assert client.get(sign_in_url, {"authenticator": "acme"}).status_code == 200  # just the page
    assert client.post(sign_in_url, {"action": "redirect", "authenticator": "acme"}).status_code == 400
    assert not UpstreamRedirect.objects.exists()


def test_the_button_needs_the_csrf_token(user, acme, confidential_app):
    client = Client(enforce_csrf_checks=True)
    sign_in_url, _params = start_sign_in(client, confidential_app, pkce_pair()[1])
    assert client.post(sign_in_url, {"action": "redirect", "authenticator": "acme"}).status_code == 403
    assert not UpstreamRedirect.objects.exists()


# -- the Experience API ------------------------------------------------------------------------------------------
def test_the_experience_api_starts_an_upstream_sign_in_for_its_interaction(client, user, acme, confidential_app):
    params = authorize_params(confidential_app, pkce_pair()[1])
    started = client.post("/api/experience/", {"next": "/oauth/authorize?" + "&".join(f"{k}={v}" for k, v in params.items())},
                          content_type="application/json")
    assert started.status_code == 201, started.content
    uid = started.json()["id"]
    answer = client.post(f"/api/experience/{uid}/redirect", {"authenticator": "acme"}, content_type="application/json")
    assert answer.status_code == 200, answer.content
    state = query_of(answer.json()["url"])["state"]
    follow_to_code(client, callback(client, state))
    unknown = client.post(f"/api/experience/{uid}/redirect", {"authenticator": "password"}, content_type="application/json")
    assert unknown.status_code in (404, 410)


def test_the_experience_api_refuses_a_method_that_is_no_redirect(client, user, acme):
    uid = client.post("/api/experience/", {}, content_type="application/json").json()["id"]
    answer = client.post(f"/api/experience/{uid}/redirect", {"authenticator": "password"}, content_type="application/json")
    assert answer.status_code == 404
    assert answer.json() == {"not_found": {"code": "authenticator", "message": "This sign-in method does not exist."}}


def test_the_schema_describes_the_new_endpoints(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    for path in ("/api/experience/{uid}/redirect", "/api/auth/{name}/authorize-url", "/api/auth/token"):
        assert path in schema


# -- API clients: the third-party flow -------------------------------------------------------------------------
@pytest.fixture
def spa(db: Any) -> ClientApp:
    return make_application(public=True, name="Front end", headless=True)


def authorize_url(client: Client, app: ClientApp, redirect: str = REDIRECT_URI, name: str = "acme", **headers: Any) -> Any:
    return client.get(f"/api/auth/{name}/authorize-url", {"client_id": app.client_id, "redirect": redirect}, **headers)


def exchange(client: Client, app: ClientApp, code: str, **headers: Any) -> Any:
    return client.post("/api/auth/token", {"client_id": app.client_id, "code": code}, content_type="application/json",
                       **headers)


def front_end_code(client: Client, app: ClientApp, who: str = "alice@example.com") -> str:
    answer = authorize_url(client, app)
    assert answer.status_code == 200, answer.content
    state = query_of(answer.json()["url"])["state"]
    response = callback(Client(), state, code=who)  # the browser is not the one that asked
    assert response.status_code == 302, response.content
    location = response["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = query_of(location)
    assert query["authenticator"] == "acme" and set(query) == {"authenticator", "code"}
    return query["code"]


def test_an_api_client_gets_an_exchange_code_and_trades_it_once(client, user, acme, spa):
    code = front_end_code(client, spa)
    assert not ExchangeCode.objects.filter(digest=code).exists()  # only the digest is kept
    token = exchange(client, spa, code)
    assert token.status_code == 200, token.content
    body = token.json()
    assert {"access_token", "refresh_token", "id_token", "expires_in", "token_type", "scope"} <= set(body)
    assert jwt_payload(body["id_token"])["aud"] == spa.client_id
    assert token["Cache-Control"] == "no-store"
    assert client.get("/oauth/userinfo", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}").json()["email"] == (
        "Alice@example.com")
    again = exchange(client, spa, code)
    assert again.status_code == 400
    assert again.json() == {"key": {"code": "invalid_code", "message": (
        "The sign-in code is invalid, used or expired. Start the sign-in again.")}}


def test_another_applications_code_is_refused_and_stays_unspent(client, user, acme, spa):
    code = front_end_code(client, spa)
    other = make_application(public=True, name="Another front end", headless=True)
    refused = exchange(client, other, code)
    assert refused.status_code == 400 and refused.json()["key"]["code"] == "invalid_code"
    assert exchange(client, spa, code).status_code == 200


def test_an_exchange_code_lives_sixty_seconds(client, user, acme, spa):
    code = front_end_code(client, spa)
    row = ExchangeCode.objects.get()
    assert row.expires_at - row.created_at == timedelta(seconds=60)
    ExchangeCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert exchange(client, spa, code).json()["key"]["code"] == "invalid_code"


def test_a_confidential_api_client_authenticates(client, user, acme):
    app = make_application(name="Back end", headless=True)
    assert authorize_url(client, app).status_code == 401
    answer = authorize_url(client, app, HTTP_AUTHORIZATION=basic_auth(app))
    assert answer.status_code == 200, answer.content
    response = callback(Client(), query_of(answer.json()["url"])["state"])
    code = query_of(response["Location"])["code"]
    assert exchange(client, app, code).status_code == 401  # the secret is needed here too
    assert exchange(client, app, code, HTTP_AUTHORIZATION=basic_auth(app)).status_code == 200


def test_the_redirect_must_be_registered_exactly(client, user, acme, spa):
    for redirect in (REDIRECT_URI + "/x", REDIRECT_URI + "?a=1", "https://evil.example/callback", ""):
        answer = authorize_url(client, spa, redirect=redirect)
        assert answer.status_code == 400, (redirect, answer.content)
        assert "validation" in answer.json()
    assert not UpstreamRedirect.objects.exists()


def test_an_application_without_the_headless_api_is_refused(client, user, acme, public_app):
    answer = authorize_url(client, public_app)
    assert answer.status_code == 403 and answer.json()["forbidden"]["code"] == "headless_not_allowed"


def test_an_unknown_authenticator_for_an_api_client_is_not_found(client, user, acme, spa):
    answer = authorize_url(client, spa, name="nobody")
    assert answer.status_code == 404 and answer.json()["not_found"]["code"] == "authenticator"


def test_the_front_end_is_told_of_an_upstream_error(client, user, acme, spa):
    state = query_of(authorize_url(client, spa).json()["url"])["state"]
    response = callback(Client(), state, error="access_denied")
    assert response.status_code == 302
    assert query_of(response["Location"]) == {"authenticator": "acme", "error": "upstream_error"}
    assert urlsplit(response["Location"]).path == urlsplit(REDIRECT_URI).path
    replay = callback(Client(), state)
    assert query_of(replay["Location"]) == {"authenticator": "acme", "error": "invalid_state"}
    assert not ExchangeCode.objects.exists()


def test_the_front_ends_own_state_comes_back(client, user, acme, spa):
    answer = client.get("/api/auth/acme/authorize-url", {"client_id": spa.client_id, "redirect": REDIRECT_URI,
                                                         "state": "front-end-123"})
    response = callback(Client(), query_of(answer.json()["url"])["state"])
    assert query_of(response["Location"])["state"] == "front-end-123"


def test_a_second_factor_user_gets_a_data_2fa_at_the_token_exchange_and_finishes_it(client, totp_user, acme, spa):
    answer = exchange(client, spa, front_end_code(client, spa))
    assert answer.status_code == 200, answer.content
    data_2fa = answer.json()
    assert set(data_2fa) == {"data_2fa", "timeout", "methods"} and "totp" in data_2fa["methods"]
    assert "access_token" not in data_2fa

    wrong = client.post("/api/authorization/check-code", {"client_id": spa.client_id, "data_2fa": data_2fa["data_2fa"],
                        "code": "000000" if totp_now() != "000000" else "111111"}, content_type="application/json")
    assert wrong.status_code == 400 and wrong.json()["key"]["code"] == "invalid_code"
    tokens = client.post("/api/authorization/check-code", {"client_id": spa.client_id, "data_2fa": data_2fa["data_2fa"],
                         "code": totp_now()}, content_type="application/json")
    assert tokens.status_code == 200, tokens.content
    claims = jwt_payload(tokens.json()["id_token"])
    assert "otp" in claims["amr"] or "mfa" in claims["amr"], claims["amr"]
    checked = client.get("/api/auth/check", HTTP_AUTHORIZATION=f"Bearer {tokens.json()['access_token']}")
    assert checked.status_code == 200 and checked.json()["authenticator"] == "acme"


# -- translations ------------------------------------------------------------------------------------------------
def test_the_button_and_the_error_page_speak_the_requests_language(client, user, acme, confidential_app):
    params = authorize_params(confidential_app, pkce_pair()[1], ui_locales="ru")
    sign_in_url = sign_in_url_from(client.get("/oauth/authorize", params))
    assert "Продолжить через Acme" in client.get(sign_in_url).content.decode()
    state = press_button(client, sign_in_url)["state"]
    page = callback(client, state, error="access_denied").content.decode()
    assert "Вход отменён или отклонён провайдером. Начните заново." in page and "Начать заново" in page
    uk = client.get("/auth/acme/callback", {"state": "forged"}, HTTP_ACCEPT_LANGUAGE="uk").content.decode()
    assert "Вхід не завершено" in uk


# -- races (PostgreSQL and SQLite) ---------------------------------------------------------------------------------
@pytest.fixture
def racing(transactional_db: Any, django_user_model: Any) -> Any:
    fake_upstream.register()
    authenticator = Authenticator.objects.create(name="acme", auth_type=fake_upstream.TYPE, title="Acme")
    django_user_model.objects.create_user("alice", "alice@example.com", "correct horse battery staple")
    yield authenticator
    fake_upstream.unregister()


def test_parallel_callbacks_and_exchanges_succeed_once(racing):
    app = make_application(public=True, name="Front end", headless=True)
    state = query_of(Client().get("/api/auth/acme/authorize-url", {"client_id": app.client_id,
                                                                   "redirect": REDIRECT_URI}).json()["url"])["state"]
    locations = run_together(10, lambda index: callback(Client(), state)["Location"])
    codes = [query_of(location).get("code") for location in locations]
    assert len([code for code in codes if code]) == 1, locations
    code = next(code for code in codes if code)
    statuses = run_together(10, lambda index: exchange(Client(), app, code).status_code)
    assert sorted(statuses) == [200] + [400] * 9


def test_a_redirect_type_driven_like_a_form_is_refused_not_a_500(db, acme):
    """Only the callback has what a redirect type checks; anything else is a refused state."""
    from experience import interaction as engine
    from experience.errors import EngineError
    from tests.helpers import browser_request

    request = browser_request()
    interaction = engine.start(request)
    with pytest.raises(EngineError) as refused:
        engine.verify(request, interaction, acme, {"identifier": "alice", "password": "x"})
    assert refused.value.code == "invalid_state"
