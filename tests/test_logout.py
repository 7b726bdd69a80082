"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) as the relying party and the user see it."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from identity import keys
from tests.helpers import (
    REDIRECT_URI,
    Flow,
    authorize_params,
    b64url_decode,
    b64url_encode,
    issue_tokens,
    make_application,
    query_of,
    userinfo,
)

BYE = "https://rp.example.com/bye"
OTHER_BYE = "https://other.example.com/bye"


# -- helpers ---------------------------------------------------------------------------------------
def logout(client: Client, method: str = "get", **params: str) -> Any:
    if method == "get":
        return client.get("/oauth/logout?" + urlencode(params))
    return client.post("/oauth/logout", params)


def silent_authorize(client: Client, app) -> Any:
    """prompt=none: the RP asks whether the browser is still signed in."""
    params = authorize_params(app, prompt="none")
    return client.get("/oauth/authorize?" + urlencode(params)), params


def assert_signed_in(client: Client, app) -> None:
    response, params = silent_authorize(client, app)
    assert response.status_code == 302, response.content[:300]
    query = query_of(response["Location"])
    assert "code" in query, query
    assert query["state"] == params["state"]


def assert_signed_out(client: Client, app) -> None:
    response, params = silent_authorize(client, app)
    assert response.status_code == 302, response.content[:300]
    assert response["Location"].startswith(REDIRECT_URI + "?")
    query = query_of(response["Location"])
    assert query.get("error") == "login_required", query
    assert query["state"] == params["state"]
    assert "code" not in query


def assert_no_redirect(response: Any) -> None:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert not response.has_header("Location")
    assert response["X-Frame-Options"] == "DENY"


def signed_in(flow: Flow, app, **extra: str) -> dict[str, Any]:
    body, _params = issue_tokens(flow, app, **extra)
    return body


def csrf_and_key(page: Any) -> tuple[str, str]:
    html = page.content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    key = re.search(r'name="key" value="([^"]+)"', html)
    assert csrf and key, html
    return csrf.group(1), key.group(1)


def strict_browser(client: Client) -> Client:
    """The same browser (cookies), but with CSRF checks enforced like a real one."""
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies
    return strict


@pytest.fixture
def other_app(db):
    return make_application(name="Other RP", redirect_uri="https://other.example.com/callback", post_logout=OTHER_BYE)


# -- the happy path ----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["get", "post"])
def test_valid_hint_and_registered_uri_signs_out_and_redirects_with_state(flow, confidential_app, user, method):
    body = signed_in(flow, confidential_app)
    response = logout(flow.client, method, id_token_hint=body["id_token"], post_logout_redirect_uri=BYE,
                      state="st&ate=1")
    assert response.status_code in (302, 303)
    assert response["Location"] == BYE + "?" + urlencode({"state": "st&ate=1"})
    assert response["X-Frame-Options"] == "DENY"
    assert_signed_out(flow.client, confidential_app)


def test_valid_hint_with_matching_client_id(flow, confidential_app, user):
    body = signed_in(flow, confidential_app)
    response = logout(flow.client, id_token_hint=body["id_token"], client_id=confidential_app.client_id,
                      post_logout_redirect_uri=BYE)
    assert response.status_code == 302
    assert response["Location"] == BYE
    assert_signed_out(flow.client, confidential_app)


def test_valid_hint_without_redirect_shows_signed_out_page(flow, confidential_app, user):
    body = signed_in(flow, confidential_app)
    response = logout(flow.client, id_token_hint=body["id_token"])
    assert response.status_code == 200
    assert not response.has_header("Location")
    assert b"You are signed out" in response.content
    assert response["X-Frame-Options"] == "DENY"
    assert_signed_out(flow.client, confidential_app)


def test_hint_signed_with_a_rotated_out_key_still_works(flow, confidential_app, user):
    body = signed_in(flow, confidential_app)
    keys.rotate()
    response = logout(flow.client, id_token_hint=body["id_token"], post_logout_redirect_uri=BYE, state="s")
    assert response.status_code == 302
    assert response["Location"] == BYE + "?state=s"
    assert_signed_out(flow.client, confidential_app)


