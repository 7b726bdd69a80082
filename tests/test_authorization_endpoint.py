"""The authorization endpoint, one attack (SECURITY.md, "Authorization endpoint") per test.

Also SPEC section 1's prompt / max_age behaviour and the hosted sign-in page's part in it.
Consent has its own file, tests/test_consent.py.
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client

from identity.models import Profile
from identity.subjects import subject_of
from tests.helpers import (
    PASSWORD,
    REDIRECT_URI,
    assert_error_page,
    assert_no_framing,
    authorize,
    authorize_params,
    jwt_payload,
    make_application,
    pkce_pair,
    query_of,
    sign_in_on_page,
)

ISSUER = "http://testserver"
SIGN_IN_RE = re.compile(r"^(?:http://testserver)?/sign-in/[^/?#]+/$")


# -- helpers ----------------------------------------------------------------------------------------


def assert_client_redirect(response: Any, redirect_uri: str = REDIRECT_URI) -> dict[str, str]:
    """A redirect to the client's registered redirect_uri carrying iss; returns its query."""
    assert response.status_code in (302, 303), (response.status_code, response.content[:500])
    location = response["Location"]
    assert location.startswith(redirect_uri + "?"), location
    query = query_of(location)
    assert query.get("iss") == ISSUER, query
    return query


def assert_error_redirect(response: Any, error: str, state: str | None = None,
                          redirect_uri: str = REDIRECT_URI) -> dict[str, str]:
    query = assert_client_redirect(response, redirect_uri)
    assert query.get("error") == error, query
    assert "code" not in query, query
    if state is not None:
        assert query.get("state") == state, query
    return query


def assert_sign_in_redirect(response: Any) -> str:
    assert response.status_code in (302, 303), (response.status_code, response.content[:500])
    location = response["Location"]
    assert SIGN_IN_RE.match(location), location
    return location


def id_token_claims(flow: Any, app: Any, code: str, params: dict[str, str], **extra: str) -> dict[str, Any]:
    response = flow.token(app, code, params, **extra)
    assert response.status_code == 200, response.content
    return jwt_payload(response.json()["id_token"])


def sign_in_and_follow(client: Client, sign_in_url: str, identifier: str = "alice") -> Any:
    """Sign in on the hosted page; answers the authorization endpoint's response to the resume URL."""
    response = sign_in_on_page(client, sign_in_url, identifier)
    assert response.status_code == 303, (response.status_code, response.content[:500])
    return client.get(response["Location"])


@pytest.fixture
def bob(db: Any, django_user_model: Any) -> Any:
    account = django_user_model.objects.create_user("bob", "bob@example.com", PASSWORD)
    Profile.objects.create(user=account, email_verified=True)
    return account


@pytest.fixture
def signed_in(flow: Any, confidential_app: Any, user: Any) -> Any:
    """A browser that has signed in through Portcullis (via a first-party app)."""
    flow.code_for(confidential_app)
    return flow


# -- exact redirect URI matching -------------------------------------------------------------------
NEAR_MISSES = [
    REDIRECT_URI + "/x",
    REDIRECT_URI + "/",
    REDIRECT_URI + "x",
    REDIRECT_URI + "?a=1",
    REDIRECT_URI + "?",
    REDIRECT_URI + "#f",
    REDIRECT_URI + "#",
    REDIRECT_URI + ";p=1",
    "https://user@rp.example.com/callback",
    "https://rp.example.com@evil.example/callback",
    "https://evil.example@rp.example.com/callback",
    "http://rp.example.com/callback",
    "https://rp.example.com:8443/callback",
    "https://rp.example.com:443/callback",
    "https://RP.EXAMPLE.COM/callback",
    "https://rp.example.com/CALLBACK",
    "https://rp.example.com/%63allback",
    "https://rp.example.com.evil.example/callback",
    "https://evil.example/callback",
    "https://rp.example.com/callback/../callback",
    "//rp.example.com/callback",
    "/callback",
]


@pytest.mark.parametrize("redirect_uri", NEAR_MISSES)
def test_near_miss_redirect_uri_gets_error_page_for_signed_in_user(signed_in, confidential_app, redirect_uri):
    response = authorize(signed_in.client, authorize_params(confidential_app, redirect_uri=redirect_uri))
    assert_error_page(response)
    assert_no_framing(response)


@pytest.mark.parametrize("redirect_uri", NEAR_MISSES)
def test_near_miss_redirect_uri_with_prompt_none_and_no_session_gets_error_page(client, confidential_app, redirect_uri):
    response = authorize(client, authorize_params(confidential_app, redirect_uri=redirect_uri, prompt="none"))
    assert_error_page(response)


@pytest.mark.parametrize("redirect_uri", NEAR_MISSES[:8])
def test_near_miss_redirect_uri_never_reaches_the_sign_in_page(client, confidential_app, redirect_uri):
    # Otherwise the user would sign in and be sent to the attacker with a code.
    response = authorize(client, authorize_params(confidential_app, redirect_uri=redirect_uri))
    assert_error_page(response)


@pytest.mark.parametrize("prompt", ["", "none", "login", "consent"])
def test_unregistered_redirect_uri_never_redirects(signed_in, confidential_app, prompt):
    params = authorize_params(confidential_app, redirect_uri="https://evil.example/steal")
    if prompt:
        params["prompt"] = prompt
    response = authorize(signed_in.client, params)
    assert_error_page(response)


