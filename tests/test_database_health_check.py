"""config.postgresql: a kept connection is checked by asking the kernel, and only a connection with
something to say (or in a state it cannot judge) pays Django's ``SELECT 1``.

Each test opens a connection of its own to the test database (outside the test's transaction), as a
worker with ``CONN_MAX_AGE`` keeps one between requests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, connections

from config.postgresql.base import DatabaseWrapper

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def kept() -> Iterator[DatabaseWrapper]:
    if connection.vendor != "postgresql":
        pytest.skip("the PostgreSQL backend's health check: runs in the PostgreSQL pass")
    wrapper = DatabaseWrapper({**connection.settings_dict, "CONN_MAX_AGE": 600, "CONN_HEALTH_CHECKS": True},
                              alias="kept")
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


def next_request(wrapper: DatabaseWrapper, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What Django does before a request's first query; returns the answers of each SELECT 1 it sent."""
    sent: list[bool] = []
    is_usable = wrapper.is_usable

    def counted() -> bool:
        sent.append(usable := is_usable())
        return usable

    monkeypatch.setattr(wrapper, "is_usable", counted)
    wrapper.health_check_done = False  # a new request (django.db's request_started handler)
    wrapper.close_if_health_check_failed()
    return sent


def backend_pid(wrapper: DatabaseWrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def test_a_quiet_kept_connection_is_used_without_a_round_trip(kept: DatabaseWrapper,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(connections["default"], DatabaseWrapper)  # config.settings chose this backend for PostgreSQL
    pid = backend_pid(kept)
    assert next_request(kept, monkeypatch) == []
    assert kept.connection is not None and backend_pid(kept) == pid  # the same connection, no reconnect


def test_a_connection_the_server_ended_is_checked_and_replaced(kept: DatabaseWrapper,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pid = backend_pid(kept)
    with connection.cursor() as cursor:  # an administrator (or a restart) ends the kept backend
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert cursor.fetchone()[0] is True
    deadline = time.monotonic() + 10
    while kept.quiet() and time.monotonic() < deadline:  # the server's goodbye reaches the socket
        time.sleep(0.01)
    assert next_request(kept, monkeypatch) == [False]  # Django's check ran, found it dead ...
    assert kept.connection is None  # ... and closed it
    assert backend_pid(kept) != pid  # the request's first query runs on a new connection


def test_a_connection_inside_a_transaction_gets_django_s_check(kept: DatabaseWrapper,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    connection_: Any = kept.connection
    with connection_.cursor() as cursor:  # left open by something outside Django's request cycle
        cursor.execute("BEGIN")
        cursor.execute("SELECT 1")
    assert not kept.quiet()
    assert next_request(kept, monkeypatch) == [True]
