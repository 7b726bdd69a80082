"""Client authentication at the token, revocation and introspection endpoints (RFC 6749 2.3): one
method per request, judged on its own, each rule written as the attack it stops."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus, urlencode

import pytest
from django.test import Client
from oauth2_provider.models import get_access_token_model

from tests.helpers import (
    INTROSPECT_URL,
    REVOKE_URL,
    TOKEN_URL,
    ClientApp,
    b64,
    basic_auth,
    error_of,
    introspect,
    make_application,
    refresh,
    revoke,
    tokens_for,
    userinfo_status,
)

AccessToken = get_access_token_model()
ENDPOINTS = ["token", "revocation", "introspection"]


UNREADABLE_BASIC = {
    "not-base64": "Basic !!!not*base64!!!",
    "no-colon": "Basic " + b64("justaname"),
    "not-utf8": "Basic " + b64(b"\xff\xfe:\xfd\xfc"),
    "percent-decodes-to-non-utf8": "Basic " + b64("%ff%fe:secret"),
    "non-ascii-header": "Basic \u00e9\u00e8",
    "missing-padding": "Basic " + b64("abc:d").rstrip("="),
    "empty": "Basic ",
    "bare": "Basic",
}


def call(client: Client, endpoint: str, tokens: dict[str, Any], data: dict[str, str], **headers: Any) -> Any:
    """One request to ``endpoint`` about the victim's tokens, with the credentials in ``data`` and
    ``headers``."""
    if endpoint == "token":
        return client.post(TOKEN_URL, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **data}, **headers)
    path = REVOKE_URL if endpoint == "revocation" else INTROSPECT_URL
    return client.post(path, {"token": tokens["access_token"], **data}, **headers)


def assert_nothing_done(client: Client, app: ClientApp, endpoint: str, tokens: dict[str, Any], response: Any) -> None:
    """The request got no tokens, revoked nothing and learnt nothing."""
    body = response.json()
    assert "access_token" not in body and "active" not in body, body
    assert userinfo_status(client, tokens["access_token"]) == 200
    assert refresh(client, app, tokens["refresh_token"]).status_code == 200  # the refresh token was not spent


def assert_invalid_client(response: Any) -> None:
    assert response.status_code == 401, response.content
    assert error_of(response) == "invalid_client"
    assert response["WWW-Authenticate"].startswith("Basic "), response["WWW-Authenticate"]
    assert "no-store" in response["Cache-Control"]


@pytest.fixture
def victim(flow, confidential_app, user) -> dict[str, Any]:
    return tokens_for(flow, confidential_app)


# -- a failed Basic header is the answer: no second chance with the body ------------------------------
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_failed_basic_header_is_not_retried_with_body_credentials(flow, confidential_app, victim, endpoint):
    """The attacker holds the secret but puts a wrong one in the header: DOT used to try the body
    next and succeed, so a request could carry two methods and pass with the second."""
    body = {"client_id": confidential_app.client_id, "client_secret": confidential_app.client_secret}
    response = call(flow.client, endpoint, victim, body, HTTP_AUTHORIZATION=basic_auth(confidential_app, "wrong"))
    assert response.status_code == 400, response.content
    assert error_of(response) == "invalid_request"
    assert_nothing_done(flow.client, confidential_app, endpoint, victim, response)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_basic_and_client_secret_post_together_are_refused(flow, confidential_app, victim, endpoint):
    """RFC 6749 2.3: "The client MUST NOT use more than one authentication method in each request"
    (5.2: invalid_request), even when both are right."""
    body = {"client_id": confidential_app.client_id, "client_secret": confidential_app.client_secret}
    response = call(flow.client, endpoint, victim, body, HTTP_AUTHORIZATION=basic_auth(confidential_app))
    assert response.status_code == 400, response.content
    assert error_of(response) == "invalid_request"
    assert "one client authentication method" in response.json()["error_description"]
    assert_nothing_done(flow.client, confidential_app, endpoint, victim, response)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("secret", ["wrong", ""])
def test_a_wrong_basic_secret_is_401_with_a_basic_challenge(flow, confidential_app, victim, endpoint, secret):
    response = call(flow.client, endpoint, victim, {"client_id": confidential_app.client_id},
                    HTTP_AUTHORIZATION=basic_auth(confidential_app, secret))
    assert_invalid_client(response)
    assert_nothing_done(flow.client, confidential_app, endpoint, victim, response)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("header", UNREADABLE_BASIC.values(), ids=UNREADABLE_BASIC.keys())
def test_an_unreadable_basic_header_is_401_never_500(flow, confidential_app, victim, endpoint, header):
    client = Client(raise_request_exception=False)
    response = call(client, endpoint, victim, {"client_id": confidential_app.client_id}, HTTP_AUTHORIZATION=header)
    assert_invalid_client(response)
    assert_nothing_done(flow.client, confidential_app, endpoint, victim, response)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_unreadable_basic_header_beside_body_credentials_gets_nothing(flow, confidential_app, victim, endpoint):
    body = {"client_id": confidential_app.client_id, "client_secret": confidential_app.client_secret}
    response = call(Client(raise_request_exception=False), endpoint, victim, body, HTTP_AUTHORIZATION="Basic !!!")
    assert response.status_code == 400, response.content
    assert error_of(response) == "invalid_request"
    assert_nothing_done(flow.client, confidential_app, endpoint, victim, response)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_unknown_client_in_basic_is_401(flow, confidential_app, victim, endpoint):
    header = "Basic " + b64("nobody:whatever")
    assert_invalid_client(call(flow.client, endpoint, victim, {}, HTTP_AUTHORIZATION=header))


def test_the_basic_scheme_name_is_case_insensitive(flow, confidential_app, victim):
    """RFC 7235 2.1: ``basic`` is Basic, so it is judged alone too (no fallback to the body)."""
    lower = basic_auth(confidential_app).replace("Basic", "basic")
    response = call(flow.client, "token", victim, {}, HTTP_AUTHORIZATION=lower)
    assert response.status_code == 200, response.content
    wrong = basic_auth(confidential_app, "wrong").replace("Basic", "BASIC")
    assert_invalid_client(call(flow.client, "token", response.json(), {}, HTTP_AUTHORIZATION=wrong))


# -- the client named in the body must be the one in the header ------------------------------------------
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_body_client_id_other_than_basics_is_invalid_client(flow, confidential_app, other_app, victim, endpoint):
    """Basic proves the attacker's own client, the body names the victim's client (whose token it
    is): oauthlib answered server_error; it is the client's fault, invalid_client."""
    response = call(flow.client, endpoint, victim, {"client_id": confidential_app.client_id},
                    HTTP_AUTHORIZATION=basic_auth(other_app))
    assert_invalid_client(response)
    assert_nothing_done(flow.client, confidential_app, endpoint, victim, response)