@pytest.mark.parametrize("client_id", ["unknown-client", "", None, "x" * 500, "a\x00b"])
@pytest.mark.parametrize("prompt", [None, "none"])
def test_unknown_or_missing_client_id_never_redirects(signed_in, client_id, prompt):
    params = {"response_type": "code", "redirect_uri": REDIRECT_URI, "scope": "openid", "state": "s1"}
    if client_id is not None:
        params["client_id"] = client_id
    if prompt:
        params["prompt"] = prompt
    response = authorize(signed_in.client, params)
    assert_error_page(response)
    assert_no_framing(response)


def test_unknown_client_id_without_session_never_redirects(client, db):
    params = {"response_type": "code", "client_id": "nope", "redirect_uri": "https://evil.example/cb",
              "scope": "openid", "state": "s1", "prompt": "none"}
    assert_error_page(authorize(client, params))


def test_client_id_of_another_application_with_this_redirect_uri_never_redirects(signed_in, db):
    other = make_application(redirect_uri="https://other.example/cb", name="Other")
    params = authorize_params(other)  # redirect_uri is the first app's, not registered for "other"
    assert_error_page(authorize(signed_in.client, params))


@pytest.mark.parametrize("duplicated", ["redirect_uri", "client_id"])
def test_duplicated_redirect_uri_or_client_id_never_redirects(signed_in, confidential_app, duplicated):
    params = list(authorize_params(confidential_app).items())
    params.append((duplicated, "https://evil.example/cb" if duplicated == "redirect_uri" else "other"))
    response = signed_in.client.get("/oauth/authorize?" + urlencode(params))
    assert response.status_code == 400, response.get("Location")
    assert not response.has_header("Location")


def test_exact_redirect_uri_is_accepted(signed_in, confidential_app):
    response = authorize(signed_in.client, authorize_params(confidential_app))
    query = assert_client_redirect(response)
    assert query.get("code")


def test_loopback_redirect_uri_may_vary_its_port(client, user, db):
    app = make_application(public=True, redirect_uri="http://127.0.0.1/cb", name="Native app")
    verifier, challenge = pkce_pair()
    redirect_uri = "http://127.0.0.1:54321/cb"
    params = authorize_params(app, challenge, redirect_uri=redirect_uri)
    response = sign_in_and_follow(client, assert_sign_in_redirect(authorize(client, params)))
    query = assert_client_redirect(response, redirect_uri)
    assert query.get("code")
    assert query["state"] == params["state"]
    token = client.post("/oauth/token", {"grant_type": "authorization_code", "code": query["code"],
                                         "redirect_uri": redirect_uri, "client_id": app.client_id,
                                         "code_verifier": verifier})
    assert token.status_code == 200, token.content


@pytest.mark.parametrize("redirect_uri", [
    "http://127.0.0.1:54321/cb/x",
    "http://127.0.0.1:54321/cb?a=1",
    "http://localhost:54321/cb",
    "https://127.0.0.1:54321/cb",
    "http://127.0.0.2:54321/cb",
    "http://user@127.0.0.1:54321/cb",
])
def test_loopback_port_freedom_does_not_extend_to_path_host_or_scheme(client, user, db, redirect_uri):
    app = make_application(public=True, redirect_uri="http://127.0.0.1/cb", name="Native app")
    _verifier, challenge = pkce_pair()
    response = authorize(client, authorize_params(app, challenge, redirect_uri=redirect_uri, prompt="none"))
    assert_error_page(response)


# -- iss in every authorization response --------------------------------------------------------------
def test_discovery_announces_iss_parameter(client, db):
    document = client.get("/.well-known/openid-configuration").json()
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["issuer"] == ISSUER


def test_successful_authorization_response_carries_iss_and_state(signed_in, confidential_app):
    params = authorize_params(confidential_app)
    query = assert_client_redirect(authorize(signed_in.client, params))
    assert query["code"]
    assert query["state"] == params["state"]
    assert query["iss"] == ISSUER


def test_the_code_response_carries_one_iss_the_configured_issuers(signed_in, confidential_app, settings):
    """DOT derives an iss of its own from the request's host; the response carries only ours."""
    settings.PORTCULLIS_ISSUER = "https://id.example.com"
    params = authorize_params(confidential_app)
    response = authorize(signed_in.client, params)
    assert response.status_code == 302, response.status_code
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["iss"] == ["https://id.example.com"]
    assert query["state"] == [params["state"]] and len(query["code"]) == 1


def test_an_iss_in_the_registered_redirect_uri_is_replaced_by_ours(signed_in, db):
    app = make_application(redirect_uri="https://rp.example.com/cb?iss=https%3A%2F%2Fevil.example&tenant=7")
    params = authorize_params(app)
    params["redirect_uri"] = "https://rp.example.com/cb?iss=https%3A%2F%2Fevil.example&tenant=7"
    response = authorize(signed_in.client, params)
    assert response.status_code == 302, response.status_code
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["iss"] == [ISSUER] and query["tenant"] == ["7"] and query["code"]