# -- redirect URIs that must never be followed -------------------------------------------------------
BAD_POST_LOGOUT_URIS = [
    "https://evil.example.com/bye",
    "https://rp.example.com/bye/",
    "https://rp.example.com/bye/extra",
    "https://rp.example.com/by",
    "https://rp.example.com/BYE",
    "https://rp.example.com/bye?next=https://evil.example.com",
    "https://rp.example.com/bye?",
    "https://rp.example.com/bye#frag",
    "https://rp.example.com/bye;evil",
    "https://rp.example.com:8443/bye",
    "http://rp.example.com/bye",
    "https://rp.example.com.evil.com/bye",
    "https://evil.com@rp.example.com/bye",
    "https://rp.example.com@evil.com/bye",
    "//evil.example.com/bye",
    "/bye",
    "javascript:alert(1)",
    "https://rp.example.com/bye%00",
    " https://rp.example.com/bye",
    "https://rp.example.com/by\te",
    "https://rp.example.com/bye\t",
    "https://rp.example.com/bye\n",
    "https://rp.example.com/b\r\nye",
    OTHER_BYE,  # registered, but for another application
]


@pytest.mark.parametrize("uri", BAD_POST_LOGOUT_URIS)
def test_unregistered_or_modified_post_logout_uri_never_redirects(flow, confidential_app, other_app, user, uri):
    body = signed_in(flow, confidential_app)
    flow.client.raise_request_exception = False  # a server error must show as a status, not raise
    response = logout(flow.client, id_token_hint=body["id_token"], post_logout_redirect_uri=uri, state="x")
    assert_no_redirect(response)


@pytest.mark.parametrize("uri", [BAD_POST_LOGOUT_URIS[0], BAD_POST_LOGOUT_URIS[2], OTHER_BYE])
def test_unregistered_uri_with_client_id_and_no_hint_never_redirects(flow, confidential_app, other_app, user, uri):
    signed_in(flow, confidential_app)
    response = logout(flow.client, client_id=confidential_app.client_id, post_logout_redirect_uri=uri)
    assert_no_redirect(response)


def test_post_logout_uri_without_any_client_never_redirects(client, confidential_app, db):
    assert_no_redirect(logout(client, post_logout_redirect_uri=BYE, state="x"))


def test_unknown_client_id_never_redirects(client, confidential_app, db):
    assert_no_redirect(logout(client, client_id="no-such-client", post_logout_redirect_uri=BYE))


# -- hints that must never be trusted ----------------------------------------------------------------
def test_foreign_hint_client_id_mismatch_never_redirects(flow, confidential_app, other_app, user):
    body = signed_in(flow, confidential_app)
    response = logout(flow.client, id_token_hint=body["id_token"], client_id=other_app.client_id,
                      post_logout_redirect_uri=OTHER_BYE, state="x")
    assert_no_redirect(response)
    assert_signed_in(flow.client, confidential_app)


def test_foreign_hint_client_id_mismatch_without_redirect_is_refused(flow, confidential_app, other_app, user):
    body = signed_in(flow, confidential_app)
    response = logout(flow.client, id_token_hint=body["id_token"], client_id=other_app.client_id)
    assert_no_redirect(response)
    assert_signed_in(flow.client, confidential_app)


def test_hint_of_one_client_cannot_open_another_clients_redirect(flow, confidential_app, other_app, user):
    body = signed_in(flow, confidential_app)
    response = logout(flow.client, id_token_hint=body["id_token"], post_logout_redirect_uri=OTHER_BYE)
    assert_no_redirect(response)


def _tampered_hints(id_token: str) -> dict[str, str]:
    header, payload, signature = id_token.split(".")
    claims = json.loads(b64url_decode(payload))
    raw_signature = bytearray(b64url_decode(signature))
    raw_signature[len(raw_signature) // 2] ^= 0x01
    other_sub = b64url_encode(json.dumps({**claims, "sub": "999999"}).encode())
    other_aud = b64url_encode(json.dumps({**claims, "aud": "someone-else"}).encode())
    none_header = b64url_encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    hs_header = b64url_encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": json.loads(b64url_decode(header))["kid"]}).encode())
    unknown_kid = b64url_encode(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "not-a-key"}).encode())
    return {
        "signature_byte_flipped": f"{header}.{payload}.{b64url_encode(bytes(raw_signature))}",
        "signature_truncated": f"{header}.{payload}.{signature[:-8]}",
        "signature_removed": f"{header}.{payload}.",
        "payload_sub_changed": f"{header}.{other_sub}.{signature}",
        "payload_aud_changed": f"{header}.{other_aud}.{signature}",
        "alg_none": f"{none_header}.{payload}.",
        "alg_hs256": f"{hs_header}.{payload}.{signature}",
        "unknown_kid": f"{unknown_kid}.{payload}.{signature}",
        "two_parts": f"{header}.{payload}",
        "garbage": "not-a-jwt",
    }


