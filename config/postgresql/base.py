"""Django's PostgreSQL backend with a health check that costs no round trip when nothing happened.

With ``CONN_HEALTH_CHECKS`` Django checks a kept connection (``CONN_MAX_AGE``) before each request's
first query by sending ``SELECT 1`` and waiting for the answer: one more statement for every
request that uses the database. A connection that the server ended (a restart, a crash, an
administrator's ``pg_terminate_backend``, an idle timeout) has something to read when nothing was
asked of it: the server's last error message, or the end of the stream. So this backend first asks
the kernel, without waiting, whether the idle connection's socket has anything to read. Nothing to
read, and the connection is idle (no transaction open, not marked broken): it is used as it is.
Anything else (something to read, a transaction open, a closed or broken connection, a driver that
does not say) gets Django's own check, ``SELECT 1``, which reconnects a dead connection.

A server that vanished without closing its side (a host gone, a cable cut) is not seen by either
check until a statement times out; ``connect_timeout`` and the TCP keepalive settings bound that.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base

IDLE = 0  # the libpq transaction status of a connection outside any transaction (psycopg 2 and 3)
UNREAD = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP


class DatabaseWrapper(base.DatabaseWrapper):
    # Set by Django's base wrapper and its PostgreSQL pool property; django-stubs does not declare them.
    health_check_enabled: bool
    health_check_done: bool
    pool: object

    def close_if_health_check_failed(self) -> None:
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and not self.pool
            and self.quiet()
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def quiet(self) -> bool:
        """Whether the kept connection is idle and the server has sent nothing since its last answer."""
        connection = self.connection
        try:
            if connection.closed or getattr(connection, "broken", False):
                return False
            if connection.info.transaction_status != IDLE:
                return False
            poller = select.poll()
            poller.register(connection.fileno(), UNREAD)
            return not poller.poll(0)
        except Exception:  # noqa: BLE001  a driver or state this does not know: Django's check decides
            return False
