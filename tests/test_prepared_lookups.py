"""The compiled-once lookups give what the ORM gives, with the related objects already loaded."""

from __future__ import annotations

import hashlib
import weakref

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
    # with their SQL, the runs of the prepared statement too (psycopg keeps no text of those itself)
    logged = [str(query["sql"]) for query in captured.captured_queries]
    assert all(sql.startswith('SELECT "oauth2_provider_accesstoken"."id"') for sql in logged), logged
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


# -- insert(): a new row written as save(force_insert=True) writes it -------------------------------
def row_of(instance):
    """Every column of the instance's row as the ORM reads it back."""
    return type(instance).objects.filter(pk=instance.pk).values().get()


def test_insert_writes_the_row_save_writes_in_one_statement(confidential_app, user, django_assert_num_queries):
    from datetime import timedelta

    from django.utils import timezone

    from identity.prepared import insert

    expires = timezone.now() + timedelta(hours=1)
    saved = AccessToken(user=user, application=confidential_app.application, scope="openid email", expires=expires,
                        token_checksum="a" * 64, resource=["https://api.example.com"])
    saved.save()
    for checksum in ("b" * 64, "c" * 64):  # compiled on the first, reused on the second
        inserted = AccessToken(user=user, application=confidential_app.application, scope="openid email", expires=expires,
                               token_checksum=checksum, resource=["https://api.example.com"])
        with django_assert_num_queries(1):
            insert(inserted)
        assert inserted.pk is not None and inserted.pk != saved.pk
        assert inserted._state.adding is False and inserted._state.db == "default"
        assert inserted.created is not None and inserted.updated is not None  # auto_now_add, auto_now
        ours, theirs = row_of(inserted), row_of(saved)
        for column in ("id", "token_checksum", "created", "updated"):
            ours.pop(column), theirs.pop(column)
        assert ours == theirs
        assert AccessToken.objects.get(token_checksum=checksum).resource == ["https://api.example.com"]


def test_insert_sends_pre_save_and_post_save_once(user):
    from django.db.models.signals import post_save, pre_save

    from experience.models import KnownDevice
    from identity.prepared import insert

    seen = []

    def before(sender, instance, raw, using, update_fields, **kwargs):
        seen.append(("pre", instance.pk, raw, using, update_fields))
        instance.user_agent = "set by a receiver"  # what pre_save changes is what is written

    def after(sender, instance, created, raw, using, update_fields, **kwargs):
        seen.append(("post", instance.pk, created, raw, using, update_fields))

    pre_save.connect(before, sender=KnownDevice)
    post_save.connect(after, sender=KnownDevice)
    try:
        device = KnownDevice(user=user, key="d" * 64, ip="203.0.113.7")
        insert(device)
    finally:
        pre_save.disconnect(before, sender=KnownDevice)
        post_save.disconnect(after, sender=KnownDevice)
    assert seen == [("pre", None, False, "default", None), ("post", device.pk, True, False, "default", None)]
    row = row_of(device)
    assert (row["user_agent"], row["ip"], row["key"]) == ("set by a receiver", "203.0.113.7", "d" * 64)


def test_insert_writes_an_expression_as_django_does(user):
    from django.db.models.functions import Now

    from experience.models import KnownDevice
    from identity.prepared import insert

    device = KnownDevice(user=user, key="e" * 64, created_at=Now(), last_seen_at=Now())
    insert(device)
    row = row_of(device)
    assert row["created_at"] is not None and row["created_at"] == row["last_seen_at"]