def test_a_body_client_id_other_than_basics_cannot_redeem_a_code(flow, confidential_app, other_app, user):
    from tests.helpers import authorize_params, pkce_pair

    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": params["redirect_uri"],
            "code_verifier": verifier, "client_id": confidential_app.client_id}
    response = flow.client.post(TOKEN_URL, data, HTTP_AUTHORIZATION=basic_auth(other_app))
    assert_invalid_client(response)
    assert not AccessToken.objects.exists()
    # The rightful client still redeems it.
    response = flow.client.post(TOKEN_URL, data, HTTP_AUTHORIZATION=basic_auth(confidential_app))
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_body_client_id_equal_to_basics_is_fine(flow, confidential_app, victim, endpoint):
    response = call(flow.client, endpoint, victim, {"client_id": confidential_app.client_id},
                    HTTP_AUTHORIZATION=basic_auth(confidential_app))
    assert response.status_code == 200, response.content
    if endpoint == "token":
        assert "access_token" in response.json()
    elif endpoint == "introspection":
        assert response.json()["active"] is True
    else:
        assert userinfo_status(flow.client, victim["access_token"]) == 401


# -- RFC 6749 2.3.1: Basic credentials are form-urlencoded first -----------------------------------------
def test_basic_credentials_are_percent_decoded(flow, user):
    app = make_application()
    # A client_id and a secret with the characters the encoding exists for.
    app.application.client_id = "shop:eu+1 é"
    app.application.client_secret = "s3cr:et+%/ü"
    app.application.save()
    app = ClientApp(app.application, "shop:eu+1 é", "s3cr:et+%/ü")
    body = tokens_for(flow, app)
    header = "Basic " + b64(f"{quote_plus(app.client_id)}:{quote_plus(app.client_secret)}")
    response = flow.client.post(TOKEN_URL, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
                                HTTP_AUTHORIZATION=header)
    assert response.status_code == 200, response.content
    # Without the encoding, "+" means a space: that is another secret.
    raw = "Basic " + b64(f"{quote_plus(app.client_id)}:{app.client_secret}")
    assert_invalid_client(flow.client.post(TOKEN_URL, {"grant_type": "refresh_token", "refresh_token": "x"},
                                           HTTP_AUTHORIZATION=raw))


# -- public and confidential clients without a secret ----------------------------------------------------
def test_a_public_client_sending_only_its_client_id_keeps_working(flow, public_app, user):
    tokens = tokens_for(flow, public_app)
    refreshed = refresh(flow.client, public_app, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.content
    latest = refreshed.json()
    response = flow.client.post(REVOKE_URL, {"token": latest["access_token"], "client_id": public_app.client_id})
    assert response.status_code == 200, response.content
    assert userinfo_status(flow.client, latest["access_token"]) == 401


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_confidential_client_sending_only_its_client_id_is_refused(flow, confidential_app, victim, endpoint):
    response = call(flow.client, endpoint, victim, {"client_id": confidential_app.client_id})
    assert_invalid_client(response)
    assert_nothing_done(flow.client, confidential_app, endpoint, victim, response)


def test_a_public_client_cannot_introspect(flow, public_app, user):
    tokens = tokens_for(flow, public_app)
    response = flow.client.post(INTROSPECT_URL, {"token": tokens["access_token"], "client_id": public_app.client_id})
    assert_invalid_client(response)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_credentials_in_the_query_string_are_refused(flow, confidential_app, victim, endpoint):
    """A secret in the URL lands in access logs: it never authenticates."""
    query = urlencode({"client_id": confidential_app.client_id, "client_secret": confidential_app.client_secret})
    path = {"token": TOKEN_URL, "revocation": REVOKE_URL, "introspection": INTROSPECT_URL}[endpoint]
    data = ({"grant_type": "refresh_token", "refresh_token": victim["refresh_token"]} if endpoint == "token"
            else {"token": victim["access_token"]})
    response = flow.client.post(f"{path}?{query}", data)
    assert response.status_code in (400, 401), response.content
    assert error_of(response) in {"invalid_request", "invalid_client"}
    assert_nothing_done(flow.client, confidential_app, endpoint, victim, response)


def test_both_methods_still_work_alone(flow, confidential_app, victim):
    by_basic = revoke(flow.client, confidential_app, "no-such-token")
    assert by_basic.status_code == 200, by_basic.content
    assert introspect(flow.client, confidential_app, victim["access_token"]).json()["active"] is True
    by_post = flow.client.post(INTROSPECT_URL, {"token": victim["access_token"], "client_id": confidential_app.client_id,
                                                "client_secret": confidential_app.client_secret})
    assert by_post.json()["active"] is True
