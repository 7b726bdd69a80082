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
docs/configuration.md). The lookups stay in Django's query log (with their SQL once prepared too:
psycopg keeps the text only of a statement it did not prepare, which Django's log reads), the
database errors stay Django's, and the transaction is the request's.

New rows on the same paths (the grant and its record, the token pair, audit events, the sign-in's
session row) are written by :func:`insert` (the session row by :func:`upsert`), whose ``INSERT`` is built once per model and database
the same way, a sign-in's ``last_login`` by :func:`save_fields`, a session's ``DELETE`` by
:func:`delete_by_pk`, and a single-use thing's
consumption (an ``UPDATE`` that matches only while a field is NULL) by :func:`set_if_null`. Rows
that belong together (the code and its record; the token pair, written only if the code's
consumption matches) are written by :func:`insert_together`, on PostgreSQL in one statement.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections, router, transaction
from django.db.models import Field, Model, QuerySet, signals
from django.db.models.constants import OnConflict
from django.db.models.query import get_related_populators  # type: ignore[attr-defined]  # Django internal
from django.db.models.sql import InsertQuery

_PLACEHOLDER = "portcullis-prepared-lookup-placeholder"

try:
    from django.db.backends.postgresql.base import (  # type: ignore[attr-defined]  # only with psycopg 3
        ServerBindingCursor as _ServerBindingCursor,
    )
except (ImportError, ImproperlyConfigured):  # no psycopg 3 (psycopg2, or no PostgreSQL driver at all)
    _ServerBindingCursor = None

_LoggedServerBindingCursor: Any = None  # the cursor class of _cursor() on PostgreSQL, with psycopg 3
if _ServerBindingCursor is not None:
    class _KeepsPreparedText(_ServerBindingCursor):
        """Django's server-binding cursor that keeps the statement it executes prepared as psycopg
        keeps one it does not prepare (``_query``): Django's query log (``connection.queries``,
        ``django.db.backends`` at DEBUG, the query counts of the tests and of ``bench_tasks.py
        costs``) reads its text from there, and would show ``None`` for a prepared statement."""

        def _send_query_prepared(self, name: bytes, pgq: Any, *, binary: bool | None = None) -> None:
            self._query = pgq
            super()._send_query_prepared(name, pgq, binary=binary)

    _LoggedServerBindingCursor = _KeepsPreparedText


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
            self.annotations = list(compiler.annotation_col_map.items())  # set on the instance, as Django does

    def instance(self, row: Any) -> Any:
        instance = self.model.from_db(self.db, self.init_list, row[self.start:self.end])
        for populator in self.populators:
            populator.populate(row, instance)
        for name, position in self.annotations:
            setattr(instance, name, row[position])
        return instance


class PreparedLookup(PreparedQuery):
    """One row looked up by one unique value: ``build(value)`` answers the queryset for it. The
    ``placeholder`` compiles in the value's place: a string, or a value of the field's type that no
    row has (an integer for an integer key).

    The SQL has no ``LIMIT 1``: the value is unique and ``select_related`` joins are to-one, so
    there is at most one row anyway, and a ``LIMIT`` misleads PostgreSQL's generic plan of a
    prepared statement on tables it has no statistics of (never analyzed, as with autovacuum off):
    it then expects the first of the hundreds of rows its default estimates make of the joins to
    come early and scans whole tables for it (the code exchange's look-up sequentially scanned
    the grants and their records on every exchange) instead of following the unique indexes."""

    def __init__(self, build: Callable[[Any], QuerySet[Any]], placeholder: Any = _PLACEHOLDER) -> None:
        super().__init__(build, (placeholder,))

    def get(self, value: Any, db: str = "default") -> Any | None:
        compiled, rows = self._rows((value,), db, many=False)
        return compiled.instance(rows[0]) if rows else None


def _is_placeholder(param: Any, placeholders: tuple[Any, ...]) -> bool:
    return any(type(param) is type(placeholder) and param == placeholder for placeholder in placeholders)