def test_an_insert_that_fails_marks_the_transaction_for_rollback_as_save_does(user):
    from django.db import IntegrityError, transaction

    from experience.models import AuditEvent
    from identity.models import UserSession
    from identity.prepared import insert

    insert(UserSession(user=user, session_key="k" * 32))
    with transaction.atomic():
        insert(AuditEvent(kind=AuditEvent.SIGN_IN_SUCCEEDED, user=user, identifier="alice"))
        with pytest.raises(IntegrityError):
            insert(UserSession(user=user, session_key="k" * 32))  # the key is unique
        assert transaction.get_connection().needs_rollback  # the block ends in a rollback, as after save()
    assert UserSession.objects.filter(session_key="k" * 32).count() == 1
    assert not AuditEvent.objects.filter(identifier="alice").exists()  # nothing of the block half-written


def test_insert_saves_a_proxy_with_a_save_of_its_own_by_that_save(user):
    from experience.models import KnownDevice
    from identity.prepared import insert

    class Remembered(KnownDevice):
        class Meta:
            proxy = True
            app_label = "experience"

        def save(self, *args, **kwargs):
            self.user_agent = "its own save ran"
            super().save(*args, **kwargs)

    device = Remembered(user=user, key="f" * 64)
    insert(device)
    assert row_of(device)["user_agent"] == "its own save ran"


def test_save_fields_writes_and_signals_as_save_with_update_fields_does(user, django_assert_num_queries):
    from django.db.models.signals import post_save, pre_save
    from django.utils import timezone

    from identity.prepared import save_fields

    seen = []

    def before(sender, instance, update_fields, raw, using, **kwargs):
        seen.append(("pre", sender, instance.pk, update_fields, raw, using))
        instance.first_name = "not written: not among the fields"

    def after(sender, instance, created, update_fields, raw, using, **kwargs):
        seen.append(("post", sender, instance.pk, created, update_fields, raw, using))

    when = timezone.now()
    user.last_login = when
    pre_save.connect(before, sender=type(user))
    post_save.connect(after, sender=type(user))
    try:
        with django_assert_num_queries(1) as captured:
            save_fields(user, ["last_login"])
    finally:
        pre_save.disconnect(before, sender=type(user))
        post_save.disconnect(after, sender=type(user))
    assert captured.captured_queries[0]["sql"].startswith("UPDATE")
    names = frozenset({"last_login"})
    assert seen == [("pre", type(user), user.pk, names, False, "default"),
                    ("post", type(user), user.pk, False, names, False, "default")]
    stored = type(user).objects.values("last_login", "first_name").get(pk=user.pk)
    assert stored["last_login"] == when
    assert stored["first_name"] != "not written: not among the fields"


def test_save_fields_refuses_a_row_that_is_gone_and_marks_the_transaction_for_rollback(user):
    from django.db import transaction
    from django.utils import timezone

    from identity.prepared import save_fields

    type(user).objects.filter(pk=user.pk).delete()
    user.last_login = timezone.now()
    with transaction.atomic():
        with pytest.raises(DatabaseError, match="did not affect any rows"):  # save(update_fields=...)'s error
            save_fields(user, ["last_login"])
        assert transaction.get_connection().needs_rollback


def test_save_fields_leaves_a_model_with_a_save_of_its_own_to_that_save(user, monkeypatch):
    from experience.models import KnownDevice
    from identity.prepared import insert, save_fields

    device = KnownDevice(user=user, key="9" * 64)
    insert(device)
    original = KnownDevice.save
    calls = []

    def save(self, *args, **kwargs):
        calls.append(kwargs.get("update_fields"))
        self.user_agent = "its own save ran"
        original(self, *args, **kwargs)

    monkeypatch.setattr(KnownDevice, "save", save)
    device.ip = "203.0.113.9"
    save_fields(device, ["ip", "user_agent"])
    assert calls == [["ip", "user_agent"]]
    row = row_of(device)
    assert (row["ip"], row["user_agent"]) == ("203.0.113.9", "its own save ran")