def test_oauthlib_reads_only_the_kept_parameters(signed_in, confidential_app):
    """The view hands oauthlib the kept parameters; a long hint it drops is not seen by oauthlib
    either (the hint is dropped, the code is issued), and a parameter repeated is refused before."""
    params = authorize_params(confidential_app, login_hint="x" * 300, claims='{"userinfo": {}}')
    query = assert_client_redirect(authorize(signed_in.client, params))
    assert query["code"] and query["state"] == params["state"]
    repeated = "/oauth/authorize?" + urlencode(authorize_params(confidential_app)) + "&state=second"
    assert_error_page(signed_in.client.get(repeated))


@pytest.mark.parametrize("extra, error", [
    ({"prompt": "none"}, "login_required"),
    ({"scope": "openid nonsense-scope"}, "invalid_scope"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"code_challenge": "a" * 43, "code_challenge_method": "plain"}, "invalid_request"),
])
def test_error_responses_carry_iss_and_state(client, confidential_app, extra, error):
    params = authorize_params(confidential_app, **extra)
    assert_error_redirect(authorize(client, params), error, params["state"])


# -- prompt=none -------------------------------------------------------------------------------------------
def test_prompt_none_without_session_answers_login_required(client, confidential_app):
    params = authorize_params(confidential_app, prompt="none")
    response = authorize(client, params)
    assert_error_redirect(response, "login_required", params["state"])
    assert_no_framing(response)


def test_prompt_none_without_session_for_public_client_answers_login_required(client, public_app):
    _verifier, challenge = pkce_pair()
    params = authorize_params(public_app, challenge, prompt="none")
    assert_error_redirect(authorize(client, params), "login_required", params["state"])


def test_prompt_none_with_session_issues_a_code(signed_in, confidential_app):
    query = assert_client_redirect(authorize(signed_in.client, authorize_params(confidential_app, prompt="none")))
    assert query.get("code")


def test_prompt_none_for_third_party_app_without_consent_answers_consent_required(signed_in, third_party_app):
    params = authorize_params(third_party_app, prompt="none")
    assert_error_redirect(authorize(signed_in.client, params), "consent_required", params["state"])


# -- a session that did not pass through Portcullis's sign-in --------------------------------------------
def test_force_login_session_is_sent_to_the_sign_in_page(client, confidential_app, user):
    client.force_login(user)  # what Django admin's login form does
    response = authorize(client, authorize_params(confidential_app))
    assert "code" not in query_of(response.get("Location", ""))
    assert_sign_in_redirect(response)


def test_force_login_session_with_prompt_none_gets_login_required(client, confidential_app, user):
    client.force_login(user)
    params = authorize_params(confidential_app, prompt="none")
    assert_error_redirect(authorize(client, params), "login_required", params["state"])


def test_admin_login_form_session_is_sent_to_the_sign_in_page(client, confidential_app, user):
    """A Django session opened outside the sign-in experience (a host project's own login view;
    the admin's own login page now goes through the hosted sign-in) is not a sign-in."""
    user.is_staff = True
    user.save()
    client.force_login(user)
    assert client.get("/admin/").status_code == 200
    assert_sign_in_redirect(authorize(client, authorize_params(confidential_app)))


def test_forged_resume_token_does_not_count_as_a_sign_in(client, confidential_app, user):
    client.force_login(user)
    params = authorize_params(confidential_app, resume="forged-token")
    assert_sign_in_redirect(authorize(client, params))


# -- prompt=login and max_age --------------------------------------------------------------------------------
def test_prompt_login_forces_a_new_sign_in_and_a_later_auth_time(flow, confidential_app, user):
    code, params = flow.code_for(confidential_app)
    first = id_token_claims(flow, confidential_app, code, params)
    time.sleep(1.1)
    params = authorize_params(confidential_app, prompt="login")
    response = flow.authorize(params)
    sign_in_url = assert_sign_in_redirect(response)  # the existing session is not enough
    response = sign_in_and_follow(flow.client, sign_in_url)
    query = assert_client_redirect(response)
    second = id_token_claims(flow, confidential_app, query["code"], params)
    assert second["auth_time"] > first["auth_time"]
    assert second["sub"] == first["sub"]


def test_prompt_login_is_not_satisfied_by_replaying_an_earlier_resume_url(flow, confidential_app, user):
    flow.code_for(confidential_app)
    params = authorize_params(confidential_app, prompt="login")
    sign_in_url = assert_sign_in_redirect(flow.authorize(params))
    signed = sign_in_on_page(flow.client, sign_in_url)
    assert signed.status_code == 303
    resume = signed["Location"]
    assert_client_redirect(flow.client.get(resume))
    # The resume marker is single use: the same URL again asks for a new sign-in.
    assert_sign_in_redirect(flow.client.get(resume))


def test_prompt_login_with_wrong_password_gives_no_code(flow, confidential_app, user):
    flow.code_for(confidential_app)
    sign_in_url = assert_sign_in_redirect(flow.authorize(authorize_params(confidential_app, prompt="login")))
    response = sign_in_on_page(flow.client, sign_in_url, password="wrong password")
    assert response.status_code == 400
    assert not response.has_header("Location")


def test_prompt_login_with_prompt_none_still_never_issues_code_without_sign_in(signed_in, confidential_app):
    params = authorize_params(confidential_app, prompt="none login")
    response = authorize(signed_in.client, params)
    assert "code" not in query_of(response.get("Location", ""))