def _cursor(db: str) -> Any:
    """A cursor of ``db``'s connection that binds on the server (so that psycopg may prepare) on
    PostgreSQL with psycopg 3; Django's own cursor anywhere else."""
    connection = connections[db]
    if connection.vendor != "postgresql" or _LoggedServerBindingCursor is None:
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:  # as BaseDatabaseWrapper._cursor(), with another cursor class
        return connection._prepare_cursor(_LoggedServerBindingCursor(connection.connection))  # type: ignore[attr-defined]


class _CompiledInsert:
    """The ``INSERT`` of one model's row on one database, as ``Model.save()`` writes a new row
    (every local concrete field but an unset auto primary key; the database's ``RETURNING``
    columns read back through their converters), with its SQL worked out once."""

    def __init__(self, model: type[Model], db: str, pk_set: bool, conflict: Conflict | None = None) -> None:
        connection = connections[db]
        meta = model._meta
        self.connection = connection
        self.fields = [field for field in meta.local_concrete_fields
                       if not field.generated and (pk_set or field is not meta.auto_field)]
        self.returning = list(meta.db_returning_fields)
        quote = connection.ops.quote_name
        on_conflict = OnConflict.UPDATE if conflict else None
        sql = (f"{connection.ops.insert_statement(on_conflict=on_conflict)} {quote(meta.db_table)} "
               f"({', '.join(quote(field.column) for field in self.fields)}) "
               f"VALUES ({', '.join(['%s'] * len(self.fields))})")
        if conflict:  # unique fields, fields to update: bulk_create(update_conflicts=True)'s suffix
            unique, update = ([_column(model, name).column for name in names] for names in conflict)
            sql = f"{sql} {connection.ops.on_conflict_suffix_sql(self.fields, on_conflict, update, unique)}"
        self.returning_params: tuple[Any, ...] = ()
        self.converters: dict[int, Any] = {}
        self.compiler: Any = None
        if self.returning:
            returning_sql, self.returning_params = connection.ops.return_insert_columns(self.returning)
            sql = f"{sql} {returning_sql}" if returning_sql else sql
            self.compiler = InsertQuery(model).get_compiler(using=db)
            self.converters = self.compiler.get_converters([field.get_col(meta.db_table) for field in self.returning])
        self.sql = sql

    def values(self, instance: Model) -> list[Any] | None:
        """The row's values as ``SQLInsertCompiler`` prepares them, or None when one is an
        expression (whose SQL is not a plain placeholder)."""
        prepared = []
        for field in self.fields:
            value = field.pre_save(instance, True)
            if hasattr(value, "resolve_expression"):
                return None
            prepared.append(field.get_db_prep_save(value, connection=self.connection))
        return prepared


_inserts = threading.local()
Conflict = tuple[tuple[str, ...], tuple[str, ...]]  # upsert's unique fields and fields to update
_MODEL_METHODS = ("save", "save_base", "_save_table", "_do_insert")


def _insertable(model: type[Model], db: str) -> bool:
    """Whether a new row of ``model`` may be written by :func:`insert`: a model that saves as
    Django's ``Model`` does (no override of its save path, no parents, no ordering field, no
    field with a placeholder of its own), on PostgreSQL or SQLite with ``RETURNING``."""
    meta = model._meta
    connection = connections[db]
    return (all(getattr(model, name) is getattr(Model, name) for name in _MODEL_METHODS)
            and not meta.parents and not meta.proxy and not meta.auto_created and not meta.order_with_respect_to
            and not any(hasattr(field, "get_placeholder") for field in meta.local_concrete_fields)
            and connection.vendor in ("postgresql", "sqlite")
            and (not meta.db_returning_fields or connection.features.can_return_columns_from_insert))


def _compiled_insert(model: type[Model], db: str, pk_set: bool, conflict: Conflict | None = None) -> _CompiledInsert | None:
    """The ``INSERT`` of ``model`` on ``db`` built once per thread, or None for a model that
    :func:`_insertable` rules out."""
    compiled_by_key = getattr(_inserts, "compiled", None)
    if compiled_by_key is None:
        compiled_by_key = _inserts.compiled = {}
    key = (model, db, pk_set, conflict)
    compiled: _CompiledInsert | None = compiled_by_key.get(key)
    if key not in compiled_by_key or (compiled is not None and compiled.connection is not connections[db]):
        compiled = compiled_by_key[key] = (_CompiledInsert(model, db, pk_set, conflict) if _insertable(model, db)
                                           else None)
    return compiled