TAMPER_KINDS = ["signature_byte_flipped", "signature_truncated", "signature_removed", "payload_sub_changed",
                "payload_aud_changed", "alg_none", "alg_hs256", "unknown_kid", "two_parts", "garbage"]


@pytest.mark.parametrize("kind", TAMPER_KINDS)
def test_tampered_hint_never_redirects(flow, confidential_app, user, kind):
    body = signed_in(flow, confidential_app)
    hint = _tampered_hints(body["id_token"])[kind]
    response = logout(flow.client, id_token_hint=hint, post_logout_redirect_uri=BYE, state="x")
    assert_no_redirect(response)
    assert_signed_in(flow.client, confidential_app)


def test_hint_from_another_issuer_never_redirects(flow, confidential_app, user, settings):
    body = signed_in(flow, confidential_app)  # iss http://testserver
    settings.PORTCULLIS_ISSUER = "https://id.example.com"
    response = logout(flow.client, id_token_hint=body["id_token"], post_logout_redirect_uri=BYE)
    assert_no_redirect(response)


# -- asking the user ---------------------------------------------------------------------------------
def test_without_hint_while_signed_in_asks_first(flow, confidential_app, user):
    signed_in(flow, confidential_app)
    page = logout(flow.client, client_id=confidential_app.client_id, post_logout_redirect_uri=BYE, state="s1")
    assert page.status_code == 200
    assert not page.has_header("Location")
    assert b"Sign out?" in page.content
    assert page["X-Frame-Options"] == "DENY"
    # Nothing happened yet.
    assert_signed_in(flow.client, confidential_app)


def test_confirming_signs_out_and_redirects(flow, confidential_app, user):
    signed_in(flow, confidential_app)
    browser = strict_browser(flow.client)
    page = logout(browser, client_id=confidential_app.client_id, post_logout_redirect_uri=BYE, state="s1")
    assert page.status_code == 200
    csrf, key = csrf_and_key(page)
    response = browser.post("/oauth/logout", {"csrfmiddlewaretoken": csrf, "key": key, "confirm": "yes"})
    assert response.status_code == 303
    assert response["Location"] == BYE + "?state=s1"
    assert response["X-Frame-Options"] == "DENY"
    assert_signed_out(browser, confidential_app)


def test_confirming_without_redirect_shows_signed_out_page(flow, confidential_app, user):
    signed_in(flow, confidential_app)
    browser = strict_browser(flow.client)
    page = logout(browser)
    csrf, key = csrf_and_key(page)
    response = browser.post("/oauth/logout", {"csrfmiddlewaretoken": csrf, "key": key, "confirm": "yes"})
    assert response.status_code == 200
    assert b"You are signed out" in response.content
    assert response["X-Frame-Options"] == "DENY"
    assert_signed_out(browser, confidential_app)


def test_confirmation_needs_the_csrf_token(flow, confidential_app, user):
    signed_in(flow, confidential_app)
    browser = strict_browser(flow.client)
    page = logout(browser)
    _csrf, key = csrf_and_key(page)
    response = browser.post("/oauth/logout", {"key": key, "confirm": "yes"})
    assert response.status_code == 403
    assert_signed_in(browser, confidential_app)


def test_declining_keeps_the_user_signed_in(flow, confidential_app, user):
    signed_in(flow, confidential_app)
    browser = strict_browser(flow.client)
    page = logout(browser, client_id=confidential_app.client_id, post_logout_redirect_uri=BYE)
    csrf, key = csrf_and_key(page)
    response = browser.post("/oauth/logout", {"csrfmiddlewaretoken": csrf, "key": key, "confirm": "no"})
    assert response.status_code == 200
    assert not response.has_header("Location")
    assert b"You are still signed in" in response.content
    assert response["X-Frame-Options"] == "DENY"
    assert_signed_in(browser, confidential_app)


def test_wrong_key_does_not_sign_out_and_does_not_say_so(flow, confidential_app, user):
    signed_in(flow, confidential_app)
    browser = strict_browser(flow.client)
    page = logout(browser)
    csrf, _key = csrf_and_key(page)
    response = browser.post("/oauth/logout", {"csrfmiddlewaretoken": csrf, "key": "forged", "confirm": "yes"})
    assert response.status_code < 500
    assert not response.has_header("Location")
    assert_signed_in(browser, confidential_app)
    # The user must not be told they are signed out while they are not.
    assert b"You are signed out" not in response.content