def test_exceeded_max_age_forces_a_new_sign_in_and_a_later_auth_time(flow, confidential_app, user):
    code, params = flow.code_for(confidential_app)
    first = id_token_claims(flow, confidential_app, code, params)
    time.sleep(2.1)
    params = authorize_params(confidential_app, max_age="1")
    sign_in_url = assert_sign_in_redirect(flow.authorize(params))
    query = assert_client_redirect(sign_in_and_follow(flow.client, sign_in_url))
    second = id_token_claims(flow, confidential_app, query["code"], params)
    assert second["auth_time"] > first["auth_time"]


def test_exceeded_max_age_with_prompt_none_answers_login_required(flow, confidential_app, user):
    flow.code_for(confidential_app)
    time.sleep(2.1)
    params = authorize_params(confidential_app, max_age="1", prompt="none")
    assert_error_redirect(flow.authorize(params), "login_required", params["state"])


def test_max_age_not_exceeded_issues_code_with_auth_time(flow, confidential_app, user):
    code, params = flow.code_for(confidential_app)
    first = id_token_claims(flow, confidential_app, code, params)
    params = authorize_params(confidential_app, max_age="3600")
    query = assert_client_redirect(flow.authorize(params))
    second = id_token_claims(flow, confidential_app, query["code"], params)
    assert isinstance(second["auth_time"], int)
    assert second["auth_time"] == first["auth_time"]
    assert second["auth_time"] <= second["iat"]


def test_max_age_on_first_sign_in_gives_auth_time(flow, confidential_app, user):
    params = authorize_params(confidential_app, max_age="600")
    code, params = flow.code_for(confidential_app, params)
    claims = id_token_claims(flow, confidential_app, code, params)
    assert isinstance(claims["auth_time"], int)
    assert abs(claims["auth_time"] - time.time()) < 600


@pytest.mark.parametrize("max_age", ["-1", "abc", "1.5", "1e3"])
def test_invalid_max_age_with_session_answers_invalid_request(signed_in, confidential_app, max_age):
    params = authorize_params(confidential_app, max_age=max_age)
    assert_error_redirect(authorize(signed_in.client, params), "invalid_request", params["state"])


@pytest.mark.parametrize("max_age", ["-1", "abc"])
def test_invalid_max_age_without_session_answers_invalid_request(client, confidential_app, max_age):
    params = authorize_params(confidential_app, max_age=max_age)
    assert_error_redirect(authorize(client, params), "invalid_request", params["state"])


# -- id_token_hint ----------------------------------------------------------------------------------------------
def id_token_for(app: Any, identifier: str) -> str:
    from tests.helpers import Flow

    other = Flow(Client())
    code, params = other.code_for(app, identifier=identifier)
    response = other.token(app, code, params)
    assert response.status_code == 200, response.content
    return response.json()["id_token"]


def test_id_token_hint_for_another_user_with_prompt_none_answers_login_required(signed_in, confidential_app, bob):
    bob_token = id_token_for(confidential_app, "bob")
    params = authorize_params(confidential_app, prompt="none", id_token_hint=bob_token)
    assert_error_redirect(authorize(signed_in.client, params), "login_required", params["state"])


def test_id_token_hint_for_another_user_sends_to_sign_in_page(signed_in, confidential_app, bob):
    bob_token = id_token_for(confidential_app, "bob")
    params = authorize_params(confidential_app, id_token_hint=bob_token)
    sign_in_url = assert_sign_in_redirect(authorize(signed_in.client, params))
    # Signing in as the hinted user completes the request, for the hinted user.
    query = assert_client_redirect(sign_in_and_follow(signed_in.client, sign_in_url, identifier="bob"))
    claims = id_token_claims(signed_in, confidential_app, query["code"], params)
    assert claims["sub"] == subject_of(bob)


def test_forged_id_token_hint_answers_login_required(signed_in, confidential_app, user):
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps({"sub": subject_of(user), "aud": "x"}).encode()).rstrip(b"=").decode()
    params = authorize_params(confidential_app, prompt="none", id_token_hint=f"{header}.{body}.")
    assert_error_redirect(authorize(signed_in.client, params), "login_required", params["state"])


def test_id_token_hint_for_the_signed_in_user_issues_code_silently(signed_in, confidential_app, user):
    alice_token = id_token_for(confidential_app, "alice")
    params = authorize_params(confidential_app, prompt="none", id_token_hint=alice_token)
    assert assert_client_redirect(authorize(signed_in.client, params)).get("code")


# -- parameters that never cause an error ----------------------------------------------------------------------
@pytest.mark.parametrize("extra", [
    {"unknown_parameter": "whatever", "another": ""},
    {"scope": "phone email profile openid"},
    {"scope": "email openid"},
    {"display": "page"},
    {"display": "popup"},
    {"display": "touch"},
    {"display": "wap"},
    {"ui_locales": "ru uk en"},
    {"ui_locales": "xx-YY"},
    {"claims_locales": "uk"},
    {"login_hint": "alice"},
    {"login_hint": "someone-else@example.com"},
    {"acr_values": "urn:mace:incommon:iap:silver"},
    {"response_mode": "query"},
])
def test_optional_and_unknown_parameters_never_cause_an_error(flow, confidential_app, user, extra):
    params = authorize_params(confidential_app, **extra)
    code, params = flow.code_for(confidential_app, params)
    claims = id_token_claims(flow, confidential_app, code, params)
    assert claims["nonce"] == params["nonce"]


