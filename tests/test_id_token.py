"""ID tokens as a relying party sees them: claims, signature, keys, rotation, claims by scope."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client
from jwcrypto import jwt
from jwcrypto.common import JWException

from identity import keys
from identity.models import SigningKey
from identity.subjects import subject_of
from tests.helpers import (
    expected_at_hash,
    fetch_jwks,
    issue_tokens,
    jwt_header,
    userinfo,
    verify_id_token,
)

ISSUER = "http://testserver"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}

PROFILE_CLAIMS = {"name", "given_name", "family_name", "preferred_username"}
EMAIL_CLAIMS = {"email", "email_verified"}
PHONE_CLAIMS = {"phone_number", "phone_number_verified"}


def custom_claims_hook(user: Any, scopes: set[str], request: Any) -> dict[str, Any]:
    """The project's claims hook used by test_custom_claims_hook_adds_a_claim."""
    claims: dict[str, Any] = {"tenant": "acme"}
    if "profile" in scopes:
        claims["favourite_colour"] = "teal"
    return claims


# -- the ID token itself --------------------------------------------------------------------------
def test_id_token_carries_the_required_claims(flow, confidential_app, user):
    before = int(time.time())
    body, params = issue_tokens(flow, confidential_app)
    claims = verify_id_token(flow.client, body["id_token"])

    assert claims["iss"] == ISSUER
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert confidential_app.client_id in aud
    assert claims["azp"] == confidential_app.client_id
    assert claims["sub"] == subject_of(user)
    assert claims["nonce"] == params["nonce"]
    assert before - 5 <= claims["iat"] <= int(time.time()) + 5
    assert claims["exp"] > claims["iat"]
    assert before - 5 <= claims["auth_time"] <= claims["iat"]
    assert claims["amr"] == ["pwd"]
    assert isinstance(claims["sid"], str) and claims["sid"]
    assert claims["at_hash"] == expected_at_hash(body["access_token"])


def test_at_hash_is_for_this_access_token_only(flow, confidential_app, user):
    first, _ = issue_tokens(flow, confidential_app)
    second, _ = issue_tokens(flow, confidential_app)
    first_claims = verify_id_token(flow.client, first["id_token"])
    second_claims = verify_id_token(flow.client, second["id_token"])
    assert first_claims["at_hash"] == expected_at_hash(first["access_token"])
    assert second_claims["at_hash"] == expected_at_hash(second["access_token"])
    assert first_claims["at_hash"] != second_claims["at_hash"]


def test_nonce_is_echoed_exactly(flow, public_app, user):
    nonce = "n-0S6_WzA2Mj.~tricky"
    body, _ = issue_tokens(flow, public_app, nonce=nonce)
    assert verify_id_token(flow.client, body["id_token"])["nonce"] == nonce


def test_id_token_is_rs256_with_a_published_kid(flow, confidential_app, user):
    body, _ = issue_tokens(flow, confidential_app)
    header = jwt_header(body["id_token"])
    assert header["alg"] == "RS256"
    document, _keyset = fetch_jwks(flow.client)
    published = {key["kid"]: key for key in document["keys"]}
    assert header["kid"] in published
    key = published[header["kid"]]
    assert key["kty"] == "RSA"
    assert key.get("use", "sig") == "sig"
    assert key.get("alg", "RS256") == "RS256"


def test_signature_verifies_with_the_jwks_key(flow, confidential_app, user):
    body, _ = issue_tokens(flow, confidential_app)
    document, keyset = fetch_jwks(flow.client)
    kid = jwt_header(body["id_token"])["kid"]
    key = keyset.get_key(kid)
    assert key is not None
    token = jwt.JWT(jwt=body["id_token"], key=key, algs=["RS256"], check_claims=False)
    assert token.claims


def test_signature_does_not_verify_after_tampering(flow, confidential_app, user):
    body, _ = issue_tokens(flow, confidential_app)
    header, payload, signature = body["id_token"].split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    _document, keyset = fetch_jwks(flow.client)
    with pytest.raises(JWException):
        jwt.JWT(jwt=f"{header}.{payload}.{flipped}", key=keyset, algs=["RS256"], check_claims=False)