def test_hint_for_another_user_asks_first(flow, confidential_app, user, django_user_model):
    """A valid hint whose subject is not the signed-in user is not a valid hint for this session."""
    body = signed_in(flow, confidential_app)
    django_user_model.objects.create_user("bob", "bob@example.com", "another long password 42")
    bob_browser = Flow(Client())
    bob_code, bob_params = bob_browser.code_for(confidential_app, identifier="bob", password="another long password 42")
    bob_tokens = bob_browser.token(confidential_app, bob_code, bob_params).json()
    # Alice's browser receives a logout request carrying Bob's ID token.
    response = logout(flow.client, id_token_hint=bob_tokens["id_token"], post_logout_redirect_uri=BYE)
    assert response.status_code == 200
    assert not response.has_header("Location")
    assert b"Sign out?" in response.content
    assert_signed_in(flow.client, confidential_app)
    assert userinfo(flow.client, body["access_token"]).status_code == 200


def test_without_hint_when_not_signed_in_redirects_to_registered_uri(client, confidential_app, db):
    response = logout(client, client_id=confidential_app.client_id, post_logout_redirect_uri=BYE, state="z")
    assert response.status_code == 302
    assert response["Location"] == BYE + "?state=z"
    assert response["X-Frame-Options"] == "DENY"


def test_signed_out_page_when_nobody_is_signed_in(client, db):
    response = logout(client)
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"


# -- what logout does to tokens and later requests ---------------------------------------------------
def test_after_logout_prompt_none_gives_login_required(flow, confidential_app, user):
    body = signed_in(flow, confidential_app)
    assert_signed_in(flow.client, confidential_app)
    logout(flow.client, id_token_hint=body["id_token"], post_logout_redirect_uri=BYE)
    assert_signed_out(flow.client, confidential_app)


def test_logout_revokes_tokens_of_that_browser_session(flow, confidential_app, public_app, user):
    first = signed_in(flow, confidential_app)
    second = signed_in(flow, public_app)
    for body in (first, second):
        assert userinfo(flow.client, body["access_token"]).status_code == 200

    other_browser = Flow(Client())
    elsewhere = signed_in(other_browser, confidential_app)

    response = logout(flow.client, id_token_hint=first["id_token"], post_logout_redirect_uri=BYE)
    assert response.status_code == 302

    api = Client()
    for body in (first, second):
        assert userinfo(api, body["access_token"]).status_code == 401
    refreshed = api.post("/oauth/token", {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                                          "client_id": confidential_app.client_id,
                                          "client_secret": confidential_app.client_secret})
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    # Another browser's sign-in is a different session: its tokens keep working.
    assert userinfo(api, elsewhere["access_token"]).status_code == 200


def test_confirmed_logout_revokes_tokens_too(flow, confidential_app, user):
    body = signed_in(flow, confidential_app)
    browser = strict_browser(flow.client)
    page = logout(browser)
    csrf, key = csrf_and_key(page)
    browser.post("/oauth/logout", {"csrfmiddlewaretoken": csrf, "key": key, "confirm": "yes"})
    assert userinfo(Client(), body["access_token"]).status_code == 401


def test_rejected_logout_leaves_tokens_working(flow, confidential_app, user):
    body = signed_in(flow, confidential_app)
    logout(flow.client, id_token_hint=body["id_token"], post_logout_redirect_uri="https://evil.example.com/")
    assert userinfo(Client(), body["access_token"]).status_code == 200


# -- logout CSRF: a session opened elsewhere, a cross-site POST, a forged answer ---------------------
def admin_session(client: Client, user) -> Client:
    """A Django session opened outside the sign-in experience (a host project's own login view;
    the admin's login page now goes through the hosted sign-in)."""
    user.is_staff = True
    user.save()
    client.force_login(user)
    assert client.get("/admin/").status_code == 200
    return client


@pytest.mark.parametrize("extra", [{}, {"client_id": "$CID", "post_logout_redirect_uri": BYE}])
def test_a_hintless_logout_asks_before_ending_an_admin_session(client, confidential_app, user, extra):
    """A cross-site link to /oauth/logout must not sign out whoever is signed in without asking."""
    admin_session(client, user)
    params = {key: value.replace("$CID", confidential_app.client_id) for key, value in extra.items()}
    page = logout(client, **params)
    assert page.status_code == 200
    assert b"Sign out?" in page.content
    assert not page.has_header("Location")
    assert client.get("/admin/").status_code == 200  # still signed in


