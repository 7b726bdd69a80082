"""Lookups on the hot paths, compiled to SQL once per process.

Compiling a query with several ``select_related`` joins costs more CPU than running it. The
endpoints that run on every request (userinfo, token, authorize) look rows up by one unique value,
so the SQL never changes: it is compiled once and then only executed, and the rows become model
instances exactly as Django's own ``ModelIterable`` makes them (same converters, same related
object caches).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.models import QuerySet
from django.db.models.query import get_related_populators  # type: ignore[attr-defined]  # Django internal

_PLACEHOLDER = "portcullis-prepared-lookup-placeholder"


class PreparedLookup:
    def __init__(self, build: Callable[[Any], QuerySet[Any]]) -> None:
        """``build(value)`` answers the queryset for one value; it is called once, to compile."""
        self.build = build
        # Per thread, like database connections: the compiler's converters belong to the
        # connection it was compiled for.
        self._local = threading.local()

    def _compile(self, db: str) -> tuple[Any, str, list[Any], int]:
        connection = connections[db]
        compiled_by_db = getattr(self._local, "compiled", None)
        if compiled_by_db is None:
            compiled_by_db = self._local.compiled = {}
        compiled = compiled_by_db.get(db)
        if compiled is None or compiled[0].connection is not connection:
            queryset = self.build(_PLACEHOLDER)[:1]
            compiler = queryset.query.get_compiler(using=db)
            sql, params = compiler.as_sql()
            position = list(params).index(_PLACEHOLDER)
            compiled = compiled_by_db[db] = (compiler, sql, list(params), position)
        return compiled

    def get(self, value: Any, db: str = "default") -> Any | None:
        compiler, sql, params, position = self._compile(db)
        params = params.copy()
        params[position] = value
        with connections[db].cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        return self._instance(compiler, row, db)

    @staticmethod
    def _instance(compiler: Any, row: tuple[Any, ...], db: str) -> Any:
        row = next(iter(compiler.results_iter([[row]])))
        klass_info, select = compiler.klass_info, compiler.select
        fields = klass_info["select_fields"]
        start, end = fields[0], fields[-1] + 1
        init_list = [column[0].target.attname for column in select[start:end]]
        instance = klass_info["model"].from_db(db, init_list, row[start:end])
        for populator in get_related_populators(klass_info, select, db):
            populator.populate(row, instance)
        return instance