def test_a_sign_in_writes_last_login_in_one_update_through_the_replaced_receiver(rf, user, django_assert_num_queries):
    from django.contrib.auth.models import update_last_login
    from django.contrib.auth.signals import user_logged_in

    from identity.signals import record_last_login

    receivers = [ref() if isinstance(ref, weakref.ReferenceType) else ref for _, ref, *_ in user_logged_in.receivers]
    assert record_last_login in receivers and update_last_login not in receivers
    assert type(user).objects.get(pk=user.pk).last_login is None
    with django_assert_num_queries(1):
        user_logged_in.send(sender=type(user), request=None, user=user)
    assert type(user).objects.get(pk=user.pk).last_login == user.last_login is not None


def test_upsert_inserts_a_new_row_and_takes_over_a_taken_key_as_bulk_create_does(
        user, django_user_model, django_assert_num_queries):
    from django.db.models.signals import post_save, pre_save

    from identity.models import UserSession
    from identity.prepared import upsert

    other = django_user_model.objects.create_user("bob", "bob@example.com", "x")
    fields = ("user", "created_at", "last_seen_at", "ip", "user_agent")
    sent = []

    def listener(sender, **kwargs):
        sent.append(sender)

    pre_save.connect(listener, sender=UserSession)
    post_save.connect(listener, sender=UserSession)
    try:
        first = UserSession(user=user, session_key="u" * 32, ip="203.0.113.1", user_agent="first")
        with django_assert_num_queries(1):
            upsert(first, unique_fields=("session_key",), update_fields=fields)
        taken = UserSession(user=other, session_key="u" * 32, ip="203.0.113.2", user_agent="second")
        with django_assert_num_queries(1):
            upsert(taken, unique_fields=("session_key",), update_fields=fields)
    finally:
        pre_save.disconnect(listener, sender=UserSession)
        post_save.disconnect(listener, sender=UserSession)
    assert sent == []  # as bulk_create: no signals
    assert first.pk is not None and taken.pk == first.pk  # the row the key had
    assert not taken._state.adding
    row = row_of(taken)
    assert (row["user_id"], row["ip"], row["user_agent"]) == (other.pk, "203.0.113.2", "second")
    assert UserSession.objects.filter(session_key="u" * 32).count() == 1
    # bulk_create writes the same row the same way
    again = UserSession(user=user, session_key="u" * 32, ip="203.0.113.3", user_agent="third")
    UserSession.objects.bulk_create([again], update_conflicts=True, unique_fields=["session_key"],
                                    update_fields=list(fields))
    assert row_of(again)["user_agent"] == "third" and UserSession.objects.get().pk == first.pk


def test_delete_by_pk_deletes_that_row_in_one_statement_and_sends_signals_when_listened_to(
        user, django_assert_num_queries):
    from datetime import timedelta

    from django.contrib.sessions.models import Session
    from django.db.models.signals import post_delete
    from django.utils import timezone

    from identity.prepared import delete_by_pk

    expires = timezone.now() + timedelta(days=1)
    for key in ("a" * 32, "b" * 32, "c" * 32):
        Session.objects.create(session_key=key, session_data="x", expire_date=expires)
    with django_assert_num_queries(1):
        assert delete_by_pk(Session, "a" * 32) == 1
    assert delete_by_pk(Session, "a" * 32) == 0  # already gone
    deleted = []

    def gone(sender, instance, **kwargs):
        deleted.append(instance.session_key)

    post_delete.connect(gone, sender=Session)
    try:
        assert delete_by_pk(Session, "b" * 32) == 1  # through the collector, which sends the signal
    finally:
        post_delete.disconnect(gone, sender=Session)
    assert deleted == ["b" * 32]
    assert list(Session.objects.values_list("session_key", flat=True)) == ["c" * 32]


