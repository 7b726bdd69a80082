"""identity.later: writes that nothing reads back, sent together when a block ends (one statement on
PostgreSQL), at once elsewhere or outside a transaction; what they answer reaches ``then`` when sent."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.db import DatabaseError, connection, transaction
from django.db.models.signals import post_save
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from experience import audit
from experience.models import AuditEvent, KnownDevice
from identity import later, sessions
from identity.models import UserSession
from tests.helpers import PASSWORD, authorize_params, pkce_pair, sign_in_url_from

pytestmark = pytest.mark.django_db


def writes(captured: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in captured.captured_queries
            if not query["sql"].startswith(("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT", "ROLLBACK"))]


def queue_a_sign_ins_writes(request: Any, user: Any, answers: list[Any]) -> KnownDevice:
    """What a sign-in sends together: an old session's row deleted, the new session tracked,
    last_login, a new device (asking whether the account had one), an audit event."""
    later.delete_by_pk(Session, "o" * 32)
    later.upsert(UserSession(user=user, session_key="n" * 32, created_at=timezone.now(), last_seen_at=timezone.now()),
                 unique_fields=("session_key",), update_fields=("user", "created_at", "last_seen_at"))
    user.last_login = timezone.now()
    later.save_fields(user, ["last_login"])
    device = KnownDevice(user=user, key="d" * 64, created_at=timezone.now(), last_seen_at=timezone.now())
    later.insert(device, also=("EXISTS (SELECT 1 FROM experience_knowndevice WHERE user_id = %s)", [user.pk]),
                 then=answers.append)
    audit.record(request, AuditEvent.SIGN_IN_SUCCEEDED, user=user, identifier="alice", authenticator="password")
    return device


def test_a_blocks_writes_are_sent_when_it_ends_in_one_statement_on_postgresql(rf, user):
    Session.objects.create(session_key="o" * 32, session_data="{}", expire_date=timezone.now())
    saved: list[str] = []

    def listener(sender: Any, instance: Any, **kwargs: Any) -> None:
        saved.append(type(instance).__name__)

    post_save.connect(listener, sender=KnownDevice)
    answers: list[Any] = []
    request = rf.get("/", REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="Firefox")
    try:
        with CaptureQueriesContext(connection) as captured, transaction.atomic(), later.together():
            device = queue_a_sign_ins_writes(request, user, answers)
            if connection.vendor == "postgresql":  # nothing sent yet, nothing answered yet
                assert writes(captured) == [] and answers == [] and device.pk is None and saved == []
                assert Session.objects.filter(session_key="o" * 32).exists()
                assert not AuditEvent.objects.exists() and not UserSession.objects.exists()
                captured.initial_queries = len(captured.connection.queries_log)  # what the block sends, below
    finally:
        post_save.disconnect(listener, sender=KnownDevice)
    sent = writes(captured)
    if connection.vendor == "postgresql":
        assert len(sent) == 1 and sent[0].startswith("WITH"), sent
        for table in ("django_session", "identity_usersession", "auth_user", "experience_knowndevice",
                      "experience_auditevent"):
            assert table in sent[0]
    else:  # at once, each
        assert len(sent) >= 5
    assert not Session.objects.filter(session_key="o" * 32).exists()
    assert UserSession.objects.get(session_key="n" * 32).user_id == user.pk
    user.refresh_from_db()
    assert user.last_login is not None
    assert KnownDevice.objects.get().pk == device.pk and saved == ["KnownDevice"]
    # whether the account had a device before this one, asked in the INSERT (not elsewhere)
    assert answers == ([(False,)] if connection.vendor == "postgresql" else [None])
    assert list(AuditEvent.objects.values_list("kind", "ip")) == [(AuditEvent.SIGN_IN_SUCCEEDED, "203.0.113.9")]


def test_an_exception_in_the_block_sends_nothing_and_answers_nothing(rf, user):
    Session.objects.create(session_key="o" * 32, session_data="{}", expire_date=timezone.now())
    answers: list[Any] = []
    with pytest.raises(RuntimeError), transaction.atomic(), later.together():
        queue_a_sign_ins_writes(rf.get("/"), user, answers)
        raise RuntimeError("the sign-in failed after its writes were queued")
    assert answers == [] or connection.vendor != "postgresql"
    assert Session.objects.filter(session_key="o" * 32).exists()
    assert not UserSession.objects.exists() and not KnownDevice.objects.exists() and not AuditEvent.objects.exists()
    audit.record(rf.get("/"), AuditEvent.SIGN_IN_FAILED, identifier="bob")  # outside a block: at once
    assert AuditEvent.objects.filter(kind=AuditEvent.SIGN_IN_FAILED).count() == 1


def test_a_queued_update_that_matches_no_row_fails_the_whole_transaction(rf, user, django_user_model):
    gone = django_user_model.objects.create_user("gone", password=PASSWORD)
    django_user_model.objects.filter(pk=gone.pk).delete()  # the instance still has its pk
    with pytest.raises(DatabaseError), transaction.atomic(), later.together():
        audit.record(rf.get("/"), AuditEvent.SIGN_IN_SUCCEEDED, user=user, identifier="alice")
        gone.last_login = timezone.now()
        later.save_fields(gone, ["last_login"])
    assert not AuditEvent.objects.exists()  # rolled back with it


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_block_writes_at_once(rf, user):
    answers: list[Any] = []
    with CaptureQueriesContext(connection) as captured, later.together():
        device = KnownDevice(user=user, key="e" * 64, created_at=timezone.now(), last_seen_at=timezone.now())
        later.insert(device, also=("EXISTS (SELECT 1 FROM experience_knowndevice WHERE user_id = %s)", [user.pk]),
                     then=answers.append)
        assert KnownDevice.objects.filter(pk=device.pk).exists() and len(answers) == 1
    assert not any(sql.startswith("WITH") for sql in writes(captured))


def test_counting_the_expressions_of_also():
    assert later._expressions("EXISTS (SELECT 1, 2 FROM t WHERE a = %s)") == 1
    assert later._expressions("1, 'a,b', coalesce(x, y)") == 3


@pytest.mark.django_db(transaction=True)  # the sign-in commits for real
def test_a_sign_in_from_a_new_browser_sends_its_writes_in_one_statement_and_kills_the_old_key(
        flow, confidential_app, user, mailoutbox):
    from django.conf import settings

    KnownDevice.objects.create(user=user, key="f" * 64, created_at=timezone.now(), last_seen_at=timezone.now())
    sign_in = sign_in_url_from(flow.authorize(authorize_params(confidential_app, pkce_pair()[1])))
    before = flow.client.cookies[settings.SESSION_COOKIE_NAME].value
    with CaptureQueriesContext(connection) as captured:
        response = flow.client.post(sign_in, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 303
    if connection.vendor == "postgresql":
        together = [sql for sql in writes(captured) if sql.startswith("WITH")]
        assert len(together) == 1, writes(captured)
    # the old key is signed in nowhere, the new one is tracked, the device told about by e-mail
    assert not Session.objects.filter(session_key=before).exists()
    after = flow.client.cookies[settings.SESSION_COOKIE_NAME].value
    assert UserSession.objects.get(user=user).session_key == after
    assert Session.objects.get(session_key=after).get_decoded()[sessions.TRACK_KEY]["at"] == after
    assert KnownDevice.objects.filter(user=user).count() == 2
    assert AuditEvent.objects.filter(kind=AuditEvent.NEW_DEVICE, user=user).count() == 1
    if connection.vendor == "postgresql":  # the device's event went with the device's row
        assert "experience_auditevent" in together[0]
        assert not any(sql.startswith("INSERT") for sql in writes(captured) if "experience_auditevent" in sql)
    assert [message.to for message in mailoutbox] == [[user.email]]


def test_a_session_marked_by_an_earlier_release_is_moved_by_its_row(user, confidential_app):
    """A session whose mark holds the row's id (and its key's SHA-256), as releases before the key
    itself was kept: when its key changes, its row follows."""
    browser = Client()
    browser.force_login(user)
    key = browser.session.session_key
    row = UserSession.objects.get(session_key=key)
    session = browser.session
    session[sessions.TRACK_KEY] = {"row": row.pk, "key": sessions._digest(key), "seen": int(time.time())}
    session.save()
    session.cycle_key()  # what a step-up does: a new key for the same signed-in user
    request = type("Request", (), {"session": session, "META": {}})()
    sessions._remember(request, user.pk)
    assert UserSession.objects.get(pk=row.pk).session_key == session.session_key != key
    assert UserSession.objects.filter(user=user).count() == 1
    assert session[sessions.TRACK_KEY]["at"] == session.session_key


def test_a_queued_rows_pre_save_receiver_is_heard_before_its_values_are_read(rf, user):
    """As save() and identity.prepared.insert() do: pre_save first, then the row's values."""
    from django.db.models.signals import pre_save

    def stamp(sender: Any, instance: Any, **kwargs: Any) -> None:
        instance.reason = "stamped by a receiver"

    pre_save.connect(stamp, sender=AuditEvent)
    try:
        with transaction.atomic(), later.together():
            audit.record(rf.get("/"), AuditEvent.SIGN_IN_SUCCEEDED, user=user, identifier="alice")
    finally:
        pre_save.disconnect(stamp, sender=AuditEvent)
    assert AuditEvent.objects.get().reason == "stamped by a receiver"