@pytest.mark.parametrize("extra", [{"display": "popup"}, {"ui_locales": "uk"}, {"acr_values": "x"},
                                   {"unknown": "1"}])
def test_optional_parameters_never_cause_an_error_for_a_signed_in_user(signed_in, confidential_app, extra):
    query = assert_client_redirect(authorize(signed_in.client, authorize_params(confidential_app, **extra)))
    assert query.get("code")


def test_post_to_authorization_endpoint_without_session(client, confidential_app, user):
    params = authorize_params(confidential_app)
    response = client.post("/oauth/authorize", params)
    sign_in_url = assert_sign_in_redirect(response)
    query = assert_client_redirect(sign_in_and_follow(client, sign_in_url))
    assert query.get("code")
    assert query["state"] == params["state"]


def test_post_to_authorization_endpoint_with_session_answers_303(signed_in, confidential_app):
    params = authorize_params(confidential_app)
    response = signed_in.client.post("/oauth/authorize", params)
    assert response.status_code == 303
    query = assert_client_redirect(response)
    assert query.get("code")
    assert query["state"] == params["state"]


def test_post_to_authorization_endpoint_with_prompt_none_error_answers_303(client, confidential_app):
    params = authorize_params(confidential_app, prompt="none")
    response = client.post("/oauth/authorize", params)
    assert response.status_code == 303
    assert_error_redirect(response, "login_required", params["state"])


def identifier_input(html: str) -> str:
    match = re.search(r"<input[^>]*\bname=\"identifier\"[^>]*>", html)
    assert match, html
    return match.group(0)


def test_login_hint_prefills_the_identifier(client, confidential_app, user):
    params = authorize_params(confidential_app, login_hint="alice@example.com")
    page = client.get(assert_sign_in_redirect(authorize(client, params)))
    assert page.status_code == 200
    assert 'value="alice@example.com"' in identifier_input(page.content.decode())


def test_login_hint_is_escaped_on_the_sign_in_page(client, confidential_app, user):
    hint = '"><script>alert(1)</script>'
    params = authorize_params(confidential_app, login_hint=hint)
    page = client.get(assert_sign_in_redirect(authorize(client, params)))
    assert page.status_code == 200
    html = page.content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "alert(1)" in identifier_input(html)


# -- 303 after credentials -----------------------------------------------------------------------------------------
def test_sign_in_post_redirects_with_303(client, confidential_app, user):
    params = authorize_params(confidential_app)
    sign_in_url = assert_sign_in_redirect(authorize(client, params))
    response = sign_in_on_page(client, sign_in_url)
    assert response.status_code == 303
    assert response.status_code != 307
    location = urlsplit(response["Location"])
    assert location.path == "/oauth/authorize"
    assert query_of(response["Location"])["state"] == params["state"]


def test_authorization_endpoint_redirect_to_sign_in_is_not_307(client, confidential_app):
    response = client.post("/oauth/authorize", authorize_params(confidential_app))
    assert response.status_code in (302, 303)


# -- framing ----------------------------------------------------------------------------------------------------------
def test_sign_in_page_denies_framing(client, confidential_app, user):
    page = client.get(assert_sign_in_redirect(authorize(client, authorize_params(confidential_app))))
    assert page.status_code == 200
    assert_no_framing(page)


def test_failed_sign_in_page_denies_framing(client, confidential_app, user):
    sign_in_url = assert_sign_in_redirect(authorize(client, authorize_params(confidential_app)))
    response = sign_in_on_page(client, sign_in_url, password="nope")
    assert response.status_code == 400
    assert_no_framing(response)


def test_expired_sign_in_page_denies_framing(client, db):
    response = client.get("/sign-in/not-an-interaction/")
    assert response.status_code == 400
    assert_no_framing(response)


def test_error_page_denies_framing(client, confidential_app):
    response = authorize(client, authorize_params(confidential_app, redirect_uri="https://evil.example/"))
    assert_error_page(response)
    assert_no_framing(response)


def test_code_response_denies_framing(signed_in, confidential_app):
    response = authorize(signed_in.client, authorize_params(confidential_app))
    assert_client_redirect(response)
    assert_no_framing(response)


def test_redirect_to_sign_in_denies_framing(client, confidential_app):
    response = authorize(client, authorize_params(confidential_app))
    assert_sign_in_redirect(response)
    assert_no_framing(response)


# -- PKCE and response types at the authorization endpoint ---------------------------------------------------------
def test_public_client_without_code_challenge_gets_invalid_request(client, public_app):
    params = authorize_params(public_app)
    assert_error_redirect(authorize(client, params), "invalid_request", params["state"])


def test_public_client_without_code_challenge_gets_no_code_even_when_signed_in(signed_in, public_app):
    params = authorize_params(public_app)
    assert_error_redirect(authorize(signed_in.client, params), "invalid_request", params["state"])


