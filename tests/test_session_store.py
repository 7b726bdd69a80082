"""``identity.session_store``: Django's cached_db sessions with fewer round trips. A cycled key is
written once (by the response), the old row is gone at once, a taken key is never reused, and a
hosted password sign-in changes the browser's key exactly once, writing the new row in the
sign-in's own transaction (one commit), and a rolled-back sign-in leaves no session without its row."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client

from identity import session_store
from identity.session_store import SessionStore
from tests.helpers import PASSWORD, authorize_params, database_work, pkce_pair, sign_in_url_from

pytestmark = pytest.mark.django_db


def saved_session(**data: Any) -> SessionStore:
    session = SessionStore()
    session.update(data)
    session.save()
    return session


def test_the_standalone_server_uses_this_store() -> None:
    assert settings.SESSION_ENGINE == "identity.session_store"


def test_a_cycled_key_gets_its_row_when_saved_and_the_old_one_is_gone_at_once() -> None:
    session = saved_session(colour="green")
    old = session.session_key
    assert old is not None
    session.cycle_key()
    new = session.session_key
    assert new not in (None, old)
    # The old key reaches nothing any more, in the database and in the cache alike.
    assert not Session.objects.filter(session_key=old).exists() and not SessionStore().exists(old)
    assert SessionStore(old).load() == {}
    session["size"] = "large"
    session.save()
    row = Session.objects.get(session_key=new)
    assert row.get_decoded() == {"colour": "green", "size": "large"}
    cache.clear()  # from the database too, not only the cache
    assert SessionStore(new).load() == {"colour": "green", "size": "large"}
    session.save()  # a second save updates the row it made
    assert Session.objects.filter(session_key=new).count() == 1


def test_cycling_and_saving_writes_the_new_row_once() -> None:
    session = saved_session(colour="green")
    with database_work() as work:
        session.cycle_key()
        session["size"] = "large"
        session.save()
    writes = [sql.split(None, 1)[0].upper() for sql in work.statements]
    assert writes == ["DELETE", "INSERT"], work.ordered  # no lookup of the key, no second write


def test_a_new_key_that_is_taken_is_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = saved_session(owner="someone else")
    keys = iter([taken.session_key, "k" * 32])
    monkeypatch.setattr(session_store, "get_random_string", lambda *args: next(keys))
    session = SessionStore()
    session["owner"] = "me"
    session.save()
    assert session.session_key == "k" * 32
    assert SessionStore(taken.session_key).load() == {"owner": "someone else"}  # untouched


def test_a_cycled_key_that_is_taken_is_replaced_before_the_row_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = saved_session(owner="someone else")
    session = saved_session(owner="me")
    keys = iter([taken.session_key, "c" * 32])
    monkeypatch.setattr(session_store, "get_random_string", lambda *args: next(keys))
    session.cycle_key()
    session.save()
    assert session.session_key == "c" * 32
    assert SessionStore("c" * 32).load() == {"owner": "me"}
    assert Session.objects.get(session_key=taken.session_key).get_decoded() == {"owner": "someone else"}


def test_a_flushed_session_after_a_cycle_starts_anew() -> None:
    session = saved_session(colour="green")
    session.cycle_key()
    cycled = session.session_key
    session.flush()
    assert session.session_key is None
    session["fresh"] = True
    session.save()
    assert session.session_key not in (None, cycled)
    assert not Session.objects.filter(session_key=cycled).exists()


@pytest.mark.django_db(transaction=True)  # the row is written in the sign-in's transaction: commits are real here
def test_a_password_sign_in_changes_the_browser_key_once(flow, confidential_app, user) -> None:
    sign_in = sign_in_url_from(flow.authorize(authorize_params(confidential_app, pkce_pair()[1])))
    before = flow.client.cookies[settings.SESSION_COOKIE_NAME].value
    with database_work() as work:
        response = flow.client.post(sign_in, {"identifier": "alice", "password": PASSWORD, "authenticator": "password"})
    assert response.status_code == 303
    after = flow.client.cookies[settings.SESSION_COOKIE_NAME].value
    assert after != before
    session_writes = [sql for sql in work.statements if '"django_session"' in sql and not sql.startswith("SELECT")]
    if connection.vendor == "postgresql":  # both with the sign-in's other writes (identity.later)
        assert len(session_writes) == 1 and session_writes[0].startswith("WITH"), session_writes
        assert 'DELETE FROM "django_session"' in session_writes[0] and 'INSERT INTO "django_session"' in session_writes[0]
    else:
        assert [sql.split(None, 1)[0] for sql in session_writes] == ["DELETE", "INSERT"], session_writes
    # The key from before the password (fixed by an attacker, say) is signed in nowhere.
    assert not Session.objects.filter(session_key=before).exists()
    fixed = Client()
    fixed.cookies[settings.SESSION_COOKIE_NAME] = before
    assert "_auth_user_id" not in fixed.session
    assert str(user.pk) == flow.client.session["_auth_user_id"]


def cycled(**data: Any) -> tuple[SessionStore, str]:
    session = saved_session(**data)
    session.cycle_key()
    assert session.session_key is not None
    return session, session.session_key


@pytest.mark.django_db(transaction=True)
def test_a_row_written_in_a_committed_transaction_is_not_written_again() -> None:
    session, key = cycled(colour="green")
    with transaction.atomic():
        assert session.save_in_transaction()
    assert Session.objects.get(session_key=key).get_decoded() == {"colour": "green"}
    assert SessionStore(key).load() == {"colour": "green"}  # the cache was set on commit
    with database_work() as work:
        session.save()  # the response's save: nothing changed since
    assert work.statements == [], work.ordered
    session["size"] = "large"  # a change after the sign-in's commit is written as usual
    session.save()
    cache.clear()
    assert SessionStore(key).load() == {"colour": "green", "size": "large"}


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_sign_in_leaves_no_session_without_its_row() -> None:
    session, key = cycled(colour="green")
    with pytest.raises(RuntimeError), transaction.atomic():
        assert session.save_in_transaction()
        raise RuntimeError("the sign-in failed after the session's row was written")
    assert not Session.objects.filter(session_key=key).exists()  # rolled back with the sign-in
    session.save()  # the response's save inserts it again
    cache.clear()
    assert Session.objects.get(session_key=session.session_key).get_decoded() == {"colour": "green"}
    assert SessionStore(session.session_key).load() == {"colour": "green"}


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_or_for_a_key_with_a_row_nothing_is_written_early() -> None:
    session = saved_session(colour="green")
    with transaction.atomic():
        assert not session.save_in_transaction()  # not cycled: its row exists, the response updates it
    session.cycle_key()
    assert not session.save_in_transaction()  # no transaction to join: the response inserts it
    assert not Session.objects.filter(session_key=session.session_key).exists()
    session.save()
    assert Session.objects.get(session_key=session.session_key).get_decoded() == {"colour": "green"}



def test_a_key_cycled_away_reads_as_signed_out_and_cannot_be_saved_or_emptied() -> None:
    session = saved_session(colour="green", _auth_user_id="1")
    old = session.session_key
    session.cycle_key()
    session.save()
    # A request still carrying the old key (a double-submitted form) loads it after the cycle.
    late = SessionStore(old)
    assert late.load() == {} and late.cycled_away and late.session_key is None
    assert not late.is_empty()  # so Django's middleware does not delete the browser's cookie
    late["next"] = "/somewhere/"
    with pytest.raises(UpdateError):  # SessionMiddleware: SessionInterrupted, a 400 that sets no cookie
        late.save()
    assert Session.objects.count() == 1 and SessionStore(session.session_key).load()["colour"] == "green"
    assert not SessionStore().exists(old)
    asynchronous = SessionStore(old)
    assert async_to_sync(asynchronous.aload)() == {} and asynchronous.cycled_away  # the async API alike
    # A sign-in in that very request is a sign-in: its new key is saved as usual.
    late.cycle_key()
    late.save()
    assert late.session_key not in (None, old) and SessionStore(late.session_key).load() == {"next": "/somewhere/"}


def test_a_key_that_never_existed_or_was_signed_out_is_still_emptied() -> None:
    never = SessionStore("n" * 32)
    assert never.load() == {} and not never.cycled_away and never.is_empty()
    session = saved_session(_auth_user_id="1")
    old = session.session_key
    session.flush()  # a sign-out: no marker, the old key is simply gone
    late = SessionStore(old)
    assert late.load() == {} and not late.cycled_away and late.is_empty()


@pytest.mark.django_db(transaction=True)
def test_a_double_submitted_sign_in_answered_last_leaves_the_browser_signed_in(flow, confidential_app, user) -> None:
    sign_in = sign_in_url_from(flow.authorize(authorize_params(confidential_app, pkce_pair()[1])))
    before = flow.client.cookies[settings.SESSION_COOKIE_NAME].value
    form = {"identifier": "alice", "password": PASSWORD, "authenticator": "password"}
    assert flow.client.post(sign_in, form).status_code == 303
    signed_in = flow.client.cookies[settings.SESSION_COOKIE_NAME].value
    # The form's second submission, with the cookie from before, is answered after the first.
    second = Client()
    second.cookies[settings.SESSION_COOKIE_NAME] = before
    answers = [second.post(sign_in, form), second.get(sign_in), second.get("/account/connected-apps/")]
    for answer in answers:
        assert answer.status_code < 500
        assert settings.SESSION_COOKIE_NAME not in answer.cookies, (answer.status_code, answer.cookies)
    assert "_auth_user_id" not in second.session  # the old key is signed in nowhere
    browser = Client()
    browser.cookies[settings.SESSION_COOKIE_NAME] = signed_in
    assert browser.session["_auth_user_id"] == str(user.pk)


def test_a_stale_cookie_of_no_parallel_sign_in_is_deleted_as_django_does(client: Client) -> None:
    client.cookies[settings.SESSION_COOKIE_NAME] = "s" * 32
    response = client.get("/account/connected-apps/")
    assert response.status_code == 302
    assert response.cookies[settings.SESSION_COOKIE_NAME].value == ""


@pytest.mark.parametrize("key, data, empty", [
    (None, None, True),  # never loaded: Django raises and catches an AttributeError here
    (None, {}, True),
    (None, {"a": 1}, False),
    ("k" * 32, None, False),
    ("k" * 32, {}, False),
])
def test_is_empty_answers_as_djangos(key: str | None, data: dict[str, Any] | None, empty: bool) -> None:
    from django.contrib.sessions.backends.cached_db import SessionStore as Djangos

    ours, theirs = SessionStore(key), Djangos(key)
    for store in (ours, theirs):
        if data is not None:
            store._session_cache = dict(data)
    assert ours.is_empty() is theirs.is_empty() is empty


def test_the_serializer_is_the_setting_s_taken_when_first_used(settings) -> None:
    store = SessionStore()
    assert "serializer" not in store.__dict__  # not imported for a request that never uses its session
    settings.SESSION_SERIALIZER = "tests.test_session_store.UpperSerializer"
    store["greeting"] = "hello"
    store.save()
    assert SessionStore(store.session_key).serializer is UpperSerializer
    row = Session.objects.get(session_key=store.session_key)  # the cache keeps the data itself
    assert SessionStore().decode(row.session_data) == {"greeting": "HELLO"}


class UpperSerializer:
    """A session serializer that writes strings upper-cased: a session that used it can be told."""

    def dumps(self, obj: Any) -> bytes:
        import json
        return json.dumps({k: v.upper() if isinstance(v, str) else v for k, v in obj.items()}).encode()

    def loads(self, data: bytes) -> Any:
        import json
        return json.loads(data)
