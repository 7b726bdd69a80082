"""django-redis's cache for the standalone server, whose ``close()`` costs nothing when it has
nothing to do.

Django calls every used cache's ``close()`` at the end of every request (``request_finished``).
django-redis's closes the connections only with ``CLOSE_CONNECTION`` (its option, or the setting
``DJANGO_REDIS_CLOSE_CONNECTION``; off by default: the pool is kept, as here). It still looks the
setting up on every call, and a setting that is not given is looked up the slow way (a miss of
``LazySettings``, which raises and catches an ``AttributeError``): about 5 µs of every request,
the bare view's too (docs/performance.md). Here the same choice is made once, when the cache is
made; with the option or the setting on, ``close()`` is django-redis's.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django_redis.cache import RedisCache as DjangoRedisCache  # type: ignore[import-untyped]


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        options = params.get("OPTIONS", {})
        self.closes_connections = bool(options.get(
            "CLOSE_CONNECTION", getattr(settings, "DJANGO_REDIS_CLOSE_CONNECTION", False)))

    def close(self, **kwargs: Any) -> None:
        if self.closes_connections:
            super().close(**kwargs)