def test_public_client_with_s256_gets_a_code(flow, public_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(public_app, authorize_params(public_app, challenge))
    assert flow.token(public_app, code, params, code_verifier=verifier).status_code == 200


@pytest.mark.parametrize("app_fixture", ["confidential_app", "public_app", "third_party_app"])
@pytest.mark.parametrize("signed_in_first", [False, True])
def test_plain_code_challenge_method_is_refused(request, flow, user, app_fixture, signed_in_first):
    app = request.getfixturevalue(app_fixture)
    if signed_in_first:
        first_party = request.getfixturevalue("confidential_app")
        flow.code_for(first_party)
    verifier, _challenge = pkce_pair()
    params = authorize_params(app, code_challenge=verifier, code_challenge_method="plain")
    assert_error_redirect(flow.authorize(params), "invalid_request", params["state"])


@pytest.mark.parametrize("app_fixture", ["confidential_app", "public_app"])
def test_code_challenge_without_method_means_plain_and_is_refused(request, client, app_fixture):
    app = request.getfixturevalue(app_fixture)
    verifier, _challenge = pkce_pair()
    params = authorize_params(app, code_challenge=verifier)
    assert_error_redirect(authorize(client, params), "invalid_request", params["state"])


@pytest.mark.parametrize("method", ["s256", "S512", "none"])
def test_unknown_code_challenge_method_is_refused(client, confidential_app, method):
    _verifier, challenge = pkce_pair()
    params = authorize_params(confidential_app, code_challenge=challenge, code_challenge_method=method)
    assert_error_redirect(authorize(client, params), "invalid_request", params["state"])


@pytest.mark.parametrize("response_type", ["token", "id_token", "id_token token", "code token", "code id_token",
                                           "code id_token token"])
@pytest.mark.parametrize("signed_in_first", [False, True])
def test_implicit_and_hybrid_response_types_are_refused(flow, confidential_app, user, response_type, signed_in_first):
    if signed_in_first:
        flow.code_for(confidential_app)
    params = authorize_params(confidential_app, response_type=response_type)
    response = flow.authorize(params)
    query = assert_error_redirect(response, "unsupported_response_type", params["state"])
    assert "access_token" not in query and "id_token" not in query
    assert "#" not in response["Location"]


def test_missing_response_type_never_issues_a_code(signed_in, confidential_app):
    params = authorize_params(confidential_app)
    del params["response_type"]
    response = authorize(signed_in.client, params)
    assert "code" not in query_of(response.get("Location", ""))


# -- next on the sign-in page: no open redirect ------------------------------------------------------------------------
OPEN_REDIRECTS = [
    "https://evil.example/",
    "http://evil.example/",
    "//evil.example",
    "//evil.example/path",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https:evil.example",
    "http:/\\evil.example",
    " //evil.example",
    "https://testserver@evil.example/",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "javascript://evil.example/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
]


@pytest.mark.parametrize("next_url", OPEN_REDIRECTS)
def test_next_on_sign_in_page_is_not_an_open_redirect(client, user, next_url):
    start = client.get("/sign-in/?" + urlencode({"next": next_url}))
    assert start.status_code in (302, 303)
    sign_in_url = start["Location"]
    assert SIGN_IN_RE.match(sign_in_url), sign_in_url
    response = sign_in_on_page(client, sign_in_url)
    assert response.status_code == 303
    location = response["Location"]
    parts = urlsplit(location)
    assert "evil.example" not in location
    assert parts.scheme in ("", "http", "https"), location
    assert parts.netloc in ("", "testserver"), location
    assert not location.lower().lstrip().startswith(("javascript:", "data:"))
    assert not location.startswith(("//", "/\\", "\\"))


def test_next_on_sign_in_page_keeps_same_site_path(client, user):
    start = client.get("/sign-in/?" + urlencode({"next": "/admin/?tab=1"}))
    response = sign_in_on_page(client, start["Location"])
    assert response.status_code == 303
    assert response["Location"] == "/admin/?tab=1"


@pytest.mark.parametrize("registered", ["http://rp.example.com/callback", "http://10.0.0.5/callback"])
def test_plain_http_redirect_uris_are_refused_unless_loopback(flow, user, registered):
    from tests.helpers import make_application

    app = make_application(redirect_uri=registered)
    response = flow.authorize({**authorize_params(app), "redirect_uri": registered})
    assert response.status_code == 400
    assert not response.has_header("Location")


def test_an_out_of_range_loopback_port_is_an_error_page(flow, user):
    from tests.helpers import make_application

    app = make_application(redirect_uri="http://127.0.0.1/callback")
    response = flow.authorize({**authorize_params(app), "redirect_uri": "http://127.0.0.1:99999/callback"})
    assert response.status_code == 400
    assert not response.has_header("Location")


# -- bounded requests (nothing huge is stored or sent back) -------------------------------------------------------
JUNK = "J" * 2_000_000
A_FEW_KB = 8192


def largest_stored_row() -> int:
    """The largest interaction state or session row, in characters."""
    from django.contrib.sessions.models import Session

    from experience.models import Interaction

    sizes = [len(json.dumps(interaction.state)) for interaction in Interaction.objects.all()]
    sizes += [len(session.session_data) for session in Session.objects.all()]
    return max(sizes, default=0)


def send_authorization(client: Client, method: str, params: dict[str, str]) -> Any:
    if method == "GET":
        return client.get("/oauth/authorize?" + urlencode(params))
    return client.post("/oauth/authorize", params)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_two_megabyte_junk_parameter_is_neither_stored_nor_sent_back(client, confidential_app, user, method):
    params = authorize_params(confidential_app, junk=JUNK)
    sign_in_url = assert_sign_in_redirect(send_authorization(client, method, params))
    assert largest_stored_row() < A_FEW_KB
    signed = sign_in_on_page(client, sign_in_url)
    assert signed.status_code == 303
    assert len(signed["Location"]) < A_FEW_KB
    assert "junk" not in signed["Location"]
    assert largest_stored_row() < A_FEW_KB
    query = assert_client_redirect(client.get(signed["Location"]))
    assert query.get("code") and query["state"] == params["state"]
    assert len(client.get(signed["Location"]).get("Location", "")) < A_FEW_KB


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_two_megabyte_junk_parameter_is_dropped_for_a_signed_in_user(signed_in, confidential_app, method):
    params = authorize_params(confidential_app, junk=JUNK)
    response = send_authorization(signed_in.client, method, params)
    query = assert_client_redirect(response)
    assert query.get("code") and query["state"] == params["state"]
    assert len(response["Location"]) < A_FEW_KB
    assert largest_stored_row() < A_FEW_KB


def test_unknown_parameters_are_dropped_silently(flow, confidential_app, user):
    from experience.models import Interaction

    params = authorize_params(confidential_app, unknown_parameter="whatever", claims='{"userinfo": {}}',
                              request="eyJhbGciOiJub25lIn0.e30.", csrfmiddlewaretoken="x")
    sign_in_url = assert_sign_in_redirect(authorize(flow.client, params))
    stored = Interaction.objects.get().state["authorize"]
    for dropped in ("unknown_parameter", "claims", "request", "csrfmiddlewaretoken"):
        assert dropped + "=" not in stored, stored
    signed = sign_in_on_page(flow.client, sign_in_url)
    assert "unknown_parameter" not in signed["Location"]
    query = assert_client_redirect(flow.client.get(signed["Location"]))
    claims = id_token_claims(flow, confidential_app, query["code"], params)
    assert claims["nonce"] == params["nonce"]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("name, length", [("state", 2049), ("redirect_uri", 2001), ("client_id", 256)])
def test_an_over_long_value_that_decides_the_answer_gets_an_error_page(client, confidential_app, user, method,
                                                                       name, length):
    """A state cut short would not be the client's, and a redirect URI or client that long is none of ours."""
    from experience.models import Interaction

    value = {"state": "s" * length, "redirect_uri": REDIRECT_URI + "?" + "r" * length,
             "client_id": confidential_app.client_id + "c" * length}[name]
    response = send_authorization(client, method, authorize_params(confidential_app, **{name: value}))
    assert_error_page(response)
    assert not Interaction.objects.exists()
    assert largest_stored_row() < A_FEW_KB


def test_the_longest_state_allowed_is_echoed_whole(flow, confidential_app, user):
    state = "s" * 2048
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, state=state))
    assert code


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("name, value", [
    ("scope", "openid " + "x" * 2000),
    ("id_token_hint", "h" * 4097),
    ("code_challenge", "c" * 129),
    ("prompt", "login " * 20),
    ("response_type", "code " * 30),
])
def test_an_over_long_protocol_parameter_is_invalid_request_to_the_client(client, confidential_app, user, method,
                                                                          name, value):
    from experience.models import Interaction

    params = authorize_params(confidential_app, **{name: value})
    response = send_authorization(client, method, params)
    query = assert_error_redirect(response, "invalid_request", params["state"])
    assert "too long" in query["error_description"]
    assert len(response["Location"]) < A_FEW_KB
    assert not Interaction.objects.exists()