def test_set_if_null_claims_a_row_once_and_stores_the_value_as_update_does(confidential_app, user,
                                                                          django_assert_num_queries):
    from datetime import timedelta

    from django.core.exceptions import FieldDoesNotExist
    from django.utils import timezone

    from identity.models import AuthorizationRecord
    from identity.prepared import set_if_null

    now = timezone.now()
    records = [AuthorizationRecord.objects.create(application=confidential_app.application, user=user, auth_time=now)
               for _ in range(2)]
    with django_assert_num_queries(1):
        assert set_if_null(AuthorizationRecord, records[0].pk, "redeemed_at", now) is True
    assert set_if_null(AuthorizationRecord, records[0].pk, "redeemed_at", now + timedelta(days=1)) is False
    assert AuthorizationRecord.objects.get(pk=records[0].pk).redeemed_at == now  # the first value stays
    assert AuthorizationRecord.objects.get(pk=records[1].pk).redeemed_at is None  # another row is untouched
    assert set_if_null(AuthorizationRecord, 10**9, "redeemed_at", now) is False  # no such row
    with pytest.raises(FieldDoesNotExist):
        set_if_null(AuthorizationRecord, records[1].pk, "portcullis_no_such_field", now)


def test_set_if_null_also_sets_the_other_fields_only_when_it_claims(db, django_assert_num_queries):
    from datetime import timedelta

    from django.utils import timezone

    from experience.models import Interaction
    from identity.prepared import set_if_null

    now = timezone.now()
    Interaction.objects.create(uid="i" * 32, event=Interaction.SIGN_IN, state={"step": 1}, expires_at=now + timedelta(minutes=5))
    with django_assert_num_queries(1):
        assert set_if_null(Interaction, "i" * 32, "completed_at", now, also={"state": {"step": 2, "name": "Zoë"}})
    assert not set_if_null(Interaction, "i" * 32, "completed_at", now, also={"state": {"step": 3}})
    stored = Interaction.objects.get(uid="i" * 32)
    assert stored.completed_at == now and stored.state == {"step": 2, "name": "Zoë"}  # JSON as update() stores it


def test_audit_events_recorded_together_are_written_at_the_end_or_not_at_all(rf, user):
    from django.db import transaction

    from experience import audit
    from experience.models import AuditEvent
    from identity import later

    request = rf.get("/", REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="Firefox")
    with CaptureQueriesContext(connection) as captured, transaction.atomic(), later.together():
        audit.record(request, AuditEvent.NEW_DEVICE, user=user, identifier="alice")
        audit.record(request, AuditEvent.SIGN_IN_SUCCEEDED, user=user, identifier="alice", authenticator="password")
        assert AuditEvent.objects.count() == (0 if connection.vendor == "postgresql" else 2)  # sent at the end there
    inserts = [q["sql"] for q in captured.captured_queries if "experience_auditevent" in q["sql"] and "INSERT" in q["sql"]]
    assert len(inserts) == (1 if connection.vendor == "postgresql" else 2)
    assert list(AuditEvent.objects.order_by("created_at").values_list("kind", "ip", "user_agent")) == [
        (AuditEvent.NEW_DEVICE, "203.0.113.9", "Firefox"), (AuditEvent.SIGN_IN_SUCCEEDED, "203.0.113.9", "Firefox")]
    with pytest.raises(RuntimeError), transaction.atomic(), later.together():
        audit.record(request, AuditEvent.SIGN_IN_SUCCEEDED, user=user, identifier="alice")
        raise RuntimeError("the sign-in failed after its event was recorded")
    assert AuditEvent.objects.count() == 2  # nothing of the failed one
    audit.record(request, AuditEvent.SIGN_IN_FAILED, identifier="bob")  # outside a block: at once
    assert AuditEvent.objects.filter(kind=AuditEvent.SIGN_IN_FAILED).count() == 1


# -- insert_together(): rows written all or none, on PostgreSQL in one statement ------------------------
def token_pair(app, user, checksum):
    from datetime import timedelta

    from django.utils import timezone

    from identity.validators import RefreshToken

    access = AccessToken(user=user, application=app.application, scope="openid email",
                         expires=timezone.now() + timedelta(hours=1), token_checksum=checksum * 64,
                         resource=["https://api.example.com"])
    refresh = RefreshToken(user=user, application=app.application, access_token=access, token=checksum * 40,
                           token_checksum=checksum * 64)
    return access, refresh