def _set_returned(compiled: _CompiledInsert, instance: Model, row: Any) -> None:
    if compiled.converters:
        row = next(compiled.compiler.apply_converters([row], compiled.converters))
    for value, field in zip(row, compiled.returning, strict=True):
        setattr(instance, field.attname, value)


def insert(instance: Model, using: str | None = None, also: tuple[str, Sequence[Any]] | None = None) -> tuple[Any, ...] | None:
    """Write a new ``instance`` as ``instance.save(force_insert=True, using=using)`` does (the
    same statement, ``pre_save`` and ``post_save`` sent, the instance's state and returned
    columns set, an error of the database marking the transaction for rollback), without
    building the ``INSERT`` anew each time: the hot paths' rows (tokens, audit events, session
    rows). A model that saves in any other way is saved by ``save()`` itself.

    ``also``, SQL expressions (comma-separated) and their parameters: on PostgreSQL the same
    statement answers them too, in its ``RETURNING`` clause, where a subquery sees the tables as
    they were before this row (``EXISTS (SELECT ...)`` of the row's siblings, say); answers their
    values, or None where they were not asked (another database, or a row Django's compiler
    wrote), for the caller to ask apart."""
    db, compiled = insert_target(instance, using)
    if compiled is None:
        instance.save(force_insert=True, using=db)
        return None
    answered: tuple[Any, ...] | None = None
    signals.pre_save.send(sender=type(instance), instance=instance, raw=False, using=db, update_fields=None)
    with transaction.mark_for_rollback_on_error(using=db):
        statement = insert_statement(compiled, instance, also)
        if statement is None:  # an expression: Django's compiler writes it
            instance._save_table(raw=False, cls=type(instance), force_insert=True, force_update=False,  # type: ignore[attr-defined]
                                 using=db, update_fields=None)
        else:
            with _cursor(db) as cursor:
                cursor.execute(*statement)
                row = (compiled.connection.ops.fetch_returned_insert_columns(cursor, compiled.returning_params)
                       if compiled.returning else None)
            answered = inserted(compiled, instance, row, also)
    saved(instance, db, created=True)
    return answered


def insert_target(instance: Model, using: str | None = None) -> tuple[str, _CompiledInsert | None]:
    """Where :func:`insert` writes a new ``instance`` and its ``INSERT`` there (None for a row
    ``save()`` writes); the instance's related objects checked and its primary key made as
    ``save()`` does."""
    meta = instance._meta
    db = using or router.db_for_write(type(instance), instance=instance)
    instance._prepare_related_fields_for_save(operation_name="save")  # type: ignore[attr-defined]
    if not instance._is_pk_set(meta):  # type: ignore[attr-defined]
        setattr(instance, meta.pk.attname, meta.pk.get_pk_value_on_save(instance))  # type: ignore[attr-defined]
    return db, _compiled_insert(type(instance), db, instance._is_pk_set(meta))  # type: ignore[attr-defined]


def insert_statement(compiled: _CompiledInsert, instance: Model,
                     also: tuple[str, Sequence[Any]] | None = None) -> tuple[str, list[Any]] | None:
    """The SQL and parameters of ``instance``'s ``INSERT`` (with ``also`` in its ``RETURNING`` on
    PostgreSQL), or None when a value is an expression (Django's compiler writes that row)."""
    values = compiled.values(instance)
    if values is None:
        return None
    if also is not None and compiled.returning and compiled.connection.vendor == "postgresql":
        return f"{compiled.sql}, {also[0]}", [*values, *compiled.returning_params, *also[1]]
    return compiled.sql, [*values, *compiled.returning_params]


def inserted(compiled: _CompiledInsert, instance: Model, row: Any,
             also: tuple[str, Sequence[Any]] | None = None) -> tuple[Any, ...] | None:
    """Set the returned columns of :func:`insert_statement`'s ``row`` on ``instance``; answers the
    values of ``also`` (None where the statement did not ask them)."""
    if not compiled.returning:
        return None
    _set_returned(compiled, instance, row[:len(compiled.returning)])
    if also is not None and compiled.connection.vendor == "postgresql":
        return tuple(row[len(compiled.returning):])
    return None


