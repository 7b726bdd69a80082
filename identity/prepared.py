"""Lookups on the hot paths, compiled to SQL once per process, and on PostgreSQL planned once per
connection.

Compiling a query with several ``select_related`` joins costs more CPU than running it. The
endpoints that run on every request (userinfo, token, authorize) look rows up by one unique value,
so the SQL never changes: it is compiled once and then only executed, and the rows become model
instances exactly as Django's own ``ModelIterable`` makes them (same converters, same related
object caches).

Planning the same joins costs PostgreSQL more than running them, too (the token endpoint's
six-table lookup of a code: about 0.6 ms to plan, 0.1 ms to run). Django sends every query with
its values inlined (client-side binding), so PostgreSQL plans each one anew. On PostgreSQL with
psycopg 3 these lookups go through a server-binding cursor on the same connection instead:
psycopg prepares a statement once it has run ``prepare_threshold`` times on a connection (5 by
default) and then only executes it. ``DATABASES[...]["OPTIONS"]["prepare_threshold"] = None``
turns that off, for a connection pooler that cannot keep prepared statements (PgBouncer before
1.21, or without ``max_prepared_statements``; ``DATABASE_PREPARE_THRESHOLD`` in
docs/configuration.md). The lookups stay in Django's query log, the database errors stay
Django's, and the transaction is the request's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.models import QuerySet
from django.db.models.query import get_related_populators  # type: ignore[attr-defined]  # Django internal

_PLACEHOLDER = "portcullis-prepared-lookup-placeholder"

try:
    from django.db.backends.postgresql.base import (  # type: ignore[attr-defined]  # only with psycopg 3
        ServerBindingCursor as _ServerBindingCursor,
    )
except (ImportError, ImproperlyConfigured):  # no psycopg 3 (psycopg2, or no PostgreSQL driver at all)
    _ServerBindingCursor = None


class PreparedQuery:
    """A queryset whose SQL is the same for every value it is built with: built and compiled once
    per thread and database with ``placeholders`` in the values' places, then run with the values
    put where the placeholders were (each may appear several times, e.g. one user id in three
    subqueries). ``build`` must not branch on the values: it is called once, to compile."""

    def __init__(self, build: Callable[..., QuerySet[Any]], placeholders: tuple[Any, ...] = (_PLACEHOLDER,)) -> None:
        self.build, self.placeholders = build, placeholders
        # Per thread, like database connections: the compiler's converters belong to the
        # connection it was compiled for.
        self._local = threading.local()

    def _compile(self, db: str) -> tuple[Any, str, list[Any], list[tuple[int, int]]]:
        connection = connections[db]
        compiled_by_db = getattr(self._local, "compiled", None)
        if compiled_by_db is None:
            compiled_by_db = self._local.compiled = {}
        compiled = compiled_by_db.get(db)
        if compiled is None or compiled[0].connection is not connection:
            compiler = self.build(*self.placeholders).query.get_compiler(using=db)
            sql, params = compiler.as_sql()
            slots = [(position, self.placeholders.index(param)) for position, param in enumerate(params)
                     if _is_placeholder(param, self.placeholders)]
            if {index for _, index in slots} != set(range(len(self.placeholders))):
                raise ImproperlyConfigured(f"a placeholder of {self.build!r} is missing from its SQL: {sql}")
            compiled = compiled_by_db[db] = (compiler, sql, list(params), slots)
        return compiled

    def _rows(self, values: tuple[Any, ...], db: str, many: bool) -> tuple[Any, list[Any]]:
        """(the compiler, the rows through the fields' converters): all of them, or at most one."""
        compiler, sql, params, slots = self._compile(db)
        params = params.copy()
        for position, index in slots:
            params[position] = values[index]
        with _cursor(db) as cursor:
            cursor.execute(sql, params)
            if many:
                rows = cursor.fetchall()
            else:
                row = cursor.fetchone()
                rows = [] if row is None else [row]
        return compiler, list(compiler.results_iter([rows]))

    def values(self, *values: Any, db: str = "default") -> tuple[Any, ...] | None:
        """The first row as a tuple, through the fields' converters (a ``values_list`` query's)."""
        _, rows = self._rows(values, db, many=False)
        return tuple(rows[0]) if rows else None

    def instances(self, *values: Any, db: str = "default") -> list[Any]:
        """Every row as a model instance, with its ``select_related`` objects."""
        compiler, rows = self._rows(values, db, many=True)
        return [self._instance(compiler, row, db) for row in rows]

    @staticmethod
    def _instance(compiler: Any, row: tuple[Any, ...], db: str) -> Any:
        klass_info, select = compiler.klass_info, compiler.select
        fields = klass_info["select_fields"]
        start, end = fields[0], fields[-1] + 1
        init_list = [column[0].target.attname for column in select[start:end]]
        instance = klass_info["model"].from_db(db, init_list, row[start:end])
        for populator in get_related_populators(klass_info, select, db):
            populator.populate(row, instance)
        return instance


class PreparedLookup(PreparedQuery):
    """One row looked up by one unique value: ``build(value)`` answers the queryset for it."""

    def __init__(self, build: Callable[[Any], QuerySet[Any]]) -> None:
        super().__init__(lambda value: build(value)[:1])

    def get(self, value: Any, db: str = "default") -> Any | None:
        compiler, rows = self._rows((value,), db, many=False)
        return self._instance(compiler, rows[0], db) if rows else None


def _is_placeholder(param: Any, placeholders: tuple[Any, ...]) -> bool:
    return any(type(param) is type(placeholder) and param == placeholder for placeholder in placeholders)


def _cursor(db: str) -> Any:
    """A cursor of ``db``'s connection that binds on the server (so that psycopg may prepare) on
    PostgreSQL with psycopg 3; Django's own cursor anywhere else."""
    connection = connections[db]
    if connection.vendor != "postgresql" or _ServerBindingCursor is None:
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:  # as BaseDatabaseWrapper._cursor(), with another cursor class
        return connection._prepare_cursor(_ServerBindingCursor(connection.connection))  # type: ignore[attr-defined]
