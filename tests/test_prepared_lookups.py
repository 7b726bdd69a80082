"""The compiled-once lookups give what the ORM gives, with the related objects already loaded."""

from __future__ import annotations

import hashlib

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

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


postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql",
                                     reason="prepared statements are PostgreSQL's (the suite's PostgreSQL run has them)")


def prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@postgresql_only
def test_on_postgresql_a_lookup_is_prepared_after_five_runs_and_answers_the_same(flow, confidential_app, user):
    verifier, challenge = pkce_pair()
    code, params = flow.code_for(confidential_app, authorize_params(confidential_app, challenge))
    raw = flow.token(confidential_app, code, params, code_verifier=verifier).json()["access_token"]
    checksum = hashlib.sha256(raw.encode()).hexdigest()
    lookup = PreparedLookup(access_tokens)
    assert connection.connection.prepare_threshold == 5  # config.settings' default
    before = prepared_statements()
    with CaptureQueriesContext(connection) as captured:
        found = [lookup.get(checksum) for _ in range(7)]
    assert len(captured.captured_queries) == 7  # in Django's query log, as any query
    assert {token.pk for token in found} == {access_tokens(checksum).get().pk}
    assert all(token.user.get_username() == "alice" for token in found)
    new = [statement for statement in prepared_statements() if statement not in before]
    assert len(new) == 1 and new[0].startswith('SELECT "oauth2_provider_accesstoken"."id"'), new
    assert lookup.get("0" * 64) is None


@postgresql_only
def test_without_a_prepare_threshold_nothing_is_prepared(flow, confidential_app, user, monkeypatch):
    monkeypatch.setattr(connection.connection, "prepare_threshold", None)  # DATABASE_PREPARE_THRESHOLD=0
    before = prepared_statements()
    lookup = PreparedLookup(access_tokens)
    assert [lookup.get("1" * 64) for _ in range(7)] == [None] * 7
    assert prepared_statements() == before


@postgresql_only
def test_a_database_error_in_a_lookup_is_djangos(db):
    lookup = PreparedLookup(lambda value: AccessToken.objects.extra(where=["1/0 = 1"]).filter(token_checksum=value))
    with pytest.raises(DatabaseError) as raised:
        lookup.get("2" * 64)
    assert type(raised.value).__module__.startswith("django.db")


# -- the sign-in's reads, compiled once --------------------------------------------------------------------
def test_a_query_with_several_placeholders_takes_each_value_in_each_place(user, django_user_model):
    """Each placeholder may stand in several places: every place gets its own value."""
    from identity.prepared import PreparedQuery

    bob = django_user_model.objects.create_user("bob", "bob@example.com", "x")
    query = PreparedQuery(lambda first, second: django_user_model.objects.filter(
        username__in=[first, second]).exclude(email=second).order_by("username"), ("p-first", "p-second"))
    for _ in range(2):
        assert [found.username for found in query.instances("alice", "bob")] == ["alice", "bob"]
        assert [found.username for found in query.instances("alice", "bob@example.com")] == ["alice"]
    assert [found.pk for found in query.instances("carol", "dave")] == []
    assert bob.pk


def test_find_user_answers_from_one_compiled_statement_with_the_profile(user, django_assert_num_queries):
    from identity.identifiers import find_user

    for identifier in ("ALICE@example.com", "alice", "+15551234567", "alice@example.com"):
        with django_assert_num_queries(1):
            found = find_user(identifier)
            assert found == user and found.portcullis_profile.phone_number == "+15551234567"
    with django_assert_num_queries(1):
        assert find_user("nobody@example.com") is None


@pytest.mark.parametrize("totp, codes", [(False, False), (True, False), (False, True), (True, True)])
def test_every_factors_enrolment_in_one_compiled_statement_matches_the_orm(
        user, second_factors, django_user_model, django_assert_num_queries, totp, codes):
    from authenticators.base import _ENROLMENT_STATEMENTS, enrolled_each
    from authenticators.types import backup_code
    from tests.helpers import give_totp

    other = django_user_model.objects.create_user("bob", "bob@example.com", "x")
    give_totp(other)  # another account's factors answer nothing for Alice
    backup_code.replace_codes(other)
    if totp:
        give_totp(user)
    if codes:
        backup_code.replace_codes(user)
    auths = [second_factors[name].get_auth(None) for name in ("totp", "backup_code")]
    assert [auth.enrolment_by_pk for auth in auths] == [True, True]
    for _ in range(2):
        with django_assert_num_queries(1):
            answers = enrolled_each(user, auths)
        assert answers == [auths[0].enrolment(user).exists(), auths[1].enrolment(user).exists()] == [totp, codes]
    assert _ENROLMENT_STATEMENTS[(type(auths[0]), type(auths[1]))] is not None
    assert enrolled_each(other, auths[:2]) == [True, True]


def test_a_factor_whose_enrolment_reads_more_than_the_id_is_never_compiled(user, second_factors):
    """enrolment_by_pk is a promise; a statement that shows it broken (the query changes with more
    than the id) is asked anew each time instead."""
    from authenticators.base import _ENROLMENT_STATEMENTS, enrolled_each
    from authenticators.types.totp import TotpAuth, confirmed_devices

    class ByName(TotpAuth):
        def enrolment(self, user):
            return confirmed_devices(user).filter(name=str(user.pk))  # not by the id alone

    auth = ByName(second_factors["totp"])
    from tests.helpers import give_totp

    device = give_totp(user)
    assert enrolled_each(user, [auth, auth]) == [False, False]
    device.name = str(user.pk)
    device.save()
    assert enrolled_each(user, [auth, auth]) == [True, True]
    assert _ENROLMENT_STATEMENTS[(ByName, ByName)] is None