def test_insert_together_writes_linked_rows_as_save_writes_them(confidential_app, user):
    from django.test.utils import CaptureQueriesContext

    from identity.prepared import insert_together

    saved_access, saved_refresh = token_pair(confidential_app, user, "a")
    saved_access.save()
    saved_refresh.save()
    for checksum in ("b", "c"):
        access, refresh = token_pair(confidential_app, user, checksum)
        with CaptureQueriesContext(connection) as captured:
            assert insert_together([access, refresh], links={1: {"access_token_id": 0}}) is True
        statements = [query["sql"] for query in captured.captured_queries if query["sql"].split()[0] != "SAVEPOINT"
                      and not query["sql"].startswith("RELEASE")]
        if connection.vendor == "postgresql":
            assert len(statements) == 1 and statements[0].startswith("WITH"), statements
        assert access.pk and refresh.pk and refresh.access_token_id == access.pk and refresh.access_token is access
        assert access._state.adding is False and refresh._state.db == "default"
        assert refresh.access_token.refresh_token == refresh  # read back through the relation
        for ours, theirs in ((access, saved_access), (refresh, saved_refresh)):
            mine, other = row_of(ours), row_of(theirs)
            assert mine.get("expires") == getattr(ours, "expires", None)
            for column in ("id", "token", "token_checksum", "created", "updated", "access_token_id", "expires"):
                mine.pop(column, None), other.pop(column, None)
            assert mine == other
        assert AccessToken.objects.get(token_checksum=checksum * 64).resource == ["https://api.example.com"]


def test_insert_together_writes_nothing_when_its_claim_was_used(confidential_app, user):
    from django.utils import timezone

    from identity.models import AuthorizationRecord
    from identity.prepared import insert_together

    record = AuthorizationRecord.objects.create(application=confidential_app.application, user=user, auth_time=timezone.now())
    first = token_pair(confidential_app, user, "d")
    claim = (AuthorizationRecord, record.pk, "redeemed_at", timezone.now())
    assert insert_together(first, links={1: {"access_token_id": 0}}, claim=claim) is True
    second = token_pair(confidential_app, user, "e")
    assert insert_together(second, links={1: {"access_token_id": 0}}, claim=claim) is False
    assert second[0].pk is None and second[1].pk is None
    assert not AccessToken.objects.filter(token_checksum="e" * 64).exists()
    assert AccessToken.objects.filter(token_checksum="d" * 64).exists()
    record.refresh_from_db()
    assert record.redeemed_at == claim[3]


def rotation(confidential_app, user, old_checksum, new_checksum):
    """A saved pair (old) and the new pair a rotation of its refresh token writes, with the claim,
    its ``also`` and the deletion insert_together takes for it."""
    from django.utils import timezone

    from identity.validators import RefreshToken

    old_access, old_refresh = token_pair(confidential_app, user, old_checksum)
    old_access.save()
    old_refresh.save()
    access, refresh = token_pair(confidential_app, user, new_checksum)
    access.source_refresh_token = old_refresh
    now = timezone.now()
    return old_access, old_refresh, [access, refresh], dict(
        links={1: {"access_token_id": 0}}, claim=(RefreshToken, old_refresh.pk, "revoked", now),
        claim_also={"access_token": None, "updated": now}, delete=(AccessToken, old_access.pk))