def saved(instance: Model, db: str, *, created: bool, update_fields: frozenset[str] | None = None) -> None:
    """What ``save()`` does once the row is written: the instance's state, then ``post_save``."""
    instance._state.db = db
    instance._state.adding = False
    signals.post_save.send(sender=type(instance), instance=instance, created=created, update_fields=update_fields,
                           raw=False, using=db)


_SAVE_PATH = ("save_base", "_save_table", "_do_update")


def _saves_plainly(instance: Model) -> bool:
    """Whether ``instance.save(update_fields=...)`` would be Django's own path: no override of it
    (``AbstractBaseUser.save`` counts as none while no new password waits to be announced), no
    parents, not a proxy."""
    from django.contrib.auth.base_user import AbstractBaseUser

    model = type(instance)
    meta = model._meta
    save = model.save
    return (all(getattr(model, name) is getattr(Model, name) for name in _SAVE_PATH)
            and (save is Model.save or (save is AbstractBaseUser.save and getattr(instance, "_password", None) is None))
            and not meta.parents and not meta.proxy and not meta.select_on_save)


def save_fields(instance: Model, field_names: Sequence[str], using: str | None = None) -> None:
    """Write ``field_names`` of the saved ``instance`` as ``instance.save(update_fields=field_names)``
    does (``pre_save`` and ``post_save`` sent with those ``update_fields``, one ``UPDATE`` by primary
    key, ``DatabaseError`` when it matched no row, an error of the database marking the transaction
    for rollback), without Django's query compiler (and on PostgreSQL prepared, as the lookups): a
    sign-in's ``last_login``. A model that saves in another way, or a field that is not a plain
    column of its own table, is saved by ``save()`` itself."""
    db = using or router.db_for_write(type(instance), instance=instance)
    fields = plain_fields(instance, field_names)
    if fields is None:
        instance.save(update_fields=list(field_names), using=db)
        return
    names = frozenset(field_names)
    signals.pre_save.send(sender=type(instance), instance=instance, raw=False, using=db, update_fields=names)
    with transaction.mark_for_rollback_on_error(using=db):
        statement = update_statement(instance, fields, db)
        if statement is None:  # an expression: Django's compiler writes it
            instance._save_table(raw=False, cls=type(instance), force_insert=False, force_update=False,  # type: ignore[attr-defined]
                                 using=db, update_fields=names)
        else:
            with _cursor(db) as cursor:
                cursor.execute(*statement)
                if not cursor.rowcount:
                    raise DatabaseError(NO_ROW_UPDATED)
    saved(instance, db, created=False, update_fields=names)


NO_ROW_UPDATED = "Save with update_fields did not affect any rows."  # Django's words


def plain_fields(instance: Model, field_names: Sequence[str]) -> list[Field[Any, Any]] | None:
    """The fields :func:`save_fields` writes with its own ``UPDATE``, or None when ``save()`` must
    (a model that saves in another way, a field that is not a plain column of its own table)."""
    model = type(instance)
    fields = [model._meta._forward_fields_map.get(name) for name in field_names]  # type: ignore[attr-defined]
    if (not field_names or instance.pk is None or not _saves_plainly(instance)
            or not all(isinstance(field, Field) and field.concrete and not field.primary_key
                       and not field.generated and field.model is model for field in fields)):
        return None
    return fields


def update_statement(instance: Model, fields: Sequence[Field[Any, Any]], db: str) -> tuple[str, list[Any]] | None:
    """The ``UPDATE`` by primary key of :func:`plain_fields` (their ``pre_save`` values), or None
    when a value is an expression (Django's compiler writes it)."""
    meta = instance._meta
    connection = connections[db]
    values = [field.pre_save(instance, False) for field in fields]
    if any(hasattr(value, "resolve_expression") for value in values):
        return None
    quote = connection.ops.quote_name
    sql = (f"UPDATE {quote(meta.db_table)} SET "
           f"{', '.join(f'{quote(field.column)} = %s' for field in fields)} "
           f"WHERE {quote(meta.pk.column)} = %s")
    return sql, [*(field.get_db_prep_save(value, connection=connection) for field, value in zip(fields, values, strict=True)),
                 meta.pk.get_db_prep_value(instance.pk, connection)]


