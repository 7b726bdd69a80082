"""The compiled-once lookups give what the ORM gives, with the related objects already loaded."""

from __future__ import annotations

import hashlib

import pytest

from identity.prepared import PreparedLookup
from identity.validators import AccessToken
from tests.helpers import authorize_params, pkce_pair

pytestmark = pytest.mark.django_db


def access_tokens(checksum):
    return AccessToken.objects.select_related("application", "user__portcullis_profile").filter(token_checksum=checksum)


def test_a_prepared_lookup_matches_the_orm(flow, confidential_app, user, django_assert_num_queries):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    raw = flow.token(confidential_app, code, params, code_verifier=verifier).json()["access_token"]
    checksum = hashlib.sha256(raw.encode()).hexdigest()
    lookup = PreparedLookup(access_tokens)
    expected = access_tokens(checksum).get()
    for _ in range(2):  # compiled on the first call, reused on the second
        with django_assert_num_queries(1):
            found = lookup.get(checksum)
            assert (found.pk, found.scope, found.expires, found.resource) == (
                expected.pk, expected.scope, expected.expires, expected.resource)
            assert found.application.client_id == confidential_app.client_id
            assert found.user.get_username() == "alice"
            assert found.user.portcullis_profile.email_verified is True
    assert lookup.get("0" * 64) is None