def test_insert_together_with_a_claims_also_and_delete_rotates_a_pair(confidential_app, user):
    from django.test.utils import CaptureQueriesContext

    from identity.prepared import insert_together

    old_access, old_refresh, pair, rotate = rotation(confidential_app, user, "g", "h")
    with CaptureQueriesContext(connection) as captured:
        assert insert_together(pair, **rotate) is True
    if connection.vendor == "postgresql":
        statements = [query["sql"] for query in captured.captured_queries]
        assert len(statements) == 1 and statements[0].startswith("WITH"), statements
    old_refresh.refresh_from_db()
    assert old_refresh.revoked == rotate["claim"][3] and old_refresh.updated == rotate["claim"][3]
    assert old_refresh.access_token_id is None
    assert not AccessToken.objects.filter(pk=old_access.pk).exists()
    assert AccessToken.objects.get(pk=pair[0].pk).source_refresh_token_id == old_refresh.pk

    # The same rotation again (a parallel refresh that lost): the claim matches nothing, so nothing
    # is deleted and nothing written.
    survivor = AccessToken.objects.get(pk=pair[0].pk)
    again = token_pair(confidential_app, user, "i")
    assert insert_together(again, **{**rotate, "delete": (AccessToken, survivor.pk)}) is False
    assert AccessToken.objects.filter(pk=survivor.pk).exists()
    assert not AccessToken.objects.filter(token_checksum="i" * 64).exists()


def test_insert_together_deletes_through_the_collector_when_a_receiver_listens(confidential_app, user):
    from django.db.models.signals import post_delete

    from identity.prepared import insert_together

    old_access, _old_refresh, pair, rotate = rotation(confidential_app, user, "j", "k")
    deleted = []

    def listener(sender, instance, **kwargs):
        deleted.append(instance.pk)

    post_delete.connect(listener, sender=AccessToken)
    try:
        assert insert_together(pair, **rotate) is True
    finally:
        post_delete.disconnect(listener, sender=AccessToken)
    assert deleted == [old_access.pk]
    assert not AccessToken.objects.filter(pk=old_access.pk).exists()


def test_insert_together_sends_pre_save_and_post_save_once_each(confidential_app, user):
    from django.db.models.signals import post_save, pre_save

    from identity.prepared import insert_together
    from identity.validators import RefreshToken

    seen = []

    def before(sender, instance, **kwargs):
        seen.append(("pre", sender.__name__, instance.pk))

    def after(sender, instance, created, **kwargs):
        seen.append(("post", sender.__name__, instance.pk, created))

    for model in (AccessToken, RefreshToken):
        pre_save.connect(before, sender=model)
        post_save.connect(after, sender=model)
    try:
        access, refresh = token_pair(confidential_app, user, "f")
        insert_together([access, refresh], links={1: {"access_token_id": 0}})
    finally:
        for model in (AccessToken, RefreshToken):
            pre_save.disconnect(before, sender=model)
            post_save.disconnect(after, sender=model)
    for name, instance in ((AccessToken.__name__, access), (RefreshToken.__name__, refresh)):
        mine = [event for event in seen if event[1] == name]
        assert mine == [("pre", name, None), ("post", name, instance.pk, True)], seen  # before the row, after


def test_insert_together_refuses_a_value_too_long_for_its_column_and_writes_nothing(confidential_app, user):
    """A string is never cut to fit (as a cast to varchar(n) would cut it): the database refuses it."""
    from datetime import timedelta

    from django.db import DataError, transaction
    from django.utils import timezone

    from identity.models import AuthorizationRecord
    from identity.prepared import insert_together
    from identity.validators import Grant

    if connection.vendor != "postgresql":
        pytest.skip("SQLite does not enforce a column's length (the suite's PostgreSQL run does)")
    grant = Grant(application=confidential_app.application, user=user, code="too-long-record",
                  expires=timezone.now() + timedelta(minutes=1), redirect_uri="https://rp.example.com/cb", scope="openid")
    record = AuthorizationRecord(grant=grant, application=confidential_app.application, user=user,
                                 auth_time=timezone.now(), acr="x" * 101)  # the column is varchar(100)
    with pytest.raises(DataError), transaction.atomic():
        insert_together([grant, record], links={1: {"grant_id": 0}})
    assert not Grant.objects.filter(code="too-long-record").exists()
    record.acr = "x" * 100
    grant.pk = None
    assert insert_together([grant, record], links={1: {"grant_id": 0}}) is True
    assert AuthorizationRecord.objects.get(grant__code="too-long-record").acr == "x" * 100