def upsert(instance: Model, unique_fields: Sequence[str], update_fields: Sequence[str], using: str | None = None) -> None:
    """Write ``instance`` as ``bulk_create([instance], update_conflicts=True, unique_fields=...,
    update_fields=...)`` does: one ``INSERT ... ON CONFLICT (...) DO UPDATE``, no signals, the
    returned primary key set on the instance (the existing row's, when it was updated), an error
    of the database marking the transaction for rollback. The statement is built once per model,
    database and fields. A model :func:`insert` leaves to ``save()``, or a database that cannot
    return the row of an upsert, goes through ``bulk_create`` itself."""
    db, compiled = upsert_target(instance, unique_fields, update_fields, using)
    values = compiled.values(instance) if compiled is not None else None
    if compiled is None or values is None:
        type(instance)._default_manager.db_manager(db).bulk_create(
            [instance], update_conflicts=True, unique_fields=list(unique_fields), update_fields=list(update_fields))
        return
    with transaction.mark_for_rollback_on_error(using=db), _cursor(db) as cursor:
        cursor.execute(compiled.sql, [*values, *compiled.returning_params])
        if compiled.returning:
            _set_returned(compiled, instance,
                          compiled.connection.ops.fetch_returned_insert_columns(cursor, compiled.returning_params))
    instance._state.db = db
    instance._state.adding = False


def upsert_target(instance: Model, unique_fields: Sequence[str], update_fields: Sequence[str],
                  using: str | None = None) -> tuple[str, _CompiledInsert | None]:
    """Where :func:`upsert` writes ``instance`` and its statement there (None where ``bulk_create``
    must)."""
    meta = instance._meta
    db = using or router.db_for_write(type(instance), instance=instance)
    features = connections[db].features
    if not (features.supports_update_conflicts_with_target and features.can_return_rows_from_bulk_insert):
        return db, None
    instance._prepare_related_fields_for_save(operation_name="bulk_create")  # type: ignore[attr-defined]
    if not instance._is_pk_set(meta):  # type: ignore[attr-defined]
        setattr(instance, meta.pk.attname, meta.pk.get_pk_value_on_save(instance))  # type: ignore[attr-defined]
    conflict = (tuple(unique_fields), tuple(update_fields))
    return db, _compiled_insert(type(instance), db, instance._is_pk_set(meta), conflict)  # type: ignore[attr-defined]


def delete_by_pk(model: type[Model], pk: Any, using: str | None = None) -> int:
    """Delete the row of ``model`` with primary key ``pk`` as ``model.objects.filter(pk=pk).delete()``
    does, in one statement without the collector: for a model nothing points to (no reverse
    relations to cascade) and no ``pre_delete`` / ``post_delete`` receiver listens to, where the
    collector would send exactly that statement too. Otherwise through the collector. How many
    rows went."""
    db = using or router.db_for_write(model)
    statement = delete_statement(model, pk, db)
    if statement is None:
        deleted, _ = model._base_manager.using(db).filter(pk=pk).delete()
        return deleted
    with transaction.mark_for_rollback_on_error(using=db), _cursor(db) as cursor:
        cursor.execute(*statement)
        return int(cursor.rowcount)


def delete_statement(model: type[Model], pk: Any, db: str, detached: Collection[Any] = ()) -> tuple[str, list[Any]] | None:
    """:func:`delete_by_pk`'s ``DELETE``, or None where the collector must delete (see there).
    ``detached``: one-to-one fields pointing to ``model`` that the caller answers hold no
    reference to the row by the time the statement's constraints are checked (it sets the one
    that did to NULL in the same statement or transaction); the collector would only have done that."""
    meta = model._meta
    if (meta.parents or signals.pre_delete.has_listeners(model) or signals.post_delete.has_listeners(model)
            or any(not (relation.one_to_one and relation.field in detached) for relation in meta.related_objects)):
        return None
    return _delete_sql(model, connections[db]), [meta.pk.get_db_prep_value(pk, connections[db])]


