"""The discovery document says exactly what is supported, and every endpoint it lists answers."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils.cache import has_vary_header

ISSUER = "http://testserver"
ENDPOINT_KEYS = [
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
    "revocation_endpoint",
    "introspection_endpoint",
    "end_session_endpoint",
]
EXPECTED_PATHS = {
    "authorization_endpoint": "/oauth/authorize",
    "token_endpoint": "/oauth/token",
    "userinfo_endpoint": "/oauth/userinfo",
    "jwks_uri": "/.well-known/jwks.json",
    "revocation_endpoint": "/oauth/revoke",
    "introspection_endpoint": "/oauth/introspect",
    "end_session_endpoint": "/oauth/logout",
}


def discovery(client: Client) -> dict:
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/json")
    return response.json()


def test_issuer_and_endpoints(client, db):
    doc = discovery(client)
    assert doc["issuer"] == ISSUER
    for key in ENDPOINT_KEYS:
        assert doc[key] == ISSUER + EXPECTED_PATHS[key], key


def test_lists_exactly_what_is_supported(client, db):
    doc = discovery(client)
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert sorted(doc["grant_types_supported"]) == ["authorization_code", "refresh_token"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["subject_types_supported"] == ["public"]
    assert doc.get("response_modes_supported", ["query"]) == ["query"]
    assert doc["request_uri_parameter_supported"] is False
    assert doc.get("request_parameter_supported", False) is False
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert set(doc["scopes_supported"]) == {"openid", "profile", "email", "phone"}
    assert set(doc["token_endpoint_auth_methods_supported"]) <= {"client_secret_basic", "client_secret_post", "none"}
    assert "client_secret_basic" in doc["token_endpoint_auth_methods_supported"]
    # Nothing that is not implemented.
    for unsupported in ("implicit", "password", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code"):
        assert unsupported not in doc["grant_types_supported"]
    assert "plain" not in doc["code_challenge_methods_supported"]
    assert "none" not in doc["id_token_signing_alg_values_supported"]
    assert doc.get("frontchannel_logout_supported", False) is False
    assert doc.get("backchannel_logout_supported", False) is False


def test_claims_supported(client, db):
    claims = set(discovery(client)["claims_supported"])
    assert {
        "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid",
        "name", "given_name", "family_name", "preferred_username",
        "email", "email_verified", "phone_number", "phone_number_verified",
    } <= claims


def test_discovery_is_public_and_cacheable(client, db):
    response = client.get("/.well-known/openid-configuration")
    assert response["Access-Control-Allow-Origin"] == "*"
    jwks = client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert jwks["Access-Control-Allow-Origin"] == "*"


def test_a_fixed_issuers_document_is_publicly_cacheable(client, db, settings):
    settings.PORTCULLIS_ISSUER = "https://id.example.com"
    response = client.get("/.well-known/openid-configuration")
    assert response["Cache-Control"] == "public, max-age=300"
    assert not has_vary_header(response, "Host")


def test_a_host_derived_document_is_never_shared_across_hosts(client, db, settings):
    """Without ISSUER (a DEBUG server), the Host header's port, case and trailing dot become the
    issuer: a shared cache that kept one host's document would serve it to the others."""
    settings.ALLOWED_HOSTS = ["*"]
    settings.PORTCULLIS_ISSUER = ""
    for host, issuer in (("testserver:8443", "http://testserver:8443"), ("TestServer.", "http://TestServer.")):
        response = client.get("/.well-known/openid-configuration", HTTP_HOST=host)
        assert response.json()["issuer"] == issuer
        assert has_vary_header(response, "Host"), response.headers
        assert "public" not in response["Cache-Control"] and "private" in response["Cache-Control"]


@pytest.mark.parametrize("key", ENDPOINT_KEYS)
def test_every_listed_endpoint_answers(client, db, key):
    url = discovery(client)[key]
    path = urlsplit(url).path
    get = Client(raise_request_exception=False).get(path)
    post = Client(raise_request_exception=False).post(path)
    assert get.status_code != 404, (key, get.status_code)
    assert post.status_code != 404, (key, post.status_code)
    assert get.status_code < 500 and post.status_code < 500


def test_jwks_uri_serves_keys(client, db):
    path = urlsplit(discovery(client)["jwks_uri"]).path
    body = client.get(path).json()
    assert body["keys"] and all(key["kty"] == "RSA" for key in body["keys"])


