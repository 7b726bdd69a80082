"""Writes that nothing after them in the same transaction reads back, sent together: on PostgreSQL
in one statement when a :func:`together` block ends, each write a data-modifying ``WITH`` query of
it; elsewhere, or outside a block, each at once, as :mod:`identity.prepared` writes it.

A browser sign-in makes several such writes beside its checks: the old session's row goes, the
new one is written, the session is tracked, ``last_login`` is set, the browser is recorded as one
of the account's devices, the sign-in is audited. None of them is read again in the request, and
none needs another's outcome, so they need not go one round trip each:
``experience.interaction.submit`` opens a block inside the sign-in's transaction, and each writer
here (:func:`insert`, :func:`upsert`, :func:`save_fields`, :func:`delete_by_pk`) queues its
statement while a block is open on its database.

What the block keeps:

- **The transaction.** A block outside ``transaction.atomic`` queues nothing (every write goes at
  once), so what it sends commits or rolls back with the writes made before it. An exception
  inside the block drops what it queued, as the transaction's rollback would.
- **Each write's outcome.** What a statement answers (the new row's primary key, an ``also``'s
  values, whether an ``UPDATE`` matched) is known when the block ends: the writer's ``then`` is
  called with it then, in the order the writes were queued (at once outside a block), and a
  ``save_fields`` that matched no row raises ``DatabaseError`` there, in the transaction.
- **Signals.** ``pre_save`` is sent when a write is queued, ``post_save`` when it was sent.

What a caller must keep: the writes of one block see the database as it was when the statement
began (PostgreSQL runs the data-modifying ``WITH`` queries of a statement on one snapshot, and
none of them sees another's rows), so a block never writes one row twice, no queued write needs
another's row (a foreign key to a row queued in the same block), and nothing in the block reads a
row a queued write changes. Writes made at once inside the block (an ``UPDATE`` whose count the
caller needs, a row whose primary key it needs) are seen by the queued ones, as in any
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, router, transaction
from django.db.models import Model, signals

from identity import prepared

Then = Callable[[Any], None]


@dataclass
class _Write:
    sql: str
    params: list[Any]
    returns: int  # how many columns of its RETURNING the statement reads back (0: none)
    done: Callable[[tuple[Any, ...] | None], None]  # called with them once sent (None: no row came back)


# The open block: its database and the writes queued so far; None outside one.
_open: ContextVar[tuple[str, list[_Write]] | None] = ContextVar("portcullis_later", default=None)


@contextmanager
def together(using: str | None = None) -> Iterator[None]:
    """Send the writes queued inside the block (on database ``using``) when it ends: one statement
    on PostgreSQL. Use it inside the transaction the writes belong to."""
    db = using or DEFAULT_DB_ALIAS
    connection = connections[db]
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        yield  # every write at once
        return
    writes: list[_Write] = []
    token = _open.set((db, writes))
    try:
        yield
    finally:
        _open.reset(token)
    _send(db, writes)


def _queue(db: str) -> list[_Write] | None:
    opened = _open.get()
    if opened is None or opened[0] != db:
        return None
    return opened[1]


def _send(db: str, writes: list[_Write]) -> None:
    if not writes:
        return
    if len(writes) == 1:
        sql, params = writes[0].sql, writes[0].params
    else:
        # Each write a query of one WITH; the final SELECT reads what they answer, a row of NULLs
        # for one that answered no row (LEFT JOIN), one row in all.
        answering = [position for position, write in enumerate(writes) if write.returns]
        sql = ("WITH " + ", ".join(f'"w{position}" AS ({write.sql})' for position, write in enumerate(writes))
               + " SELECT " + (", ".join(f'"w{position}".*' for position in answering) or "1")
               + ' FROM (SELECT 1) AS "one"' + "".join(f' LEFT JOIN "w{position}" ON TRUE' for position in answering))
        params = [param for write in writes for param in write.params]
    with transaction.mark_for_rollback_on_error(using=db), prepared._cursor(db) as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone() if any(write.returns for write in writes) else None
    start = 0
    for write in writes:
        answer = None
        if write.returns and row is not None:
            answer = tuple(row[start:start + write.returns])
            start += write.returns
            if len(writes) > 1 and all(value is None for value in answer):
                answer = None
        write.done(answer)


def _expressions(sql: str) -> int:
    """How many comma-separated expressions ``sql`` lists (commas inside brackets or quotes are an
    expression's own)."""
    count, depth, quote = 1, 0, ""
    for char in sql:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            count += 1
    return count


# -- the writers: each queues in an open block on its database, and writes at once otherwise ---------------
def insert(instance: Model, using: str | None = None, also: tuple[str, Sequence[Any]] | None = None,
           then: Then | None = None) -> None:
    """:func:`identity.prepared.insert`; ``then`` is called with what it answers (``also``'s values)."""
    db = using or router.db_for_write(type(instance), instance=instance)
    queue = _queue(db)
    compiled = prepared.insert_target(instance, db)[1] if queue is not None else None
    if queue is None or compiled is None:
        answered = prepared.insert(instance, using=db, also=also)
        if then is not None:
            then(answered)
        return
    # pre_save before the values are read, as insert() and save() send it (a receiver may set one)
    signals.pre_save.send(sender=type(instance), instance=instance, raw=False, using=db, update_fields=None)
    with transaction.mark_for_rollback_on_error(using=db):
        statement = prepared.insert_statement(compiled, instance, also)
    if statement is None:  # an expression: Django's compiler writes it, now
        instance._save_table(raw=False, cls=type(instance), force_insert=True, force_update=False,  # type: ignore[attr-defined]
                             using=db, update_fields=None)
        prepared.saved(instance, db, created=True)
        if then is not None:
            then(None)
        return
    returns = len(compiled.returning) + (_expressions(also[0]) if also is not None else 0)

    def done(row: tuple[Any, ...] | None) -> None:
        if row is None and compiled.returning:
            raise DatabaseError(f"The INSERT of {type(instance).__name__} answered no row.")
        answered = prepared.inserted(compiled, instance, row, also)
        prepared.saved(instance, db, created=True)
        if then is not None:
            then(answered)

    queue.append(_Write(statement[0], statement[1], returns if compiled.returning else 0, done))


def upsert(instance: Model, unique_fields: Sequence[str], update_fields: Sequence[str], using: str | None = None) -> None:
    """:func:`identity.prepared.upsert`; the instance's primary key is set when the block ends."""
    db = using or router.db_for_write(type(instance), instance=instance)
    queue = _queue(db)
    compiled = prepared.upsert_target(instance, unique_fields, update_fields, db)[1] if queue is not None else None
    values = compiled.values(instance) if compiled is not None else None
    if queue is None or compiled is None or values is None:
        prepared.upsert(instance, unique_fields, update_fields, using=db)
        return

    def done(row: tuple[Any, ...] | None) -> None:
        if row is not None and compiled.returning:
            prepared.inserted(compiled, instance, row)
        instance._state.db = db
        instance._state.adding = False

    queue.append(_Write(compiled.sql, [*values, *compiled.returning_params], len(compiled.returning), done))


def save_fields(instance: Model, field_names: Sequence[str], using: str | None = None) -> None:
    """:func:`identity.prepared.save_fields`: ``DatabaseError`` when the block ends if it matched no row."""
    db = using or router.db_for_write(type(instance), instance=instance)
    queue = _queue(db)
    fields = prepared.plain_fields(instance, field_names) if queue is not None else None
    if queue is None or fields is None:
        prepared.save_fields(instance, field_names, using=db)
        return
    names = frozenset(field_names)
    signals.pre_save.send(sender=type(instance), instance=instance, raw=False, using=db, update_fields=names)
    with transaction.mark_for_rollback_on_error(using=db):
        statement = prepared.update_statement(instance, fields, db)
    if statement is None:  # an expression: Django's compiler writes it, now
        instance._save_table(raw=False, cls=type(instance), force_insert=False, force_update=False,  # type: ignore[attr-defined]
                             using=db, update_fields=names)
        prepared.saved(instance, db, created=False, update_fields=names)
        return

    def done(row: tuple[Any, ...] | None) -> None:
        if row is None:
            raise DatabaseError(prepared.NO_ROW_UPDATED)
        prepared.saved(instance, db, created=False, update_fields=names)

    queue.append(_Write(f"{statement[0]} RETURNING 1", statement[1], 1, done))


def delete_by_pk(model: type[Model], pk: Any, using: str | None = None) -> None:
    """:func:`identity.prepared.delete_by_pk`, for a caller that does not ask how many rows went."""
    db = using or router.db_for_write(model)
    queue = _queue(db)
    statement = prepared.delete_statement(model, pk, db) if queue is not None else None
    if queue is None or statement is None:
        prepared.delete_by_pk(model, pk, using=db)
        return
    queue.append(_Write(statement[0], statement[1], 0, lambda row: None))