def _delete_sql(model: type[Model], connection: Any, using: str = "") -> str:
    """The ``DELETE`` of one row of ``model`` by primary key (a placeholder), joined ``USING``
    another relation's rows when given (so that it deletes only if that one has a row)."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    return (f"DELETE FROM {table}{' USING ' + using if using else ''} "
            f"WHERE {table}.{quote(model._meta.pk.column)} = %s")


def set_if_null(model: type[Model], pk: Any, field_name: str, value: Any, using: str | None = None, *,
                also: Mapping[str, Any] | None = None) -> bool:
    """Set ``field_name`` to ``value`` (and each field of ``also`` to its value) on the row of
    ``model`` with primary key ``pk`` only while that field is NULL, as
    ``model.objects.filter(pk=pk, <field>__isnull=True).update(<field>=value, **also)`` does (one
    statement, no signals, a database error marking the transaction for rollback), without Django's
    query compiler (and on PostgreSQL prepared, as the lookups): whether it matched the row. A
    single-use thing is used by whoever this answers True for: a parallel caller's ``UPDATE`` waits
    for the winner's row lock (on PostgreSQL), then matches nothing."""
    db = using or router.db_for_write(model)
    connection = connections[db]
    also = also or {}
    with transaction.mark_for_rollback_on_error(using=db), _cursor(db) as cursor:
        cursor.execute(_set_if_null_sql(model, field_name, connection, tuple(also)),
                       _set_if_null_params(model, pk, field_name, value, connection, also))
        return bool(cursor.rowcount)


def _column(model: type[Model], field_name: str) -> Field[Any, Any]:
    field = model._meta.get_field(field_name)
    assert isinstance(field, Field) and field.column, f"{field_name} is not a column of {model._meta.label}"
    return field


def _set_if_null_sql(model: type[Model], field_name: str, connection: Any, also: tuple[str, ...] = ()) -> str:
    """:func:`set_if_null`'s ``UPDATE``, with the placeholders of the ``also`` fields' values, then
    the value's and the primary key's."""
    quote = connection.ops.quote_name
    column = quote(_column(model, field_name).column)
    others = "".join(f"{quote(_column(model, name).column)} = %s, " for name in also)
    return (f"UPDATE {quote(model._meta.db_table)} SET {others}{column} = %s "
            f"WHERE {quote(model._meta.pk.column)} = %s AND {column} IS NULL")


def _set_if_null_params(model: type[Model], pk: Any, field_name: str, value: Any, connection: Any,
                        also: Mapping[str, Any] | None = None) -> list[Any]:
    """:func:`_set_if_null_sql`'s parameters, in its placeholders' order."""
    return [*(_column(model, name).get_db_prep_save(each, connection=connection) for name, each in (also or {}).items()),
            _column(model, field_name).get_db_prep_save(value, connection=connection),
            model._meta.pk.get_db_prep_value(pk, connection)]


Claim = tuple[type[Model], Any, str, Any]  # set_if_null's (model, primary key, field name, value)
# A string column (not an array of them): its values are cast to text, and the column refuses a
# value too long for it, where a cast to varchar(n) would cut the value short without a word.
_TEXT_TYPE = re.compile(r"(varchar|character varying|char|character|text|citext)(\(\d+\))?")