def test_confirming_ends_an_admin_session_too(client, confidential_app, user):
    browser = strict_browser(admin_session(client, user))
    csrf, key = csrf_and_key(logout(browser))
    response = browser.post("/oauth/logout", {"csrfmiddlewaretoken": csrf, "key": key, "confirm": "yes"})
    assert b"You are signed out" in response.content
    assert browser.get("/admin/").status_code == 302  # to the admin's login page


def test_a_relying_party_may_post_its_logout_request_cross_site(flow, confidential_app, user):
    body = signed_in(flow, confidential_app)
    browser = strict_browser(flow.client)
    response = browser.post("/oauth/logout", {"id_token_hint": body["id_token"], "post_logout_redirect_uri": BYE,
                                              "state": "s1"}, HTTP_ORIGIN="https://rp.example.com")
    assert response.status_code == 303
    assert response["Location"] == BYE + "?state=s1"
    assert_signed_out(browser, confidential_app)


def without_cookies() -> Client:
    """The same browser posting from another site: SameSite=Lax keeps the session cookie back."""
    return Client(enforce_csrf_checks=True)


def test_a_cross_site_post_without_the_session_cookie_continues_as_a_get(flow, confidential_app, user):
    body = signed_in(flow, confidential_app)
    carried = without_cookies().post("/oauth/logout", {"id_token_hint": body["id_token"], "state": "s2",
                                                       "post_logout_redirect_uri": BYE},
                                     HTTP_ORIGIN="https://rp.example.com")
    assert carried.status_code == 303
    location = carried["Location"]
    assert location.startswith("/oauth/logout?logout=")
    assert body["id_token"] not in location and body["id_token"].split(".")[1] not in location
    assert_signed_in(flow.client, confidential_app)  # nothing happened yet
    response = flow.client.get(location)  # the browser follows with its cookie
    assert response.status_code == 302
    assert response["Location"] == BYE + "?state=s2"
    assert_signed_out(flow.client, confidential_app)


def test_a_carried_logout_without_a_hint_still_asks(flow, confidential_app, user):
    signed_in(flow, confidential_app)
    carried = without_cookies().post("/oauth/logout", {"client_id": confidential_app.client_id,
                                                       "post_logout_redirect_uri": BYE, "state": "s3"})
    browser = strict_browser(flow.client)
    page = browser.get(carried["Location"])
    assert b"Sign out?" in page.content
    assert_signed_in(browser, confidential_app)
    csrf, key = csrf_and_key(page)
    response = browser.post(carried["Location"], {"csrfmiddlewaretoken": csrf, "key": key, "confirm": "yes"})
    assert response.status_code == 303 and response["Location"] == BYE + "?state=s3"
    assert_signed_out(browser, confidential_app)


def test_a_cross_site_post_with_a_bad_request_is_refused_at_once(client, confidential_app, db):
    response = without_cookies().post("/oauth/logout", {"client_id": confidential_app.client_id,
                                                        "post_logout_redirect_uri": "https://evil.example.com/"})
    assert_no_redirect(response)


@pytest.mark.parametrize("tamper", ["flip", "expired", "garbage"])
def test_a_tampered_or_stale_carried_logout_is_refused(flow, confidential_app, user, monkeypatch, tamper):
    import time

    from django.core import signing

    body = signed_in(flow, confidential_app)
    data = {"id_token_hint": body["id_token"], "post_logout_redirect_uri": BYE}
    if tamper == "expired":
        with monkeypatch.context() as patch:
            eleven_minutes_ago = signing.b62_encode(int(time.time()) - 601)
            patch.setattr(signing.TimestampSigner, "timestamp", lambda self: eleven_minutes_ago)
            location = without_cookies().post("/oauth/logout", data)["Location"]
    else:
        location = without_cookies().post("/oauth/logout", data)["Location"]
        value = location.split("logout=", 1)[1]
        location = "/oauth/logout?logout=" + (value[:-3] + ("AAA" if value[-3:] != "AAA" else "BBB")
                                              if tamper == "flip" else "garbage")
    response = flow.client.get(location)
    assert_no_redirect(response)
    assert_signed_in(flow.client, confidential_app)


