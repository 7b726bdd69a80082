"""Consent for third-party applications: shown, answered, remembered, and not forgeable."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from identity.models import Consent
from tests.helpers import (
    PASSWORD,
    REDIRECT_URI,
    assert_error_page,
    assert_no_framing,
    authorize,
    authorize_params,
    query_of,
    sign_in_on_page,
)

ISSUER = "http://testserver"
SIGN_IN_RE = re.compile(r"^(?:http://testserver)?/sign-in/[^/?#]+/$")
CONSENT_URL = "/oauth/authorize/consent"


# -- helpers (kept local to this file) ----------------------------------------------------------------


def consent_key(response: Any) -> str:
    assert response.status_code == 200, (response.status_code, response.get("Location"), response.content[:300])
    match = re.search(r'name="key" value="([^"]+)"', response.content.decode())
    assert match, response.content.decode()
    return match.group(1)


def is_consent_page(response: Any) -> bool:
    return response.status_code == 200 and b'name="decision"' in response.content


def client_redirect_query(response: Any) -> dict[str, str]:
    assert response.status_code in (302, 303), (response.status_code, response.content[:500])
    assert response["Location"].startswith(REDIRECT_URI + "?"), response["Location"]
    query = query_of(response["Location"])
    assert query.get("iss") == ISSUER, query
    return query


def sign_in_to_consent(client: Client, app: Any, params: dict[str, str] | None = None) -> Any:
    """Start an authorization request without a session, sign in; answers what the endpoint showed next."""
    params = params or authorize_params(app)
    response = authorize(client, params)
    assert response.status_code in (302, 303)
    assert SIGN_IN_RE.match(response["Location"]), response["Location"]
    signed = sign_in_on_page(client, response["Location"])
    assert signed.status_code == 303
    return client.get(signed["Location"])


def answer(client: Client, key: str, decision: str) -> Any:
    response = client.post(CONSENT_URL, {"key": key, "decision": decision})
    return response


def allow(client: Client, key: str) -> dict[str, str]:
    response = answer(client, key, "allow")
    assert response.status_code == 303, (response.status_code, response.content[:300])
    return client_redirect_query(client.get(response["Location"]))


# -- tests -----------------------------------------------------------------------------------------------------
def test_third_party_app_shows_consent_page_with_app_and_scopes(client, third_party_app, user):
    page = sign_in_to_consent(client, third_party_app)
    assert is_consent_page(page)
    html = page.content.decode()
    assert "Third party" in html
    for scope in ("openid", "profile", "email", "phone"):
        assert f"({scope})" in html
    assert_no_framing(page)
    assert not page.has_header("Location")
    assert not Consent.objects.exists()


def test_allow_issues_code_with_iss_and_state_and_is_remembered(flow, third_party_app, user):
    params = authorize_params(third_party_app)
    key = consent_key(sign_in_to_consent(flow.client, third_party_app, params))
    query = allow(flow.client, key)
    assert query.get("code")
    assert query["state"] == params["state"]
    token = flow.token(third_party_app, query["code"], params)
    assert token.status_code == 200, token.content
    assert Consent.objects.filter(user=user, application=third_party_app.application).exists()

    # Next time: no consent page, straight back with a code.
    params = authorize_params(third_party_app)
    again = client_redirect_query(authorize(flow.client, params))
    assert again.get("code")
    assert again["state"] == params["state"]

    # And silently too.
    silent = client_redirect_query(authorize(flow.client, authorize_params(third_party_app, prompt="none")))
    assert silent.get("code")


def test_deny_answers_access_denied_with_iss_and_no_code(client, third_party_app, user):
    params = authorize_params(third_party_app)
    key = consent_key(sign_in_to_consent(client, third_party_app, params))
    response = answer(client, key, "deny")
    assert response.status_code == 303
    query = client_redirect_query(response)
    assert query["error"] == "access_denied"
    assert query["state"] == params["state"]
    assert "code" not in query
    assert_no_framing(response)
    assert not Consent.objects.exists()
    # A denial is not remembered as a grant: the page comes back.
    assert is_consent_page(authorize(client, authorize_params(third_party_app)))


@pytest.mark.parametrize("decision", ["", "ALLOW", "yes", "allow "])
def test_anything_but_allow_is_a_denial(client, third_party_app, user, decision):
    key = consent_key(sign_in_to_consent(client, third_party_app))
    response = answer(client, key, decision)
    query = client_redirect_query(response)
    assert query["error"] == "access_denied"
    assert "code" not in query


def test_prompt_consent_shows_the_page_again(client, third_party_app, user):
    allow(client, consent_key(sign_in_to_consent(client, third_party_app)))
    page = authorize(client, authorize_params(third_party_app, prompt="consent"))
    assert is_consent_page(page)
    query = allow(client, consent_key(page))
    assert query.get("code")


def test_prompt_none_with_prompt_consent_gives_no_code(client, third_party_app, user):
    allow(client, consent_key(sign_in_to_consent(client, third_party_app)))
    response = authorize(client, authorize_params(third_party_app, prompt="none consent"))
    assert "code" not in query_of(response.get("Location", ""))


def test_more_scopes_than_granted_asks_again(client, third_party_app, user):
    allow(client, consent_key(sign_in_to_consent(client, third_party_app,
                                                 authorize_params(third_party_app, scope="openid"))))
    assert client_redirect_query(authorize(client, authorize_params(third_party_app, scope="openid"))).get("code")
    wider = authorize_params(third_party_app, scope="openid email")
    assert is_consent_page(authorize(client, wider))
    params = authorize_params(third_party_app, scope="openid email", prompt="none")
    query = client_redirect_query(authorize(client, params))
    assert query["error"] == "consent_required"
    assert "code" not in query


def test_consent_for_one_app_does_not_cover_another(client, third_party_app, user):
    from tests.helpers import make_application

    allow(client, consent_key(sign_in_to_consent(client, third_party_app)))
    other = make_application(first_party=False, name="Another third party")
    assert is_consent_page(authorize(client, authorize_params(other)))


def test_consent_of_one_user_does_not_cover_another(third_party_app, user, django_user_model):
    from identity.models import Profile

    bob = django_user_model.objects.create_user("bob", "bob@example.com", PASSWORD)
    Profile.objects.create(user=bob)
    alice_client = Client()
    allow(alice_client, consent_key(sign_in_to_consent(alice_client, third_party_app)))
    bob_client = Client()
    response = authorize(bob_client, authorize_params(third_party_app))
    signed = sign_in_on_page(bob_client, response["Location"], identifier="bob")
    assert is_consent_page(bob_client.get(signed["Location"]))


def test_first_party_app_never_shows_consent(flow, confidential_app, user):
    code, _params = flow.code_for(confidential_app)
    assert code
    for _ in range(2):
        query = client_redirect_query(authorize(flow.client, authorize_params(confidential_app)))
        assert query.get("code")
    assert not Consent.objects.exists()


def test_first_party_public_app_never_shows_consent(flow, public_app, user):
    from tests.helpers import pkce_pair

    _verifier, challenge = pkce_pair()
    code, _params = flow.code_for(public_app, authorize_params(public_app, challenge))
    assert code


@pytest.mark.parametrize("key", ["forged", "", "x" * 200])
def test_forged_consent_key_shows_error_page(client, third_party_app, user, key):
    consent_key(sign_in_to_consent(client, third_party_app))  # a real pending request exists
    response = answer(client, key, "allow")
    assert_error_page(response)
    assert_no_framing(response)
    assert not Consent.objects.exists()


def test_consent_post_without_key_shows_error_page(client, third_party_app, user):
    sign_in_to_consent(client, third_party_app)
    response = client.post(CONSENT_URL, {"decision": "allow"})
    assert_error_page(response)


def test_consent_key_is_single_use(client, third_party_app, user):
    key = consent_key(sign_in_to_consent(client, third_party_app))
    allow(client, key)
    assert_error_page(answer(client, key, "allow"))
    assert_error_page(answer(client, key, "deny"))


def test_consent_key_from_another_session_shows_error_page(third_party_app, user, django_user_model):
    from identity.models import Profile

    victim = Client()
    key = consent_key(sign_in_to_consent(victim, third_party_app))
    bob = django_user_model.objects.create_user("bob", "bob@example.com", PASSWORD)
    Profile.objects.create(user=bob)
    attacker = Client()
    response = authorize(attacker, authorize_params(third_party_app))
    sign_in_on_page(attacker, response["Location"], identifier="bob")
    assert_error_page(answer(attacker, key, "allow"))
    assert not Consent.objects.exists()


def test_consent_without_session_shows_error_page(client, third_party_app, db):
    assert_error_page(answer(client, "anything", "allow"))


def test_consent_post_requires_csrf_token(third_party_app, user):
    browser = Client(enforce_csrf_checks=True)
    params = authorize_params(third_party_app)
    response = authorize(browser, params)
    page = browser.get(response["Location"])
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    signed = browser.post(response["Location"], {"identifier": "alice", "password": PASSWORD,
                                                 "authenticator": "password", "csrfmiddlewaretoken": token})
    assert signed.status_code == 303, signed.content[:300]
    key = consent_key(browser.get(signed["Location"]))
    forged = browser.post(CONSENT_URL, {"key": key, "decision": "allow"})
    assert forged.status_code == 403
    assert not forged.has_header("Location")
    assert not Consent.objects.exists()


def test_get_on_consent_endpoint_grants_nothing(client, third_party_app, user):
    key = consent_key(sign_in_to_consent(client, third_party_app))
    response = client.get(CONSENT_URL + "?" + urlencode({"key": key, "decision": "allow"}))
    assert response.status_code == 405
    assert not Consent.objects.exists()


def test_a_resume_marker_only_resumes_its_own_request(client, third_party_app, user):
    """The marker that says "consented" (with prompt=consent) cannot be moved onto other parameters,
    e.g. more scopes, to skip the consent page for them."""
    params = authorize_params(third_party_app, scope="openid", prompt="consent")
    key = consent_key(sign_in_to_consent(client, third_party_app, params))
    resumed = answer(client, key, "allow")
    assert resumed.status_code == 303
    marker = query_of(resumed["Location"])["resume"]
    widened = {**params, "scope": "openid email phone", "resume": marker}
    response = authorize(client, widened)
    assert is_consent_page(response)


def test_a_user_sees_and_revokes_a_remembered_consent(flow, third_party_app, user):
    params = authorize_params(third_party_app)
    key = consent_key(sign_in_to_consent(flow.client, third_party_app, params))
    code = allow(flow.client, key)["code"]
    body = flow.token(third_party_app, code, params).json()
    page = flow.client.get("/account/connected-apps/")
    assert page.status_code == 200 and "Third party" in page.content.decode()
    consent = Consent.objects.get(user=user)
    assert flow.client.post("/account/connected-apps/", {"consent": str(consent.pk)}).status_code == 303
    assert not Consent.objects.exists()
    assert flow.client.get("/oauth/userinfo", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}").status_code == 401
    assert is_consent_page(authorize(flow.client, authorize_params(third_party_app)))


def test_connected_apps_needs_a_sign_in_and_only_shows_ones_own(client, third_party_app, user, django_user_model):
    response = client.get("/account/connected-apps/")
    assert response.status_code == 302 and response["Location"].startswith("/sign-in/?next=")
    other = django_user_model.objects.create_user("mallory", "m@example.com", PASSWORD)
    theirs = Consent.objects.create(user=other, application=third_party_app.application, scopes="openid")
    client.post(sign_in_url_from_start(client), {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert client.post("/account/connected-apps/", {"consent": str(theirs.pk)}).status_code == 303
    assert Consent.objects.filter(pk=theirs.pk).exists()


def sign_in_url_from_start(client: Client) -> str:
    response = client.get("/sign-in/?next=/account/connected-apps/")
    return response["Location"]


def test_the_consent_page_speaks_the_users_language(client, third_party_app, user):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "uk"
    page = sign_in_to_consent(client, third_party_app).content.decode()
    assert "запитує доступ до вашого облікового запису" in page
    assert "Ваша адреса ел. пошти" in page and "Дозволити" in page


# -- the pending consent request: server-side, single-use, bound to the sign-in, expiring --------------
def test_a_consent_key_only_works_in_the_sign_in_that_saw_it(third_party_app, user):
    """The same account signed in on another browser (or again) cannot answer this page."""
    first, second = Client(), Client()
    key = consent_key(sign_in_to_consent(first, third_party_app))
    consent_key(sign_in_to_consent(second, third_party_app))
    assert_error_page(answer(second, key, "allow"))
    assert not Consent.objects.exists()
    assert allow(first, key).get("code")


def test_a_consent_page_expires_after_15_minutes(client, third_party_app, user):
    from datetime import timedelta

    from django.utils import timezone

    from identity.models import ConsentRequest

    key = consent_key(sign_in_to_consent(client, third_party_app))
    ConsentRequest.objects.update(created_at=timezone.now() - timedelta(minutes=15, seconds=1))
    assert_error_page(answer(client, key, "allow"))
    assert not Consent.objects.exists()


def test_an_answered_consent_request_stays_answered(client, third_party_app, user):
    from identity.models import ConsentRequest

    key = consent_key(sign_in_to_consent(client, third_party_app))
    response = answer(client, key, "deny")
    assert client_redirect_query(response)["error"] == "access_denied"
    assert ConsentRequest.objects.get(key=key).consumed_at is not None
    assert_error_page(answer(client, key, "allow"))
    assert not Consent.objects.exists()


def test_cleanup_deletes_old_consent_requests_only(client, third_party_app, user):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from identity.models import ConsentRequest

    old_key = consent_key(sign_in_to_consent(client, third_party_app))
    ConsentRequest.objects.update(created_at=timezone.now() - timedelta(minutes=16))
    fresh_key = consent_key(authorize(client, authorize_params(third_party_app)))
    call_command("portcullis_cleanup")
    assert list(ConsentRequest.objects.values_list("key", flat=True)) == [fresh_key]
    assert old_key != fresh_key
    assert allow(client, fresh_key).get("code")
