"""config.redis_cache: django-redis's cache, whose close() at the end of every request decides once
whether it closes the connections, as django-redis decides on every call. Real Redis (127.0.0.1)."""

from __future__ import annotations

from typing import Any

import pytest
from django_redis.cache import RedisCache as DjangoRedisCache  # type: ignore[import-untyped]

from config.redis_cache import RedisCache

LOCATION = "redis://127.0.0.1:6379/15"


def connection_id(cache: Any) -> int:
    return int(cache.client.get_client().client_id())


@pytest.mark.parametrize("backend", [RedisCache, DjangoRedisCache])
def test_by_default_a_request_s_end_keeps_the_connection(backend: type) -> None:
    cache = backend(LOCATION, {"KEY_PREFIX": "test-redis-cache", "OPTIONS": {}})
    cache.set("k", "v")
    before = connection_id(cache)
    cache.close()
    assert connection_id(cache) == before
    assert cache.get("k") == "v"
    cache.delete("k")


@pytest.mark.parametrize("backend", [RedisCache, DjangoRedisCache])
@pytest.mark.parametrize("how", ["option", "setting"])
def test_with_close_connection_a_request_s_end_closes_it(backend: type, how: str, settings: Any) -> None:
    options = {"CLOSE_CONNECTION": True} if how == "option" else {}
    if how == "setting":
        settings.DJANGO_REDIS_CLOSE_CONNECTION = True
    cache = backend(LOCATION, {"KEY_PREFIX": "test-redis-cache", "OPTIONS": options})
    cache.set("k", "v")
    before = connection_id(cache)
    cache.close()
    assert connection_id(cache) != before
    assert cache.get("k") == "v"
    cache.delete("k")


def test_the_standalone_server_uses_it_when_redis_is_configured() -> None:
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
         "print(settings.CACHES['default']['BACKEND'])"],
        env=dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings", REDIS_URL=LOCATION),
        capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "config.redis_cache.RedisCache"
