"""SECURITY.md "Codes, PKCE, tokens": authorization codes, PKCE, the token endpoint, revocation,
introspection and token storage, each written as the attack it stops."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_refresh_token_model,
)
from oauth2_provider.settings import oauth2_settings

from identity.subjects import subject_of
from tests.helpers import (
    PASSWORD,
    REDIRECT_URI,
    TOKEN_URL,
    authorize_params,
    basic_auth,
    checksum,
    entropy_bits,
    error_of,
    introspect,
    jwt_payload,
    make_application,
    pkce_pair,
    query_of,
    refresh,
    revoke,
    tokens_for,
    userinfo_status,
)

Application = get_application_model()
Grant = get_grant_model()
AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()




# -- randomness and lifetimes of codes ----------------------------------------------------------------
def test_codes_and_tokens_carry_at_least_128_bits(flow, confidential_app, user):
    codes, access, refreshes = [], [], []
    for _ in range(3):
        verifier, challenge = pkce_pair()
        code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
        codes.append(code)
        body = flow.token(confidential_app, code, params, code_verifier=verifier).json()
        access.append(body["access_token"])
        refreshes.append(body["refresh_token"])
    for kind, samples in (("code", codes), ("access token", access), ("refresh token", refreshes)):
        assert len(set(samples)) == len(samples), kind
        assert entropy_bits(samples) >= 128, (kind, samples)


def test_code_lifetime_is_between_60_seconds_and_10_minutes(flow, confidential_app, user):
    before = timezone.now()
    code, _params = flow.code_for(confidential_app)
    grant = Grant.objects.get(code=code)
    lifetime = (grant.expires - before).total_seconds()
    assert 0 < lifetime <= 600
    assert oauth2_settings.AUTHORIZATION_CODE_EXPIRE_SECONDS == 60


def test_expired_code_is_refused(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    Grant.objects.filter(code=code).update(expires=timezone.now() - timedelta(seconds=1))
    response = flow.token(confidential_app, code, params, code_verifier=verifier)
    assert response.status_code == 400, response.content
    assert error_of(response) == "invalid_grant"
    assert not AccessToken.objects.exists()


# -- single use -----------------------------------------------------------------------------------------
def test_second_redemption_fails_and_revokes_what_the_code_issued(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    first = flow.token(confidential_app, code, params, code_verifier=verifier)
    assert first.status_code == 200, first.content
    tokens = first.json()
    assert userinfo_status(flow.client, tokens["access_token"]) == 200

    second = flow.token(confidential_app, code, params, code_verifier=verifier)
    assert second.status_code == 400, second.content
    assert error_of(second) == "invalid_grant"
    assert "access_token" not in second.json()

    # The attacker (or the victim) replayed the code: everything it issued is dead.
    assert userinfo_status(flow.client, tokens["access_token"]) == 401
    replay = refresh(flow.client, confidential_app, tokens["refresh_token"])
    assert replay.status_code == 400, replay.content
    assert error_of(replay) == "invalid_grant"


def test_second_redemption_after_a_refresh_revokes_the_refreshed_tokens_too(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    tokens = flow.token(confidential_app, code, params, code_verifier=verifier).json()
    refreshed = refresh(flow.client, confidential_app, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.content
    newest = refreshed.json()

    second = flow.token(confidential_app, code, params, code_verifier=verifier)
    assert error_of(second) == "invalid_grant"
    assert userinfo_status(flow.client, newest["access_token"]) == 401
    assert error_of(refresh(flow.client, confidential_app, newest["refresh_token"])) == "invalid_grant"


# -- binding to the client and redirect_uri -----------------------------------------------------------------
def test_code_is_bound_to_its_client(flow, confidential_app, other_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    stolen = flow.client.post(TOKEN_URL, {
        "grant_type": "authorization_code", "code": code, "redirect_uri": params["redirect_uri"],
        "code_verifier": verifier, "client_id": other_app.client_id, "client_secret": other_app.client_secret,
    })
    assert stolen.status_code == 400, stolen.content
    assert error_of(stolen) == "invalid_grant"
    assert not AccessToken.objects.exists()


def test_code_cannot_be_redeemed_by_a_public_client_naming_itself(flow, confidential_app, public_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    stolen = flow.token(public_app, code, params, code_verifier=verifier)
    assert stolen.status_code == 400, stolen.content
    assert error_of(stolen) == "invalid_grant"
    assert not AccessToken.objects.exists()


def test_code_is_bound_to_its_redirect_uri(flow, user):
    other_uri = "https://rp.example.com/other"
    app = make_application(redirect_uri=f"{REDIRECT_URI} {other_uri}")
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(app, authorize_params(app, challenge))
    response = flow.token(app, code, {**params, "redirect_uri": other_uri}, code_verifier=verifier)
    assert response.status_code == 400, response.content
    assert "access_token" not in response.json()
    assert not AccessToken.objects.exists()


def test_redirect_uri_mismatch_answers_invalid_grant(flow, user):
    """RFC 6749 section 5.2: a redirect_uri that does not match the authorization request's is
    ``invalid_grant``."""
    other_uri = "https://rp.example.com/other"
    app = make_application(redirect_uri=f"{REDIRECT_URI} {other_uri}")
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(app, authorize_params(app, challenge))
    response = flow.token(app, code, {**params, "redirect_uri": other_uri}, code_verifier=verifier)
    assert response.status_code == 400, response.content
    assert error_of(response) == "invalid_grant"


def test_code_redemption_without_redirect_uri_is_refused(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, _params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    response = flow.client.post(TOKEN_URL, {
        "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
        "client_id": confidential_app.client_id, "client_secret": confidential_app.client_secret,
    })
    assert response.status_code == 400, response.content
    assert error_of(response) in {"invalid_request", "invalid_grant"}
    assert not AccessToken.objects.exists()


# -- PKCE ----------------------------------------------------------------------------------------------------
def test_public_client_without_challenge_gets_no_code(flow, public_app, user):
    response = flow.authorize(authorize_params(public_app))
    assert response.status_code == 302, response.content
    assert response["Location"].startswith(REDIRECT_URI)
    query = query_of(response["Location"])
    assert query.get("error") == "invalid_request"
    assert "code" not in query
    assert not Grant.objects.exists()


def test_plain_challenge_method_is_refused(flow, public_app, user):
    verifier, _challenge = pkce_pair()
    params = authorize_params(public_app, code_challenge=verifier, code_challenge_method="plain")
    response = flow.authorize(params)
    assert response.status_code in (302, 400), response.content
    if response.status_code == 302:
        query = query_of(response["Location"])
        assert query.get("error") == "invalid_request", query
        assert "code" not in query
    assert not Grant.objects.exists()


def test_public_client_with_s256_gets_tokens_without_a_secret(flow, public_app, user):
    body = tokens_for(flow, public_app)
    assert body["token_type"].lower() == "bearer"
    assert userinfo_status(flow.client, body["access_token"]) == 200


@pytest.mark.parametrize("app_fixture", ["public_app", "confidential_app"])
def test_wrong_verifier_is_refused(flow, user, request, app_fixture):
    app = request.getfixturevalue(app_fixture)
    _verifier, challenge = pkce_pair()
    other_verifier, _ = pkce_pair()
    code, params = flow.code_for(app, authorize_params(app, challenge))
    response = flow.token(app, code, params, code_verifier=other_verifier)
    assert response.status_code == 400, response.content
    assert error_of(response) == "invalid_grant"
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize("app_fixture", ["public_app", "confidential_app"])
def test_missing_verifier_when_a_challenge_was_stored_is_refused(request, flow, user, app_fixture):
    app = request.getfixturevalue(app_fixture)
    _verifier, challenge = pkce_pair()
    code, params = flow.code_for(app, authorize_params(app, challenge))
    response = flow.token(app, code, params)
    assert response.status_code == 400, response.content
    assert error_of(response) in {"invalid_grant", "invalid_request"}
    assert not AccessToken.objects.exists()


def test_verifier_without_stored_challenge_is_refused(flow, confidential_app, user):
    """PKCE downgrade: the attacker injects a code that was issued without a challenge."""
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app))
    verifier, _challenge = pkce_pair()
    response = flow.token(confidential_app, code, params, code_verifier=verifier)
    assert response.status_code == 400, response.content
    assert error_of(response) in {"invalid_grant", "invalid_request"}
    assert not AccessToken.objects.exists()


def test_confidential_client_without_pkce_still_works(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app, pkce=False)
    assert userinfo_status(flow.client, body["access_token"]) == 200


# -- the token endpoint ----------------------------------------------------------------------------------------
def test_token_response_is_uncacheable_json(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    ok = flow.token(confidential_app, code, params, code_verifier=verifier)
    assert ok.status_code == 200
    error = flow.token(confidential_app, code, params, code_verifier=verifier)
    assert error.status_code == 400
    for response in (ok, error):
        assert response["Content-Type"].startswith("application/json")
        assert "no-store" in response["Cache-Control"]
        response.json()


def test_client_secret_basic_works(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    response = flow.client.post(
        TOKEN_URL,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": params["redirect_uri"],
         "code_verifier": verifier},
        HTTP_AUTHORIZATION=basic_auth(confidential_app),
    )
    assert response.status_code == 200, response.content
    assert {"access_token", "refresh_token", "id_token"} <= set(response.json())


def test_client_secret_post_works(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)  # Flow.token sends client_id and client_secret in the body
    assert {"access_token", "refresh_token", "id_token"} <= set(body)


@pytest.mark.parametrize("method", ["post", "basic"])
def test_bad_client_secret_gets_401_invalid_client(flow, confidential_app, user, method):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": params["redirect_uri"],
            "code_verifier": verifier}
    if method == "post":
        data.update(client_id=confidential_app.client_id, client_secret="not-the-secret")
        response = flow.client.post(TOKEN_URL, data)
    else:
        response = flow.client.post(TOKEN_URL, data, HTTP_AUTHORIZATION=basic_auth(confidential_app, "not-the-secret"))
    assert response.status_code == 401, response.content
    assert error_of(response) == "invalid_client"
    assert "no-store" in response["Cache-Control"]
    assert not AccessToken.objects.exists()
    # The code was not burnt by the failed attempt of someone without the secret... nor is it leaked.
    assert "access_token" not in response.json()


def test_confidential_client_without_secret_is_refused(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    response = flow.client.post(TOKEN_URL, {
        "grant_type": "authorization_code", "code": code, "redirect_uri": params["redirect_uri"],
        "code_verifier": verifier, "client_id": confidential_app.client_id,
    })
    assert response.status_code == 401, response.content
    assert error_of(response) == "invalid_client"
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize("grant_type", ["password", "client_credentials", "implicit", "urn:ietf:params:oauth:grant-type:device_code", "bogus", ""])
def test_unsupported_grant_type_never_500(client, confidential_app, grant_type):
    response = client.post(TOKEN_URL, {"grant_type": grant_type, "username": "alice", "password": "x"},
                           HTTP_AUTHORIZATION=basic_auth(confidential_app))
    assert response.status_code in (400, 401), response.content
    assert error_of(response) in {"unsupported_grant_type", "invalid_request", "unauthorized_client", "invalid_grant"}
    assert "access_token" not in response.json()
    if grant_type == "bogus":
        assert error_of(response) == "unsupported_grant_type"
    assert "no-store" in response["Cache-Control"]


def test_device_code_grant_with_a_device_code_never_500(client, confidential_app):
    response = client.post(TOKEN_URL, {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                       "device_code": "nonsense"}, HTTP_AUTHORIZATION=basic_auth(confidential_app))
    assert response.status_code in (400, 401), response.content
    assert "access_token" not in response.json()


def test_password_grant_is_not_available(client, confidential_app, user):
    response = client.post(TOKEN_URL, {"grant_type": "password", "username": "alice", "password": PASSWORD,
                                       "scope": "openid"}, HTTP_AUTHORIZATION=basic_auth(confidential_app))
    assert response.status_code in (400, 401), response.content
    assert "access_token" not in response.json()


@pytest.mark.parametrize("app_fixture", ["confidential_app", "public_app"])
def test_password_grant_is_not_a_password_oracle(request, client, user, app_fixture):
    """RFC 9700 forbids the password grant; an endpoint that answers differently for a right and a
    wrong password lets any client (a public client_id is no secret) test passwords without the
    sign-in page's rate limits, captcha and second factor."""
    app = request.getfixturevalue(app_fixture)
    answers = []
    for password in (PASSWORD, "a wrong password"):
        data = {"grant_type": "password", "username": "alice", "password": password, "scope": "openid"}
        if app.client_secret:
            response = client.post(TOKEN_URL, data, HTTP_AUTHORIZATION=basic_auth(app))
        else:
            response = client.post(TOKEN_URL, {**data, "client_id": app.client_id})
        assert "access_token" not in response.json()
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1], answers
    assert answers[0][1]["error"] in {"unsupported_grant_type", "unauthorized_client"}