def test_jwks_never_shows_private_parts(client, db):
    document, _ = fetch_jwks(client)
    assert document["keys"], document
    for key in document["keys"]:
        assert not PRIVATE_MEMBERS & set(key), key
        assert {"kty", "n", "e", "kid"} <= set(key)


def test_jwks_is_public_after_rotation_too(client, db):
    fetch_jwks(client)
    keys.rotate()
    keys.rotate()
    document, _ = fetch_jwks(client)
    assert len(document["keys"]) == 3
    for key in document["keys"]:
        assert not PRIVATE_MEMBERS & set(key), key


# -- rotation -------------------------------------------------------------------------------------
def _assert_rotation_keeps_old_tokens_valid(client: Client, flow, app, rotate) -> None:
    old_body, _ = issue_tokens(flow, app)
    old_kid = jwt_header(old_body["id_token"])["kid"]
    before, _ = fetch_jwks(client)
    assert [key["kid"] for key in before["keys"]] == [old_kid]

    rotate()

    after, _ = fetch_jwks(client)
    kids = {key["kid"] for key in after["keys"]}
    assert old_kid in kids
    assert len(kids) == 2

    new_body, _ = issue_tokens(flow, app)
    new_kid = jwt_header(new_body["id_token"])["kid"]
    assert new_kid != old_kid
    assert new_kid in kids

    # Both verify against what is published now.
    assert verify_id_token(client, old_body["id_token"])["sub"]
    assert verify_id_token(client, new_body["id_token"])["sub"]


def test_rotation_with_keys_rotate(flow, confidential_app, user):
    _assert_rotation_keeps_old_tokens_valid(flow.client, flow, confidential_app, keys.rotate)


def test_rotation_from_the_admin_action(flow, confidential_app, user, admin_client):
    def rotate_in_admin() -> None:
        keys.key_set()
        selected = list(SigningKey.objects.values_list("pk", flat=True))
        assert selected
        response = admin_client.post(
            "/admin/identity/signingkey/",
            {"action": "rotate_keys", "_selected_action": selected, "index": "0"},
        )
        assert response.status_code == 302, response.content[:500]
        page = admin_client.get(response["Location"])
        assert b"New active signing key" in page.content

    _assert_rotation_keeps_old_tokens_valid(flow.client, flow, confidential_app, rotate_in_admin)
    assert SigningKey.objects.filter(active=True).count() == 1
    assert SigningKey.objects.count() == 2


def test_admin_shows_no_private_key(admin_client, db):
    keys.key_set()
    key = SigningKey.objects.get(active=True)
    page = admin_client.get(f"/admin/identity/signingkey/{key.pk}/change/")
    assert page.status_code == 200
    assert b"PRIVATE KEY" not in page.content
    listing = admin_client.get("/admin/identity/signingkey/")
    assert listing.status_code == 200
    assert b"PRIVATE KEY" not in listing.content


def test_rotation_is_seen_by_a_process_with_a_stale_memo(flow, confidential_app, user):
    """Another process rotates: this one learns it through the shared cache version, at its next
    check (at most keys.VERSION_CHECK_SECONDS later)."""
    old_body, _ = issue_tokens(flow, confidential_app)
    old_kid = jwt_header(old_body["id_token"])["kid"]
    stale = keys._memo
    keys.rotate()
    keys._memo = stale  # this process still holds the pre-rotation key set in memory
    keys._checked_at = time.monotonic() - keys.VERSION_CHECK_SECONDS  # and its check interval has passed
    new_body, _ = issue_tokens(flow, confidential_app)
    assert jwt_header(new_body["id_token"])["kid"] != old_kid
    document, _ = fetch_jwks(flow.client)
    assert {key["kid"] for key in document["keys"]} >= {old_kid, jwt_header(new_body["id_token"])["kid"]}


