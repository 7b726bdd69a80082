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

    def _compile(self, db: str) -> _Compiled:
        connection = connections[db]
        compiled_by_db = getattr(self._local, "compiled", None)
        if compiled_by_db is None:
            compiled_by_db = self._local.compiled = {}
        compiled = compiled_by_db.get(db)
        if compiled is None or compiled.compiler.connection is not connection:
            compiler = self.build(*self.placeholders).query.get_compiler(using=db)
            sql, params = compiler.as_sql()
            slots = [(position, self.placeholders.index(param)) for position, param in enumerate(params)
                     if _is_placeholder(param, self.placeholders)]
            if {index for _, index in slots} != set(range(len(self.placeholders))):
                raise ImproperlyConfigured(f"a placeholder of {self.build!r} is missing from its SQL: {sql}")
            compiled = compiled_by_db[db] = _Compiled(compiler, sql, list(params), slots, db)
        return compiled

    def _rows(self, values: tuple[Any, ...], db: str, many: bool) -> tuple[_Compiled, list[Any]]:
        """(the compiled query, the rows through the fields' converters): all of them, or at most one."""
        compiled = self._compile(db)
        params = compiled.params.copy()
        for position, index in compiled.slots:
            params[position] = values[index]
        with _cursor(db) as cursor:
            cursor.execute(compiled.sql, params)
            if many:
                rows = cursor.fetchall()
            else:
                row = cursor.fetchone()
                rows = [] if row is None else [row]
        if rows and compiled.converters:
            rows = list(compiled.compiler.apply_converters(rows, compiled.converters))
        return compiled, rows

    def values(self, *values: Any, db: str = "default") -> tuple[Any, ...] | None:
        """The first row as a tuple, through the fields' converters (a ``values_list`` query's)."""
        _, rows = self._rows(values, db, many=False)
        return tuple(rows[0]) if rows else None

    def instances(self, *values: Any, db: str = "default") -> list[Any]:
        """Every row as a model instance, with its ``select_related`` objects."""
        compiled, rows = self._rows(values, db, many=True)
        return [compiled.instance(row) for row in rows]


class _Compiled:
    """One query compiled for one database: its SQL, where the values go, and what turns its rows
    into values and instances (the converters, the related populators), all worked out once, as
    Django's ``ModelIterable`` works them out once per queryset."""

    def __init__(self, compiler: Any, sql: str, params: list[Any], slots: list[tuple[int, int]], db: str) -> None:
        self.compiler, self.sql, self.params, self.slots, self.db = compiler, sql, params, slots, db
        fields = [column[0] for column in compiler.select[0:compiler.col_count]]
        if compiler.has_composite_fields(fields):
            raise ImproperlyConfigured("a prepared query cannot select a composite primary key")
        self.converters = compiler.get_converters(fields)
        klass_info = compiler.klass_info
        if klass_info is not None:  # a query of model instances, not a values_list
            select_fields = klass_info["select_fields"]
            self.start, self.end = select_fields[0], select_fields[-1] + 1
            self.model = klass_info["model"]
            self.init_list = [column[0].target.attname for column in compiler.select[self.start:self.end]]
            self.populators = get_related_populators(klass_info, compiler.select, db)

    def instance(self, row: Any) -> Any:
        instance = self.model.from_db(self.db, self.init_list, row[self.start:self.end])
        for populator in self.populators:
            populator.populate(row, instance)
        return instance


class PreparedLookup(PreparedQuery):
    """One row looked up by one unique value: ``build(value)`` answers the queryset for it."""

    def __init__(self, build: Callable[[Any], QuerySet[Any]]) -> None:
        super().__init__(lambda value: build(value)[:1])

    def get(self, value: Any, db: str = "default") -> Any | None:
        compiled, rows = self._rows((value,), db, many=False)
        return compiled.instance(rows[0]) if rows else None


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