def insert_together(instances: Sequence[Model], links: Mapping[int, Mapping[str, int]] | None = None,
                    claim: Claim | None = None, using: str | None = None, *,
                    claim_also: Mapping[str, Any] | None = None, delete: tuple[type[Model], Any] | None = None) -> bool:
    """Write the new rows ``instances``, all or none, each as :func:`insert` writes it (``pre_save``
    and ``post_save`` sent, the returned columns set on the instance). ``links`` says, by an
    instance's position, which of its foreign keys (attnames) take the new primary key of an
    earlier instance (by position). With ``claim``, the rows are written only when
    :func:`set_if_null` of it matches: a single-use thing consumed with them, and if it was used
    already nothing is written. ``claim_also`` sets more fields of the claimed row with it (as
    :func:`set_if_null`'s ``also``), and ``delete`` (model, primary key) deletes a row with the
    claim, only if it matches: a row whose one reference is the claimed row's, which ``claim_also``
    sets to None (a rotated refresh token's access token). Answers whether they were written.

    On PostgreSQL it is one statement: the claim's ``UPDATE`` and each ``INSERT`` a data-modifying
    ``WITH`` query, each ``INSERT`` selecting from the claim and from the rows it links to. One
    statement is atomic on its own, so outside a transaction it needs no ``BEGIN`` and ``COMMIT``;
    a claim that another transaction holds is waited for, then found used, and nothing is written.
    The statement is worked out once per thread for each combination of models, links and claim.
    Elsewhere, and for rows :func:`insert` leaves to ``save()``, it is the claim and then each
    :func:`insert` in one transaction."""
    links = links or {}
    also = dict(claim_also or {})
    if not instances:
        raise ValueError("insert_together needs at least one instance")
    if (also or delete is not None) and claim is None:
        raise ValueError("claim_also and delete go with a claim")
    db = using or router.db_for_write(type(instances[0]), instance=instances[0])
    connection = connections[db]
    deletion = None
    if delete is not None:
        assert claim is not None
        detached = [claim[0]._meta.get_field(name) for name, value in also.items() if value is None]
        deletion = delete_statement(delete[0], delete[1], db, detached=detached)
    plan = None
    if connection.vendor == "postgresql":
        for instance in instances:
            meta = instance._meta
            if not instance._is_pk_set(meta):  # type: ignore[attr-defined]
                setattr(instance, meta.pk.attname, meta.pk.get_pk_value_on_save(instance))  # type: ignore[attr-defined]
        if delete is None or deletion is not None:
            plan = _together_plan(instances, links, claim, db, tuple(also), delete[0] if delete else None)
    if plan is None:
        with transaction.atomic(using=db):
            if claim is not None and not set_if_null(*claim, using=db, also=also):
                return False
            if delete is not None:
                if deletion is None:  # the collector, and its signals
                    delete[0]._base_manager.using(db).filter(pk=delete[1]).delete()
                else:
                    with _cursor(db) as cursor:
                        cursor.execute(*deletion)
            for position, instance in enumerate(instances):
                _link(instance, links.get(position, {}), instances)
                insert(instance, using=db)
        return True
    for position, instance in enumerate(instances):
        if plan.related[position]:  # (an empty set would mean every field to Django)
            instance._prepare_related_fields_for_save(  # type: ignore[attr-defined]
                operation_name="save", fields=plan.related[position])
        signals.pre_save.send(sender=type(instance), instance=instance, raw=False, using=db, update_fields=None)
    params: list[Any] = [] if claim is None else _set_if_null_params(*claim, connection, also)
    if deletion is not None:
        params += deletion[1]
    with transaction.mark_for_rollback_on_error(using=db):
        for instance, each, skipped in zip(instances, plan.inserts, plan.linked, strict=True):
            values = each.values(instance)
            if values is None:
                raise ImproperlyConfigured(f"insert_together cannot write an expression ({type(instance).__name__})")
            params += [value for index, value in enumerate(values) if index not in skipped]
        with _cursor(db) as cursor:
            cursor.execute(plan.sql, params)
            row = cursor.fetchone()
    if row is None:
        return False  # the claim matched nothing: no row was written
    start = 0
    for instance, each in zip(instances, plan.inserts, strict=True):
        if each.returning:
            _set_returned(each, instance, row[start:start + len(each.returning)])
            start += len(each.returning)
    for position, instance in enumerate(instances):
        _link(instance, links.get(position, {}), instances)
        instance._state.db = db
        instance._state.adding = False
        signals.post_save.send(sender=type(instance), instance=instance, created=True, update_fields=None, raw=False,
                               using=db)
    return True


class _TogetherPlan:
    """The statement of one :func:`insert_together` combination on one PostgreSQL database."""

    def __init__(self, sql: str, inserts: list[_CompiledInsert], linked: list[frozenset[int]],
                 related: list[frozenset[Any]]) -> None:
        self.sql = sql
        self.inserts = inserts  # each instance's INSERT (its columns, values and returned columns)
        self.linked = linked  # per instance, the positions of its values that come from an earlier row
        # per instance, the relations checked for unsaved objects (not the linked ones): a set, as
        # Django tests each field's membership
        self.related = related


_plans = threading.local()