# -- lifetimes ---------------------------------------------------------------------------------------------------
def test_access_and_id_tokens_live_at_most_one_hour(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    assert 0 < body["expires_in"] <= 3600
    claims = jwt_payload(body["id_token"])
    assert 0 < claims["exp"] - claims["iat"] <= 3600
    stored = AccessToken.objects.get(token_checksum=checksum(body["access_token"]))
    assert (stored.expires - timezone.now()).total_seconds() <= 3600


# -- revocation (RFC 7009) ---------------------------------------------------------------------------------------
def test_a_client_cannot_revoke_another_clients_tokens(flow, confidential_app, other_app, user):
    body = tokens_for(flow, confidential_app)
    for token, hint in ((body["access_token"], "access_token"), (body["refresh_token"], "refresh_token"),
                        (body["access_token"], None), (body["refresh_token"], None)):
        response = revoke(flow.client, other_app, token, hint)
        assert response.status_code in (200, 400, 401, 403), response.content
    assert userinfo_status(flow.client, body["access_token"]) == 200
    refreshed = refresh(flow.client, confidential_app, body["refresh_token"])
    assert refreshed.status_code == 200, refreshed.content


def test_revoking_an_access_token_revokes_its_refresh_token(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    response = revoke(flow.client, confidential_app, body["access_token"], "access_token")
    assert response.status_code == 200, response.content
    assert userinfo_status(flow.client, body["access_token"]) == 401
    refused = refresh(flow.client, confidential_app, body["refresh_token"])
    assert refused.status_code == 400, refused.content
    assert error_of(refused) == "invalid_grant"


def test_revoking_a_refresh_token(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    response = revoke(flow.client, confidential_app, body["refresh_token"], "refresh_token")
    assert response.status_code == 200, response.content
    refused = refresh(flow.client, confidential_app, body["refresh_token"])
    assert refused.status_code == 400, refused.content
    assert error_of(refused) == "invalid_grant"
    assert userinfo_status(flow.client, body["access_token"]) == 401


def test_revocation_needs_client_authentication(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    anonymous = flow.client.post("/oauth/revoke", {"token": body["access_token"]})
    assert anonymous.status_code in (400, 401), anonymous.content
    wrong = flow.client.post("/oauth/revoke", {"token": body["access_token"]},
                             HTTP_AUTHORIZATION=basic_auth(confidential_app, "not-the-secret"))
    assert wrong.status_code == 401, wrong.content
    assert userinfo_status(flow.client, body["access_token"]) == 200


# -- introspection (RFC 7662) ---------------------------------------------------------------------------------------
def test_introspection_of_own_active_token(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    response = introspect(flow.client, confidential_app, body["access_token"])
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["active"] is True
    assert answer["sub"] == jwt_payload(body["id_token"])["sub"] == subject_of(user)
    assert set(answer["scope"].split()) == set(body["scope"].split())
    assert answer["client_id"] == confidential_app.client_id
    assert abs(answer["exp"] - (timezone.now().timestamp() + body["expires_in"])) < 60
    assert "no-store" in response["Cache-Control"]


def test_introspection_of_another_clients_token_is_inactive(flow, confidential_app, other_app, user):
    body = tokens_for(flow, confidential_app)
    for token in (body["access_token"], body["refresh_token"]):
        response = introspect(flow.client, other_app, token)
        assert response.status_code == 200, response.content
        assert response.json() == {"active": False}


def test_introspection_of_revoked_or_expired_token_is_inactive(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    AccessToken.objects.filter(token_checksum=checksum(body["access_token"])).update(
        expires=timezone.now() - timedelta(seconds=1))
    assert introspect(flow.client, confidential_app, body["access_token"]).json() == {"active": False}
    other = tokens_for(flow, confidential_app)
    revoke(flow.client, confidential_app, other["access_token"], "access_token")
    assert introspect(flow.client, confidential_app, other["access_token"]).json() == {"active": False}
    assert introspect(flow.client, confidential_app, "no-such-token").json() == {"active": False}


def test_a_disabled_users_access_token_is_dead_at_userinfo_and_introspection(flow, confidential_app, user, django_user_model):
    """One rule for an access token (not expired, user active) at userinfo and introspection. An
    update, not save(): the rule itself, not the revocation the account-disable signal adds."""
    body = tokens_for(flow, confidential_app)
    django_user_model.objects.filter(pk=user.pk).update(is_active=False)
    assert userinfo_status(flow.client, body["access_token"]) == 401
    assert introspect(flow.client, confidential_app, body["access_token"]).json() == {"active": False}


@pytest.mark.parametrize("auth", ["none", "bad-secret", "public-client"])
def test_introspection_needs_client_authentication(flow, confidential_app, public_app, user, auth):
    body = tokens_for(flow, confidential_app)
    if auth == "none":
        response = introspect(flow.client, None, body["access_token"])
    elif auth == "bad-secret":
        response = introspect(flow.client, confidential_app, body["access_token"], secret="not-the-secret")
    else:
        response = flow.client.post("/oauth/introspect", {"token": body["access_token"],
                                                          "client_id": confidential_app.client_id})
    assert response.status_code == 401, response.content
    assert "active" not in response.json()


# -- account changes ---------------------------------------------------------------------------------------------
def test_password_change_revokes_tokens(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    user.set_password("a brand new passphrase 42")
    user.save()
    assert userinfo_status(flow.client, body["access_token"]) == 401
    refused = refresh(flow.client, confidential_app, body["refresh_token"])
    assert refused.status_code == 400, refused.content
    assert error_of(refused) == "invalid_grant"
    assert introspect(flow.client, confidential_app, body["access_token"]).json() == {"active": False}


def test_account_disable_revokes_tokens(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    user.is_active = False
    user.save()
    assert userinfo_status(flow.client, body["access_token"]) == 401
    refused = refresh(flow.client, confidential_app, body["refresh_token"])
    assert refused.status_code == 400, refused.content
    assert error_of(refused) == "invalid_grant"
    assert introspect(flow.client, confidential_app, body["refresh_token"]).json() == {"active": False}


def test_disabled_account_cannot_redeem_a_pending_code(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    user.is_active = False
    user.save()
    response = flow.token(confidential_app, code, params, code_verifier=verifier)
    assert response.status_code == 400, response.content
    assert error_of(response) == "invalid_grant"


# -- storage -----------------------------------------------------------------------------------------------------
def test_client_secret_is_hashed_with_the_fast_hasher(flow, confidential_app, user):
    stored = Application.objects.get(pk=confidential_app.application.pk).client_secret
    assert stored.startswith("portcullis_sha256$"), stored[:30]
    assert confidential_app.client_secret not in stored
    assert not stored.startswith(("pbkdf2", "argon2"))
    # The plain secret still authenticates, by both methods.
    tokens_for(flow, confidential_app)
    response = flow.client.post(TOKEN_URL, {"grant_type": "refresh_token", "refresh_token": "x"},
                                HTTP_AUTHORIZATION=basic_auth(confidential_app))
    assert response.status_code == 400 and error_of(response) == "invalid_grant", response.content


def test_tokens_are_not_stored_in_plain_text(flow, confidential_app, user):
    body = tokens_for(flow, confidential_app)
    access = AccessToken.objects.get(token_checksum=checksum(body["access_token"]))
    assert access.token == ""
    rt = RefreshToken.objects.get(token_checksum=checksum(body["refresh_token"]))
    assert rt.token == ""
    for value in (body["access_token"], body["refresh_token"]):
        assert not AccessToken.objects.filter(token=value).exists()
        assert not RefreshToken.objects.filter(token=value).exists()


def test_access_and_refresh_tokens_carry_256_random_bits(flow, confidential_app, user):
    import base64

    seen = set()
    for _ in range(2):
        verifier, challenge = pkce_pair()
        code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
        body = flow.token(confidential_app, code, params, code_verifier=verifier).json()
        for value in (body["access_token"], body["refresh_token"]):
            assert len(base64.urlsafe_b64decode(value + "=")) == 32  # 43 base64url characters: 256 bits
            seen.add(value)
    assert len(seen) == 4  # every value new