@pytest.mark.parametrize("forgery", [{}, {"HTTP_ORIGIN": "https://evil.example.com"}])
def test_a_forged_cross_site_confirmation_signs_nobody_out(flow, confidential_app, user, forgery):
    """The attacker knows the form (even the key, say): without this site's CSRF token, or from
    another origin, the answer is refused."""
    signed_in(flow, confidential_app)
    browser = strict_browser(flow.client)
    csrf, key = csrf_and_key(logout(browser, client_id=confidential_app.client_id, post_logout_redirect_uri=BYE))
    fields = {"key": key, "confirm": "yes"}
    if forgery:
        fields["csrfmiddlewaretoken"] = csrf
    response = browser.post("/oauth/logout", fields, **forgery)
    assert response.status_code == 403
    assert not response.has_header("Location")
    assert_signed_in(browser, confidential_app)


def test_an_over_long_logout_request_is_refused_and_not_stored(flow, confidential_app, user):
    from django.contrib.sessions.models import Session

    signed_in(flow, confidential_app)
    response = logout(flow.client, client_id=confidential_app.client_id, post_logout_redirect_uri=BYE,
                      state="s" * 2_000_000)
    assert_no_redirect(response)
    assert max(len(session.session_data) for session in Session.objects.all()) < 8192
    assert_signed_in(flow.client, confidential_app)


def test_head_on_logout_signs_nobody_out(flow, confidential_app, user):
    body = signed_in(flow, confidential_app)
    response = flow.client.head("/oauth/logout?" + urlencode({"id_token_hint": body["id_token"]}))
    assert response.status_code == 405
    assert_signed_in(flow.client, confidential_app)


def test_the_sign_out_question_may_send_its_answer_on_to_the_registered_uri_only(flow, confidential_app, user):
    signed_in(flow, confidential_app)
    page = logout(flow.client, client_id=confidential_app.client_id, post_logout_redirect_uri=BYE)
    policy = page["Content-Security-Policy"]
    assert "form-action 'self' https://rp.example.com;" in policy
    assert "script-src 'none'" in policy and "default-src 'self'" in policy
    bare = logout(flow.client)
    assert "form-action 'self';" in bare["Content-Security-Policy"]


def test_a_stale_sign_out_request_is_explained_in_the_users_language(client, db):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "uk"
    response = client.get("/oauth/logout?logout=garbage")
    assert_no_redirect(response)
    assert "Термін запиту на вихід минув" in response.content.decode()


# -- the last page offers a way on -------------------------------------------------------------------
def test_the_signed_out_page_leads_back_to_the_application(flow, confidential_app, user):
    signed_in(flow, confidential_app)
    browser = strict_browser(flow.client)
    page = logout(browser, client_id=confidential_app.client_id)
    csrf, key = csrf_and_key(page)
    response = browser.post("/oauth/logout?" + urlencode({"client_id": confidential_app.client_id}),
                            {"csrfmiddlewaretoken": csrf, "key": key, "confirm": "yes"})
    html = response.content.decode()
    assert "You are signed out" in html
    assert f'<a class="button" id="back" href="{BYE}">Back to Relying party</a>' in html
    assert '<a href="/sign-in/">Sign in again</a>' in html


def test_declining_also_leads_back_to_the_application(flow, confidential_app, user):
    signed_in(flow, confidential_app)
    browser = strict_browser(flow.client)
    page = logout(browser, client_id=confidential_app.client_id)
    csrf, key = csrf_and_key(page)
    response = browser.post("/oauth/logout", {"csrfmiddlewaretoken": csrf, "key": key, "confirm": "no"})
    html = response.content.decode()
    assert "You are still signed in" in html and f'href="{BYE}"' in html and "Sign in again" not in html


def test_without_a_client_the_signed_out_page_offers_to_sign_in_again(client, db):
    html = logout(client).content.decode()
    assert "You are signed out" in html and '<a href="/sign-in/">Sign in again</a>' in html
    assert 'id="back"' not in html


def test_an_unsafe_registered_uri_is_never_a_link(client, db):
    app = make_application(name="Odd RP", post_logout="javascript:alert(1) https://rp.example.com/ok")
    html = logout(client, client_id=app.client_id).content.decode()
    assert "javascript:" not in html and 'href="https://rp.example.com/ok"' in html


def test_the_logout_pages_honour_ui_locales(flow, confidential_app, user):
    signed_in(flow, confidential_app)
    page = logout(flow.client, client_id=confidential_app.client_id, ui_locales="uk-UA")
    assert "Вийти?" in page.content.decode() and page["Content-Language"] == "uk"
    csrf, key = csrf_and_key(page)
    done = flow.client.post("/oauth/logout?ui_locales=uk", {"csrfmiddlewaretoken": csrf, "key": key, "confirm": "yes"})
    assert "Ви вийшли із системи" in done.content.decode()