def test_configured_issuer_is_followed(client, db, settings):
    settings.PORTCULLIS_ISSUER = "https://id.example.com"
    doc = discovery(client)
    assert doc["issuer"] == "https://id.example.com"
    for key in ENDPOINT_KEYS:
        assert doc[key] == "https://id.example.com" + EXPECTED_PATHS[key], key


def test_configured_issuer_with_trailing_slash(client, db, settings):
    settings.PORTCULLIS_ISSUER = "https://id.example.com/"
    doc = discovery(client)
    assert doc["issuer"] == "https://id.example.com"
    assert doc["token_endpoint"] == "https://id.example.com/oauth/token"


def test_issuer_follows_the_host_when_not_configured(client, db, settings):
    settings.ALLOWED_HOSTS = ["*"]
    settings.PORTCULLIS_ISSUER = ""
    doc = client.get("/.well-known/openid-configuration", HTTP_HOST="login.example.org").json()
    assert doc["issuer"] == "http://login.example.org"
    assert doc["authorization_endpoint"] == "http://login.example.org/oauth/authorize"
    # and back: one host's document is not served to another
    assert discovery(client)["issuer"] == ISSUER


def test_configured_issuer_is_the_id_token_iss(flow, confidential_app, user, settings):
    from tests.helpers import issue_tokens, verify_id_token

    settings.PORTCULLIS_ISSUER = "https://id.example.com"
    body, _ = issue_tokens(flow, confidential_app)
    assert verify_id_token(flow.client, body["id_token"])["iss"] == "https://id.example.com"


def test_discovery_makes_no_queries_once_warmed(client, db, django_assert_num_queries):
    discovery(client)
    with django_assert_num_queries(0):
        discovery(client)


def test_jwks_makes_no_queries_once_warmed(client, db, django_assert_num_queries):
    first = client.get("/.well-known/jwks.json")
    assert first.status_code == 200
    with django_assert_num_queries(0):
        second = client.get("/.well-known/jwks.json")
    assert second.status_code == 200
    assert second.content == first.content


def test_jwks_after_rotation_makes_no_queries_once_warmed_again(client, db, django_assert_num_queries):
    from identity import keys

    client.get("/.well-known/jwks.json")
    keys.rotate()
    rebuilt = client.get("/.well-known/jwks.json").json()
    assert len(rebuilt["keys"]) == 2
    with django_assert_num_queries(0):
        again = client.get("/.well-known/jwks.json").json()
    assert again == rebuilt


# -- the early answer (identity.middleware.PublicDocumentsMiddleware) -------------------------------
@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/.well-known/jwks.json"])
def test_the_early_answer_is_the_views_answer(client, db, rf, settings, path):
    """With a fixed ISSUER (as in production) the middleware answers before sessions, locale and
    CSRF; what a client gets is what the view itself answers, with the headers the rest of the stack
    would add that matter for a JSON document."""
    from identity import views

    settings.PORTCULLIS_ISSUER = ISSUER
    assert "identity.middleware.PublicDocumentsMiddleware" in settings.MIDDLEWARE
    early = client.get(path)
    view = (views.DiscoveryView if "openid" in path else views.JwksView).as_view()(rf.get(path))
    assert early.status_code == view.status_code == 200
    assert early.content == view.content
    for header in ("Content-Type", "Cache-Control", "Access-Control-Allow-Origin"):
        assert early[header] == view[header], header
    assert early["X-Frame-Options"] == "DENY"
    assert early["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware still runs first
    assert int(early["Content-Length"]) == len(early.content)
    assert not has_vary_header(early, "Accept-Language")  # answered early: the same in every language
    assert "sessionid" not in early.cookies and "csrftoken" not in early.cookies


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/.well-known/jwks.json"])
def test_the_early_answer_refuses_a_host_not_allowed(db, path):
    response = Client(raise_request_exception=False).get(path, HTTP_HOST="evil.example.com")
    assert response.status_code == 400


def test_the_early_answer_follows_the_configured_issuer(client, db, settings):
    settings.PORTCULLIS_ISSUER = "https://one.example.com"
    assert discovery(client)["issuer"] == "https://one.example.com"
    settings.PORTCULLIS_ISSUER = "https://two.example.com"
    assert discovery(client)["issuer"] == "https://two.example.com"


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/.well-known/jwks.json"])
def test_other_methods_still_reach_the_views(client, db, path):
    assert client.head(path).status_code == 200
    assert Client(raise_request_exception=False).post(path).status_code == 405
