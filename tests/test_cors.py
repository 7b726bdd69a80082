"""Browser applications on other origins: which of them may read the OAuth endpoints' answers.

Each test is a request a browser would make (a preflight, or the actual request with its ``Origin``)
and asserts the headers that decide whether the browser hands the answer to the page.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from identity import cors
from identity.subjects import subject_of
from tests.helpers import (
    INTROSPECT_URL,
    PASSWORD,
    REVOKE_URL,
    TOKEN_URL,
    USERINFO_URL,
    ClientApp,
    Flow,
    authorize_params,
    basic_auth,
    database_work,
    make_application,
    pkce_pair,
    tokens_for,
)

SPA = "https://spa.example.com"
OTHER_SPA = "https://other-spa.example.com"
ENDPOINTS = {TOKEN_URL: "POST", REVOKE_URL: "POST", INTROSPECT_URL: "POST", USERINFO_URL: "GET"}


def with_origins(app: ClientApp, origins: str) -> ClientApp:
    app.application.allowed_origins = origins
    app.application.save()
    return app


@pytest.fixture
def spa(db: Any) -> ClientApp:
    """A public client in a browser: the SPA's origin, a dev server on a loopback IP, one on localhost,
    one with a path (DOT's matcher would take it), and an http origin saved around the admin's check."""
    app = make_application(public=True, name="Browser app")
    return with_origins(app, f"{SPA} http://127.0.0.1:5173 http://localhost:3000 http://[::1]:8080 "
                             "https://path.example.com/app http://insecure.example.com")


@pytest.fixture
def other_spa(db: Any) -> ClientApp:
    return with_origins(make_application(public=True, name="Another browser app"), OTHER_SPA)


def preflight(client: Client, path: str, origin: str, method: str = "POST", headers: str = "authorization") -> Any:
    return client.options(path, HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
                          HTTP_ACCESS_CONTROL_REQUEST_HEADERS=headers)


def vary(response: Any) -> set[str]:
    return {part.strip().lower() for part in response.get("Vary", "").split(",")}


def assert_no_cors(response: Any) -> None:
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Credentials" not in response
    assert "Access-Control-Allow-Methods" not in response


def assert_allowed(response: Any, origin: str) -> None:
    assert response["Access-Control-Allow-Origin"] == origin
    assert "Access-Control-Allow-Credentials" not in response
    assert "origin" in vary(response)


# -- the preflight --------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ENDPOINTS)
def test_the_preflight_of_a_registered_origin_allows_the_request(client, spa, path):
    method = ENDPOINTS[path]
    response = preflight(client, path, SPA, method)

    assert response.status_code == 204
    assert_allowed(response, SPA)
    assert method in [m.strip() for m in response["Access-Control-Allow-Methods"].split(",")]
    assert {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")} == {"authorization", "content-type"}
    assert int(response["Access-Control-Max-Age"]) > 0


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("origin", ["https://evil.example.com", "https://spa.example.com.evil.example.com",
                                    "https://spa.example.com:8443", "http://spa.example.com",
                                    "http://insecure.example.com", "https://path.example.com"])
def test_the_preflight_of_any_other_origin_gets_no_cors_headers(client, spa, path, origin):
    response = preflight(client, path, origin, ENDPOINTS[path])

    assert response.status_code < 500
    assert_no_cors(response)
    assert "origin" in vary(response)


@pytest.mark.parametrize(("origin", "allowed"), [
    ("http://127.0.0.1:5173", True),
    ("http://127.0.0.1:49152", True),  # a loopback IP's port may vary, as for redirect URIs
    ("http://127.0.0.1", True),
    ("http://[::1]:3000", True),
    ("http://localhost:3000", True),
    ("http://localhost:3001", False),  # a host name keeps its port
    ("http://127.0.0.2:5173", False),
    ("https://127.0.0.1:5173", False),  # another scheme is another origin
])
def test_loopback_origins_follow_the_redirect_uri_rule(client, spa, origin, allowed):
    response = preflight(client, TOKEN_URL, origin)

    if allowed:
        assert_allowed(response, origin)
    else:
        assert_no_cors(response)


def test_an_http_origin_of_another_host_is_refused_even_when_saved(client, user):
    app = with_origins(make_application(public=True), "http://insecure.example.com http://192.168.1.5:8080")
    flow = Flow(client)
    body = tokens_for(flow, app)

    for origin in ("http://insecure.example.com", "http://192.168.1.5:8080"):
        assert_no_cors(preflight(client, TOKEN_URL, origin))
        response = client.get(USERINFO_URL, HTTP_AUTHORIZATION=f"Bearer {body['access_token']}", HTTP_ORIGIN=origin)
        assert response.status_code == 200
        assert_no_cors(response)


# -- the actual requests --------------------------------------------------------------------------
def spa_code(flow: Flow, app: ClientApp) -> tuple[str, str, dict[str, str]]:
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(app, authorize_params(app, challenge))
    return code, verifier, params


def redeem(client: Client, app: ClientApp, code: str, verifier: str, params: dict[str, str], origin: str, **headers: str) -> Any:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": params["redirect_uri"],
            "client_id": app.client_id, "code_verifier": verifier}
    return client.post(TOKEN_URL, data, HTTP_ORIGIN=origin, **headers)


def test_the_spa_reads_its_tokens_and_their_refresh(flow, spa, user):
    code, verifier, params = spa_code(flow, spa)

    response = redeem(flow.client, spa, code, verifier, params, SPA)
    assert response.status_code == 200
    assert_allowed(response, SPA)
    refreshed = flow.client.post(TOKEN_URL, {"grant_type": "refresh_token", "client_id": spa.client_id,
                                             "refresh_token": response.json()["refresh_token"]}, HTTP_ORIGIN=SPA)
    assert refreshed.status_code == 200
    assert_allowed(refreshed, SPA)
    assert refreshed.json()["access_token"] != response.json()["access_token"]


def test_the_spa_can_read_the_error_of_its_own_token_request(flow, spa, user):
    code, _verifier, params = spa_code(flow, spa)

    response = redeem(flow.client, spa, code, "a-wrong-verifier-" + "x" * 40, params, "http://127.0.0.1:5173")

    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert_allowed(response, "http://127.0.0.1:5173")


def test_another_apps_origin_cannot_read_this_apps_token_response(flow, spa, other_spa, user):
    code, verifier, params = spa_code(flow, spa)
    assert_allowed(preflight(flow.client, TOKEN_URL, OTHER_SPA), OTHER_SPA)  # registered, by the other app

    response = redeem(flow.client, spa, code, verifier, params, OTHER_SPA)

    assert response.status_code == 200  # the server answers; the browser keeps it from the page
    assert_no_cors(response)
    assert "origin" in vary(response)


def test_basic_and_body_naming_two_clients_are_answered_for_nobody(flow, spa, user):
    confidential = with_origins(make_application(name="Confidential"), SPA)
    code, verifier, params = spa_code(flow, spa)

    response = redeem(flow.client, spa, code, verifier, params, SPA, HTTP_AUTHORIZATION=basic_auth(confidential))

    assert response.status_code >= 400
    assert_no_cors(response)


def test_a_path_in_a_registered_origin_matches_nothing_not_even_through_oauthlib(flow, spa, user):
    code, verifier, params = spa_code(flow, spa)

    response = redeem(flow.client, spa, code, verifier, params, "https://path.example.com")

    assert response.status_code == 200
    assert_no_cors(response)


def test_userinfo_answers_the_origins_of_the_tokens_client(flow, spa, other_spa, user):
    access_token = tokens_for(flow, spa)["access_token"]

    mine = flow.client.get(USERINFO_URL, HTTP_AUTHORIZATION=f"Bearer {access_token}", HTTP_ORIGIN=SPA)
    assert mine.status_code == 200 and mine.json()["sub"] == subject_of(user)
    assert_allowed(mine, SPA)
    assert "WWW-Authenticate" in mine["Access-Control-Expose-Headers"]

    # Another application's page holding this user's token (stolen, or handed over) cannot read it.
    theirs = flow.client.get(USERINFO_URL, HTTP_AUTHORIZATION=f"Bearer {access_token}", HTTP_ORIGIN=OTHER_SPA)
    assert theirs.status_code == 200
    assert_no_cors(theirs)

    posted = flow.client.post(USERINFO_URL, {"access_token": access_token}, HTTP_ORIGIN=SPA)
    assert posted.status_code == 200
    assert_allowed(posted, SPA)


def test_an_unknown_token_is_a_readable_401_for_registered_origins_only(client, spa):
    for origin, readable in ((SPA, True), (OTHER_SPA, False), ("https://evil.example.com", False)):
        response = client.get(USERINFO_URL, HTTP_AUTHORIZATION="Bearer not-a-token", HTTP_ORIGIN=origin)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        if readable:
            assert_allowed(response, origin)
        else:
            assert_no_cors(response)


def test_revocation_answers_the_clients_origins_only(flow, spa, other_spa, user):
    body = tokens_for(flow, spa)

    theirs = flow.client.post(REVOKE_URL, {"token": body["refresh_token"], "client_id": spa.client_id}, HTTP_ORIGIN=OTHER_SPA)
    assert_no_cors(theirs)
    mine = flow.client.post(REVOKE_URL, {"token": body["refresh_token"], "client_id": spa.client_id}, HTTP_ORIGIN=SPA)
    assert mine.status_code == 200
    assert_allowed(mine, SPA)


def test_introspection_answers_the_clients_origins_only(flow, user):
    app = with_origins(make_application(name="Confidential with a browser front"), SPA)
    access_token = tokens_for(flow, app)["access_token"]

    mine = flow.client.post(INTROSPECT_URL, {"token": access_token}, HTTP_AUTHORIZATION=basic_auth(app), HTTP_ORIGIN=SPA)
    assert mine.status_code == 200 and mine.json()["active"] is True
    assert_allowed(mine, SPA)
    theirs = flow.client.post(INTROSPECT_URL, {"token": access_token}, HTTP_AUTHORIZATION=basic_auth(app),
                              HTTP_ORIGIN="https://evil.example.com")
    assert_no_cors(theirs)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_answers_without_an_origin_vary_on_it(client, spa, path):
    response = client.generic(ENDPOINTS[path], path)

    assert_no_cors(response)
    assert "origin" in vary(response)


BAD_ORIGINS = {
    "null": "null",
    "garbage": "not an origin",
    "huge": "https://" + "a" * 100_000 + ".example.com",
    "with-path": SPA + "/",
    "with-userinfo": "https://user@spa.example.com",
    "newline": SPA + "\n",
    "nul": SPA + "\x00",
    "non-ascii": "https://spä.example.com",
    "latin1-bytes": "https://\xff\xfe.example.com",
    "bad-port": "https://spa.example.com:99999",
    "port-zero": "http://127.0.0.1:0",
    "javascript": "javascript:alert(1)",
    "wildcard": "*",
    "list": f"{SPA} {OTHER_SPA}",
    "empty": "",
}


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("name", BAD_ORIGINS)
def test_a_bad_origin_header_gets_no_cors_headers_and_no_500(client, spa, path, name):
    origin = BAD_ORIGINS[name]

    for response in (preflight(client, path, origin, ENDPOINTS[path]),
                     client.generic(ENDPOINTS[path], path, HTTP_ORIGIN=origin, HTTP_AUTHORIZATION="Bearer x")):
        assert response.status_code < 500
        assert_no_cors(response)


# -- public documents -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/.well-known/jwks.json"])
def test_discovery_and_jwks_are_open_to_every_origin_without_credentials(client, db, path):
    for origin in ("https://anyone.example.com", "null", "http://example.com"):
        response = client.get(path, HTTP_ORIGIN=origin)
        assert response.status_code == 200
        assert response["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response

    response = preflight(client, path, "https://anyone.example.com", "GET", "content-type")
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "GET" in response["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response


# -- registration changes -------------------------------------------------------------------------
def test_a_newly_registered_origin_is_answered_at_once_and_a_removed_one_no_more(client, spa):
    assert_no_cors(preflight(client, TOKEN_URL, "https://new.example.com"))

    with_origins(spa, f"{SPA} https://new.example.com")
    assert_allowed(preflight(client, TOKEN_URL, "https://new.example.com"), "https://new.example.com")

    spa.application.delete()
    assert_no_cors(preflight(client, TOKEN_URL, "https://new.example.com"))


def test_another_process_change_is_seen_through_the_shared_version(client, spa, monkeypatch):
    monkeypatch.setattr(cors, "CHECK_SECONDS", 0.0)  # as if the few seconds between checks had passed
    assert_allowed(preflight(client, TOKEN_URL, SPA), SPA)

    # Another process removes the origin; its save moved the version in the shared cache.
    type(spa.application).objects.filter(pk=spa.application.pk).update(allowed_origins=OTHER_SPA)
    cache.set(cors.VERSION_KEY, "moved by another process", None)

    assert_no_cors(preflight(client, TOKEN_URL, SPA))


# -- cost -----------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_cross_origin_requests_cost_no_extra_query(flow, spa, user, django_assert_max_num_queries):
    code, verifier, params = spa_code(flow, spa)
    preflight(flow.client, USERINFO_URL, SPA, "GET")  # the registered origins are known
    flow.client.get("/.well-known/jwks.json")  # the signing key exists, as on any running server
    with database_work() as work:
        redeemed = redeem(flow.client, spa, code, verifier, params, SPA)
    assert len(work.statements) <= 5, work.statements  # SPEC's token budget, the Origin's application included
    assert redeemed.status_code == 200
    assert_allowed(redeemed, SPA)
    access_token = redeemed.json()["access_token"]

    with django_assert_max_num_queries(0):
        assert_allowed(preflight(flow.client, USERINFO_URL, SPA, "GET"), SPA)
    with django_assert_max_num_queries(1):
        response = flow.client.get(USERINFO_URL, HTTP_AUTHORIZATION=f"Bearer {access_token}", HTTP_ORIGIN=SPA)
    assert response.status_code == 200
    assert_allowed(response, SPA)


def test_a_form_can_tell_which_saved_origins_would_match_nothing():
    value = f"{SPA} http://127.0.0.1:5173 http://localhost:3000/ http://app.example.com https://*.example.com https://a.example.com/path null"

    assert cors.unusable_origins(value) == ["http://app.example.com", "https://*.example.com", "https://a.example.com/path", "null"]


# -- the headless JSON APIs of first-party applications (/api/auth/*, /api/authorization/*) --------------
LOGIN_BY_PASSWORD = "/api/authorization/login-by-password"


@pytest.fixture
def headless_spa(db: Any) -> ClientApp:
    """A first-party single-page app on its own origin, allowed the headless API."""
    return with_origins(make_application(public=True, headless=True, name="Shop front"), SPA)


def api_post(client: Client, path: str, body: Any, origin: str, **headers: str) -> Any:
    import json

    return client.post(path, json.dumps(body), content_type="application/json", HTTP_ORIGIN=origin, **headers)


@pytest.mark.parametrize("path", [LOGIN_BY_PASSWORD, "/api/authorization/check-code", "/api/auth/sign-in",
                                  "/api/auth/send-code", "/api/auth/check"])
def test_the_headless_apis_preflight_allows_a_registered_origin_and_the_authenticator_header(client, headless_spa, path):
    response = preflight(client, path, SPA, headers="content-type, x-authenticator")
    assert response.status_code == 204
    assert_allowed(response, SPA)
    assert {"x-authenticator", "content-type", "authorization"} <= {
        part.strip().lower() for part in response["Access-Control-Allow-Headers"].split(",")}
    assert_no_cors(preflight(client, path, "https://evil.example.com", headers="content-type"))


def test_a_browser_app_reads_its_own_headless_sign_in_and_nobody_else_does(client, headless_spa, other_spa, user):
    body = {"client_id": headless_spa.client_id, "email": "alice@example.com", "password": PASSWORD}
    signed_in = api_post(client, LOGIN_BY_PASSWORD, body, SPA)
    assert signed_in.status_code == 200 and signed_in.json()["access_token"]
    assert_allowed(signed_in, SPA)
    assert "Retry-After" in signed_in["Access-Control-Expose-Headers"]

    # Another application's registered origin cannot read this application's tokens.
    stolen = api_post(client, LOGIN_BY_PASSWORD, body, OTHER_SPA)
    assert stolen.status_code == 200  # the request ran (CORS is the browser's check) ...
    assert_no_cors(stolen)  # ... but no browser hands the answer to the other origin's page
    assert "origin" in vary(stolen)

    wrong = api_post(client, LOGIN_BY_PASSWORD, {**body, "password": "wrong password"}, SPA)
    assert wrong.status_code == 400 and wrong.json()["key"]["code"] == "invalid_credentials"
    assert_allowed(wrong, SPA)  # its errors are readable too

    check = client.get("/api/auth/check", HTTP_ORIGIN=SPA,
                       HTTP_AUTHORIZATION=f"Bearer {signed_in.json()['access_token']}")
    assert check.status_code == 200
    assert_allowed(check, SPA)
    assert_no_cors(client.get("/api/auth/check", HTTP_ORIGIN=OTHER_SPA,
                              HTTP_AUTHORIZATION=f"Bearer {signed_in.json()['access_token']}"))


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[1, 2]", b'{"client_id": 7}', b"x" * (32 * 1024)])
def test_a_bad_body_on_another_origin_is_a_400_in_the_api_shape_never_a_500(client, headless_spa, body):
    response = client.post(LOGIN_BY_PASSWORD, body, content_type="application/json", HTTP_ORIGIN=SPA)
    assert response.status_code in (400, 413), response.content[:300]
    assert response.status_code != 500
    assert_allowed(response, SPA)  # a body naming no application: answered for registered origins
    assert_no_cors(client.post(LOGIN_BY_PASSWORD, body, content_type="application/json",
                               HTTP_ORIGIN="https://evil.example.com"))
