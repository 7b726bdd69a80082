"""Tokens and client credentials never work from the URL (RFC 6750 §5.3, RFC 9700 §4.3.2), and
userinfo answers are never cached.

A URL lands in access logs, proxies, browser history and ``Referer`` headers; each test is the
request an attacker (or a careless client) would make, and checks that it is refused and achieved
nothing.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from identity.subjects import subject_of
from tests.helpers import (
    INTROSPECT_URL,
    REVOKE_URL,
    TOKEN_URL,
    USERINFO_URL,
    authorize_params,
    basic_auth,
    introspect,
    pkce_pair,
    refresh,
    tokens_for,
    userinfo_status,
)


def assert_bearer_invalid_request(response) -> None:
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_request"' in challenge
    assert "sub" not in response.json()


def assert_invalid_request(response) -> None:
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "access_token" not in response.json() and "active" not in response.json()


def test_a_live_access_token_in_the_userinfo_query_is_refused(flow, confidential_app, user):
    access_token = tokens_for(flow, confidential_app)["access_token"]

    response = flow.client.get(f"{USERINFO_URL}?{urlencode({'access_token': access_token})}")

    assert_bearer_invalid_request(response)
    assert response["Cache-Control"] == "no-store"


def test_a_token_in_the_query_of_a_userinfo_post_is_refused_too(flow, confidential_app, user):
    access_token = tokens_for(flow, confidential_app)["access_token"]

    response = flow.client.post(f"{USERINFO_URL}?{urlencode({'access_token': access_token})}", {})

    assert_bearer_invalid_request(response)


def test_a_query_token_beside_a_good_header_is_still_refused(flow, confidential_app, user):
    access_token = tokens_for(flow, confidential_app)["access_token"]

    response = flow.client.get(f"{USERINFO_URL}?access_token={access_token}", HTTP_AUTHORIZATION=f"Bearer {access_token}")

    assert_bearer_invalid_request(response)


def test_the_header_and_the_form_body_still_work(flow, confidential_app, user):
    access_token = tokens_for(flow, confidential_app)["access_token"]

    assert userinfo_status(flow.client, access_token) == 200
    posted = flow.client.post(USERINFO_URL, {"access_token": access_token})
    assert posted.status_code == 200 and posted.json()["sub"] == subject_of(user)
    # Other query parameters (a cache buster, say) are no credential.
    assert flow.client.get(f"{USERINFO_URL}?_=1", HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code == 200


def test_a_code_in_the_token_endpoints_query_is_refused_and_stays_unused(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))

    leaked = flow.client.post(
        f"{TOKEN_URL}?{urlencode({'code': code, 'code_verifier': verifier})}",
        {"grant_type": "authorization_code", "redirect_uri": params["redirect_uri"]},
        HTTP_AUTHORIZATION=basic_auth(confidential_app),
    )

    assert_invalid_request(leaked)
    assert flow.token(confidential_app, code, params, code_verifier=verifier).status_code == 200


def test_a_client_secret_in_the_token_endpoints_query_is_refused(flow, confidential_app, user):
    refresh_token = tokens_for(flow, confidential_app)["refresh_token"]

    leaked = flow.client.post(
        f"{TOKEN_URL}?{urlencode({'client_secret': confidential_app.client_secret})}",
        {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": confidential_app.client_id},
    )

    assert_invalid_request(leaked)
    assert refresh(flow.client, confidential_app, refresh_token).status_code == 200  # nothing was rotated


def test_client_credentials_in_the_introspection_query_are_refused(flow, confidential_app, user):
    access_token = tokens_for(flow, confidential_app)["access_token"]
    credentials = {"client_id": confidential_app.client_id, "client_secret": confidential_app.client_secret}

    leaked = flow.client.post(f"{INTROSPECT_URL}?{urlencode(credentials)}", {"token": access_token})

    assert_invalid_request(leaked)
    assert introspect(flow.client, confidential_app, access_token).json()["active"] is True


def test_a_token_in_the_introspection_query_is_refused(flow, confidential_app, user):
    access_token = tokens_for(flow, confidential_app)["access_token"]

    leaked = flow.client.post(f"{INTROSPECT_URL}?{urlencode({'token': access_token})}", {},
                              HTTP_AUTHORIZATION=basic_auth(confidential_app))

    assert_invalid_request(leaked)


def test_a_token_in_the_revocation_query_is_refused_and_not_revoked(flow, confidential_app, user):
    access_token = tokens_for(flow, confidential_app)["access_token"]

    leaked = flow.client.post(f"{REVOKE_URL}?{urlencode({'token': access_token})}", {},
                              HTTP_AUTHORIZATION=basic_auth(confidential_app))

    assert_invalid_request(leaked)
    assert userinfo_status(flow.client, access_token) == 200


@pytest.mark.parametrize("path", [TOKEN_URL, REVOKE_URL, INTROSPECT_URL])
def test_a_query_too_long_to_parse_is_refused_not_a_500(client, db, path):
    response = client.post(f"{path}?" + "&".join(f"f{i}=x" for i in range(1500)), {})

    assert_invalid_request(response)


def test_userinfo_is_never_cached(flow, confidential_app, user):
    access_token = tokens_for(flow, confidential_app)["access_token"]

    answers = [
        flow.client.get(USERINFO_URL, HTTP_AUTHORIZATION=f"Bearer {access_token}"),
        flow.client.post(USERINFO_URL, {"access_token": access_token}),
        flow.client.get(USERINFO_URL, HTTP_AUTHORIZATION="Bearer not-a-token"),
        flow.client.get(USERINFO_URL),
        flow.client.get(USERINFO_URL + "?" + "&".join(f"f{i}=x" for i in range(1500))),
    ]

    assert [response.status_code for response in answers] == [200, 200, 401, 401, 400]
    for response in answers:
        assert response["Cache-Control"] == "no-store"
        assert response["Pragma"] == "no-cache"