# -- claims by scope ------------------------------------------------------------------------------
SCOPE_CASES = [
    ("openid", set()),
    ("openid profile", PROFILE_CLAIMS),
    ("openid email", EMAIL_CLAIMS),
    ("openid phone", PHONE_CLAIMS),
    ("openid profile email", PROFILE_CLAIMS | EMAIL_CLAIMS),
    ("openid email phone", EMAIL_CLAIMS | PHONE_CLAIMS),
    ("openid profile email phone", PROFILE_CLAIMS | EMAIL_CLAIMS | PHONE_CLAIMS),
]
ALL_SCOPED = PROFILE_CLAIMS | EMAIL_CLAIMS | PHONE_CLAIMS


@pytest.mark.parametrize(("scope", "expected"), SCOPE_CASES, ids=[case[0].replace(" ", "+") for case in SCOPE_CASES])
def test_claims_follow_the_granted_scopes(flow, confidential_app, user, scope, expected):
    body, _ = issue_tokens(flow, confidential_app, scope=scope)
    assert set(body["scope"].split()) == set(scope.split())
    id_claims = verify_id_token(flow.client, body["id_token"])
    response = userinfo(flow.client, body["access_token"])
    assert response.status_code == 200, response.content
    info = response.json()

    for claims in (id_claims, info):
        assert claims["sub"] == subject_of(user)
        present = ALL_SCOPED & set(claims)
        assert present == expected, (scope, claims)
    if "profile" in expected:
        for claims in (id_claims, info):
            assert claims["name"] == "Alice Liddell"
            assert claims["given_name"] == "Alice"
            assert claims["family_name"] == "Liddell"
            assert claims["preferred_username"] == "alice"
    if "email" in expected:
        for claims in (id_claims, info):
            assert claims["email"] == "Alice@example.com"
            assert claims["email_verified"] is True
    if "phone_number" in expected:
        for claims in (id_claims, info):
            assert claims["phone_number"] == "+15551234567"
            assert claims["phone_number_verified"] is False


def test_openid_only_userinfo_is_just_sub(flow, confidential_app, user):
    body, _ = issue_tokens(flow, confidential_app, scope="openid")
    response = userinfo(flow.client, body["access_token"])
    assert response.status_code == 200, response.content
    assert response.json() == {"sub": subject_of(user)}


def test_custom_claims_hook_adds_a_claim(flow, confidential_app, user, settings):
    settings.PORTCULLIS_CLAIMS_HOOK = f"{__name__}.custom_claims_hook"
    body, _ = issue_tokens(flow, confidential_app, scope="openid profile")
    id_claims = verify_id_token(flow.client, body["id_token"])
    info = userinfo(flow.client, body["access_token"]).json()
    for claims in (id_claims, info):
        assert claims["tenant"] == "acme"
        assert claims["favourite_colour"] == "teal"
        assert claims["sub"] == subject_of(user)

    body, _ = issue_tokens(flow, confidential_app, scope="openid")
    id_claims = verify_id_token(flow.client, body["id_token"])
    info = userinfo(flow.client, body["access_token"]).json()
    assert info == {"sub": subject_of(user), "tenant": "acme"}
    assert id_claims["tenant"] == "acme"
    assert "favourite_colour" not in id_claims


def test_claims_hook_cannot_replace_protocol_claims(flow, confidential_app, user, settings):
    settings.PORTCULLIS_CLAIMS_HOOK = f"{__name__}.hostile_claims_hook"
    body, params = issue_tokens(flow, confidential_app, scope="openid")
    claims = verify_id_token(flow.client, body["id_token"])
    assert claims["sub"] == subject_of(user)
    assert claims["iss"] == ISSUER
    assert claims["aud"] == confidential_app.client_id or confidential_app.client_id in claims["aud"]
    assert claims["nonce"] == params["nonce"]
    assert claims["extra"] == "kept"
    assert userinfo(flow.client, body["access_token"]).json()["sub"] == subject_of(user)


def hostile_claims_hook(user: Any, scopes: set[str], request: Any) -> dict[str, Any]:
    return {"sub": "someone-else", "iss": "https://evil.example", "aud": "evil", "nonce": "evil", "extra": "kept"}