def test_a_request_too_large_in_total_is_invalid_request_to_the_client(client, confidential_app, user):
    """Each value within its limit, all of them together over 6144 characters."""
    from experience.models import Interaction

    params = authorize_params(confidential_app, state="s" * 2000, id_token_hint="h" * 4000,
                              acr_values="a" * 500)
    response = client.post("/oauth/authorize", params)
    query = assert_error_redirect(response, "invalid_request", params["state"])
    assert "too large" in query["error_description"]
    assert not Interaction.objects.exists()


def test_too_many_resource_values_are_invalid_request(client, confidential_app, user):
    params = list(authorize_params(confidential_app).items())
    params += [("resource", f"https://api{i}.example.com/") for i in range(11)]
    response = client.get("/oauth/authorize?" + urlencode(params))
    assert_error_redirect(response, "invalid_request")


@pytest.mark.parametrize("name, value", [
    ("login_hint", "alice@example.com" + "x" * 300),
    ("ui_locales", "en " * 100),
    ("acr_values", "urn:x " * 100),
    ("display", "page" * 10),
])
def test_an_over_long_hint_is_ignored_and_the_flow_goes_on(flow, confidential_app, user, name, value):
    from experience.models import Interaction

    params = authorize_params(confidential_app, **{name: value})
    sign_in_url = assert_sign_in_redirect(authorize(flow.client, params))
    from django.http import QueryDict

    assert name not in QueryDict(Interaction.objects.get().state["authorize"])
    page = flow.client.get(sign_in_url)
    assert 'value="alice@example.com' not in identifier_input(page.content.decode())
    code, _ = flow.code_for(confidential_app, params)
    assert code


