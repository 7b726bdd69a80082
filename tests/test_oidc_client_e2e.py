"""A real OIDC client library (Authlib) against a live server: the whole life of a sign-in."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken

from identity.subjects import subject_of
from tests.browser_session import Browser
from tests.helpers import make_application

CALLBACK = "http://127.0.0.1:9/callback"  # never contacted: the browser stops at the redirect


@pytest.fixture
def live_app(transactional_db):
    return make_application(redirect_uri=CALLBACK, post_logout="http://127.0.0.1:9/signed-out")


@pytest.fixture
def metadata(live_server):
    response = requests.get(live_server.url + "/.well-known/openid-configuration", timeout=10)
    assert response.status_code == 200
    return response.json()


def verify_id_token(id_token, metadata, client_id, nonce, access_token=None):
    jwks = JsonWebKey.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    claims = jwt.decode(
        id_token, jwks, claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": metadata["issuer"]}},
        claims_params={"nonce": nonce, "client_id": client_id, "access_token": access_token},
    )
    claims.validate()
    return claims


def test_authorization_code_flow_with_pkce_end_to_end(live_server, live_app, user, metadata):
    assert metadata["issuer"] == live_server.url
    client = OAuth2Session(
        live_app.client_id, live_app.client_secret, scope="openid profile email", redirect_uri=CALLBACK,
        code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic",
    )
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(12)
    uri, state = client.create_authorization_url(metadata["authorization_endpoint"], nonce=nonce, code_verifier=verifier)

    browser = Browser(live_server.url)
    callback = browser.follow(uri, CALLBACK)
    query = parse_qs(urlsplit(callback).query)
    assert query["state"] == [state]
    assert query["iss"] == [metadata["issuer"]]  # RFC 9207

    token = client.fetch_token(metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    assert token["token_type"].lower() == "bearer"
    assert 0 < token["expires_in"] <= 3600
    claims = verify_id_token(token["id_token"], metadata, live_app.client_id, nonce, token["access_token"])
    assert claims["sub"] == subject_of(user)
    assert claims["aud"] == live_app.client_id
    assert claims["email"] == "Alice@example.com" and claims["email_verified"] is True
    assert claims["amr"] == ["pwd"] and claims["auth_time"] <= claims["iat"]

    userinfo = client.get(metadata["userinfo_endpoint"])
    assert userinfo.status_code == 200
    assert userinfo.json() == {
        "sub": subject_of(user), "email": "Alice@example.com", "email_verified": True,
        "preferred_username": "alice", "name": "Alice Liddell", "given_name": "Alice",
        "family_name": "Liddell", "updated_at": userinfo.json()["updated_at"],
    }

    old_refresh = token["refresh_token"]
    refreshed = client.refresh_token(metadata["token_endpoint"], refresh_token=old_refresh)
    assert refreshed["refresh_token"] != old_refresh
    assert refreshed["access_token"] != token["access_token"]
    refreshed_claims = verify_id_token(refreshed["id_token"], metadata, live_app.client_id, None, refreshed["access_token"])
    assert refreshed_claims["sub"] == claims["sub"] and refreshed_claims["auth_time"] == claims["auth_time"]
    assert client.get(metadata["userinfo_endpoint"]).status_code == 200

    revoked = client.revoke_token(metadata["revocation_endpoint"], token=refreshed["access_token"],
                                  token_type_hint="access_token")
    assert revoked.status_code == 200
    assert client.get(metadata["userinfo_endpoint"]).status_code == 401
    # Revoking the access token revoked its refresh token too.
    again = requests.post(metadata["token_endpoint"], data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]},
                          auth=(live_app.client_id, live_app.client_secret), timeout=10)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"

    logout_state = secrets.token_urlsafe(8)
    signed_out = browser.session.get(metadata["end_session_endpoint"], params={
        "id_token_hint": token["id_token"], "post_logout_redirect_uri": "http://127.0.0.1:9/signed-out",
        "state": logout_state}, allow_redirects=False, timeout=10)
    assert signed_out.status_code == 302
    assert signed_out.headers["Location"] == f"http://127.0.0.1:9/signed-out?state={logout_state}"

    silent, _state = client.create_authorization_url(metadata["authorization_endpoint"], nonce="n", prompt="none",
                                                      code_verifier=secrets.token_urlsafe(48))
    answer = browser.session.get(silent, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer.headers["Location"]).query)["error"] == ["login_required"]


def test_public_client_with_pkce_and_client_secret_post(live_server, transactional_db, user, metadata):
    app = make_application(public=True, redirect_uri=CALLBACK)
    client = OAuth2Session(app.client_id, scope="openid", redirect_uri=CALLBACK, code_challenge_method="S256",
                           token_endpoint_auth_method="none")
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(12)
    uri, _state = client.create_authorization_url(metadata["authorization_endpoint"], nonce=nonce, code_verifier=verifier)
    callback = Browser(live_server.url).follow(uri, CALLBACK, identifier="ALICE@example.COM")
    token = client.fetch_token(metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    claims = verify_id_token(token["id_token"], metadata, app.client_id, nonce, token["access_token"])
    assert claims["sub"] == subject_of(user)
    assert "email" not in claims  # only the openid scope was asked for