def test_insert_together_refuses_an_unsaved_related_object_it_does_not_link(confidential_app, user, django_user_model):
    """As save() does: a row pointing at an object that has no row yet would lose that relation."""
    from identity.prepared import insert_together

    access, refresh = token_pair(confidential_app, user, "h")
    refresh.user = django_user_model(username="not-saved-yet")
    with pytest.raises(ValueError, match="unsaved related object"):
        insert_together([access, refresh], links={1: {"access_token_id": 0}})
    assert not AccessToken.objects.filter(token_checksum="h" * 64).exists()


def test_insert_answers_what_it_is_also_asked_as_of_before_its_row_on_postgresql(user, django_assert_num_queries):
    """``insert(..., also=...)``: on PostgreSQL the row and the answer in one statement, the
    answer not seeing the row being written; elsewhere None (the caller asks apart)."""
    from django.utils import timezone

    from experience.models import KnownDevice
    from identity.prepared import insert

    also = ('EXISTS (SELECT 1 FROM "experience_knowndevice" WHERE "user_id" = %s)', [user.pk])
    answers = []
    for key in ("a" * 64, "b" * 64):
        device = KnownDevice(user=user, key=key, user_agent="", ip=None, created_at=timezone.now(),
                             last_seen_at=timezone.now())
        with django_assert_num_queries(1):
            answers.append(insert(device, also=also))
        assert device.pk is not None and KnownDevice.objects.get(pk=device.pk).key == key
    assert answers == ([(False,), (True,)] if connection.vendor == "postgresql" else [None, None])


@postgresql_only
def test_the_code_look_up_follows_the_unique_indexes_on_tables_postgresql_has_no_statistics_of(
        confidential_app, user):
    """The code exchange's prepared look-up, planned as PostgreSQL plans a prepared statement for
    good (its generic plan) on tables never analyzed (autovacuum off, or before its first run):
    it must reach the grant by its code and the record by its grant through their unique indexes,
    not scan either table on every exchange (with ``LIMIT 1`` it did: the default estimates made
    hundreds of rows of the joins, the first of which a scan would find early)."""
    from datetime import timedelta

    from django.utils import timezone

    from identity.models import AuthorizationRecord
    from identity.validators import Grant, _grants

    application = confidential_app.application
    grants = Grant.objects.bulk_create(
        Grant(user=user, application=application, code=f"plan-{index:05d}", expires=timezone.now() + timedelta(minutes=1),
              redirect_uri="https://rp.example.com/cb", scope="openid") for index in range(3000))
    AuthorizationRecord.objects.bulk_create(
        AuthorizationRecord(grant=grant, application=application, user=user, auth_time=timezone.now())
        for grant in grants)
    sql = _grants._compile("default").sql
    assert sql.count("%s") == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stats WHERE tablename IN ('oauth2_provider_grant', "
                       "'identity_authorizationrecord')")
        assert cursor.fetchone()[0] == 0  # no statistics: the case this is about
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("PREPARE portcullis_code_plan(text) AS " + sql.replace("%s", "$1"))
        try:
            cursor.execute("EXPLAIN EXECUTE portcullis_code_plan('plan-01234')")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE portcullis_code_plan")
    assert "Seq Scan on oauth2_provider_grant" not in plan, plan
    assert "Seq Scan on identity_authorizationrecord" not in plan, plan
    assert "Index Scan using identity_authorizationrecord_grant_id_key" in plan, plan
    assert _grants.get("plan-01234").portcullis_record.grant_id == grants[1234].pk