def test_a_post_cannot_smuggle_parameters_in_its_query_string(signed_in, confidential_app):
    """The body of a POST is the request: a redirect_uri in the URL's query is not looked at."""
    params = authorize_params(confidential_app)
    response = signed_in.client.post("/oauth/authorize?" + urlencode({"redirect_uri": "https://evil.example.com/"}),
                                     params)
    assert assert_client_redirect(response).get("code")


# -- HEAD has no side effects ------------------------------------------------------------------------------------------
def test_head_issues_no_code_for_a_signed_in_user(signed_in, confidential_app):
    from oauth2_provider.models import get_grant_model

    from identity.models import AuthorizationRecord

    grants, records = get_grant_model().objects.count(), AuthorizationRecord.objects.count()
    response = signed_in.client.head("/oauth/authorize?" + urlencode(authorize_params(confidential_app)))
    assert response.status_code == 405
    assert "HEAD" not in response["Allow"] and "GET" in response["Allow"]
    assert not response.has_header("Location")
    assert get_grant_model().objects.count() == grants
    assert AuthorizationRecord.objects.count() == records


def test_head_starts_no_sign_in_and_no_session(client, confidential_app, db):
    from django.contrib.sessions.models import Session

    from experience.models import Interaction

    response = client.head("/oauth/authorize?" + urlencode(authorize_params(confidential_app)))
    assert response.status_code == 405
    assert not Interaction.objects.exists()
    assert not Session.objects.exists()
    assert "sessionid" not in response.cookies


# -- the pages' content security policy --------------------------------------------------------------------------------
def csp(response: Any) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: " ".join(part.split()[1:]) for part in policy.split(";") if part.strip()}


def assert_strict_policy(response: Any) -> dict[str, str]:
    """Scripts none, everything else from this site, the page's inline styles by their hash."""
    import hashlib

    policy = csp(response)
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'none'"
    assert policy["img-src"] == "'self' data:"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    styles = re.findall(r"<style[^>]*>(.*?)</style", response.content.decode(), re.S)
    assert styles, "the pages carry their CSS inline"
    hashes = {"'sha256-" + base64.b64encode(hashlib.sha256(style.encode()).digest()).decode() + "'" for style in styles}
    assert set(policy["style-src"].split()) == {"'self'", *hashes}
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    for wildcard in ("*", "http:", "https:"):
        assert wildcard not in policy["form-action"].split(), policy["form-action"]
    return policy


def test_the_sign_in_page_may_only_send_its_form_here_and_on_to_the_client(client, confidential_app, user):
    page = client.get(assert_sign_in_redirect(authorize(client, authorize_params(confidential_app))))
    assert assert_strict_policy(page)["form-action"] == "'self' https://rp.example.com"


def test_a_sign_in_page_without_an_application_may_only_send_its_form_here(client, user):
    page = client.get(client.get("/sign-in/?next=/account/connected-apps/")["Location"])
    assert assert_strict_policy(page)["form-action"] == "'self'"


def test_the_consent_page_may_send_its_answer_on_to_the_client(client, third_party_app, user):
    sign_in_url = assert_sign_in_redirect(authorize(client, authorize_params(third_party_app)))
    page = sign_in_and_follow(client, sign_in_url)
    assert b'name="decision"' in page.content
    assert assert_strict_policy(page)["form-action"] == "'self' https://rp.example.com"


def test_a_loopback_client_on_another_port_is_allowed_on_that_port(client, user, db):
    app = make_application(redirect_uri="http://127.0.0.1/callback", first_party=False)
    params = {**authorize_params(app), "redirect_uri": "http://127.0.0.1:53412/callback"}
    page = sign_in_and_follow(client, assert_sign_in_redirect(authorize(client, params)))
    assert b'name="decision"' in page.content
    assert assert_strict_policy(page)["form-action"] == "'self' http://127.0.0.1 http://127.0.0.1:53412"


def test_the_error_page_allows_no_form_elsewhere(client, confidential_app):
    page = authorize(client, authorize_params(confidential_app, redirect_uri="https://evil.example.com/cb"))
    assert_error_page(page)
    assert assert_strict_policy(page)["form-action"] == "'self'"


@pytest.mark.parametrize("uri, source", [
    ("https://RP.example.com/cb?x=1", "https://rp.example.com"),
    ("https://rp.example.com:8443/cb", "https://rp.example.com:8443"),
    ("http://127.0.0.1:8080/cb", "http://127.0.0.1:8080"),
    ("http://[::1]:8080/cb", "http:"),  # a CSP source cannot name an IPv6 literal
    ("com.example.app:/oauth/callback", "com.example.app:"),
    ("https://rp.example.com;script-src *", None),
    ("https://rp.example.com:99999/cb", None),
    ("javascript:alert(1)", None),
    ("data:text/html,x", None),
    ("no scheme", None),
])
def test_a_redirect_uri_becomes_the_csp_source_of_its_origin(uri, source):
    from identity.security import source_of

    assert source_of(uri) == source