def _together_plan(instances: Sequence[Model], links: Mapping[int, Mapping[str, int]], claim: Claim | None,
                   db: str, also: tuple[str, ...] = (), delete: type[Model] | None = None) -> _TogetherPlan | None:
    """The one statement that writes ``instances`` (and makes ``claim``) on PostgreSQL, built once
    per thread for the combination; None when one of them is a row :func:`insert` leaves to ``save()``."""
    connection = connections[db]
    key = (db, tuple((type(instance), instance._is_pk_set(instance._meta)) for instance in instances),  # type: ignore[attr-defined]
           tuple(sorted((position, tuple(sorted(linked.items()))) for position, linked in links.items())),
           (claim[0], claim[2], also) if claim is not None else None, delete)
    by_key = getattr(_plans, "by_key", None)
    if by_key is None:
        by_key = _plans.by_key = {}
    plan: _TogetherPlan | None = by_key.get(key)
    inserts = [_compiled_insert(type(instance), db, pk_set) for instance, (_, pk_set) in zip(instances, key[1], strict=True)]
    if plan is not None and all(a is b for a, b in zip(inserts, plan.inserts, strict=True)):
        return plan
    if any(each is None for each in inserts):
        return None
    compiled: list[_CompiledInsert] = [each for each in inserts if each is not None]
    quote = connection.ops.quote_name
    withs: list[str] = []
    claimed: list[str] = []
    if claim is not None:
        withs.append(f'"claim" AS ({_set_if_null_sql(claim[0], claim[2], connection, also)} RETURNING 1)')
        claimed = ['"claim"']
    if delete is not None:  # after the claim's placeholders, before the rows'; only if it matched
        withs.append(f'"gone" AS ({_delete_sql(delete, connection, using=claimed[0])})')
    selected: list[str] = []
    linked_positions: list[frozenset[int]] = []
    related: list[frozenset[Any]] = []
    for position, (instance, each) in enumerate(zip(instances, compiled, strict=True)):
        linked = links.get(position, {})
        expressions, skipped = [], set()
        for index, field in enumerate(each.fields):
            if field.attname in linked:
                target = instances[linked[field.attname]]
                if target._meta.pk not in compiled[linked[field.attname]].returning:
                    raise ImproperlyConfigured("a linked row's primary key must be made by the database")
                expressions.append(f'"row{linked[field.attname]}".{quote(target._meta.pk.column)}')
                skipped.add(index)
                continue
            db_type = str(field.db_type(connection) or "").lower().strip()
            # A bare %s in a SELECT list would be text (and NULL text), whatever the column.
            cast = "text" if _TEXT_TYPE.fullmatch(db_type) else field.cast_db_type(connection)  # type: ignore[attr-defined]
            expressions.append(f"CAST(%s AS {cast})")
        sources = claimed + [f'"row{source}"' for source in sorted(set(linked.values()))]
        returning = [quote(field.column) for field in each.returning] or ["1"]
        withs.append(f'"row{position}" AS ({connection.ops.insert_statement(on_conflict=None)} '
                     f"{quote(instance._meta.db_table)} ({', '.join(quote(field.column) for field in each.fields)}) "
                     f"SELECT {', '.join(expressions)}{' FROM ' + ', '.join(sources) if sources else ''} "
                     f"RETURNING {', '.join(returning)})")
        selected += [f'"row{position}".{quote(field.column)}' for field in each.returning]
        linked_positions.append(frozenset(skipped))
        related.append(frozenset(field for field in instance._meta.concrete_fields
                                 if field.is_relation and field.attname not in linked))
    rows = ", ".join(f'"row{position}"' for position in range(len(instances)))
    sql = f"WITH {', '.join(withs)} SELECT {', '.join(selected) or '1'} FROM {rows}"
    plan = by_key[key] = _TogetherPlan(sql, compiled, linked_positions, related)
    return plan


def _link(instance: Model, linked: Mapping[str, int], instances: Sequence[Model]) -> None:
    """Point ``instance``'s linked foreign keys at the (written) instances they link to, through
    the relation, so that its cache (and a one-to-one's reverse cache) holds those very objects."""
    for attname, source in linked.items():
        setattr(instance, instance._meta.get_field(attname).name, instances[source])
