"""The standalone server's settings, each process started as an operator would start it: without
ISSUER only a DEBUG server runs (the Host header would otherwise become the issuer), and cookies
are Secure whenever the issuer is https."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parent.parent
HTTPS_ISSUER = "https://id.example.com"


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python *args`` in the worktree with only ``env`` set (no DATABASE_URL, REDIS_URL, DEBUG,
    ISSUER from the test run), its files under ``tmp_path``."""
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PORTCULLIS_VAR_DIR": str(tmp_path), **env}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("command", [["check"], ["migrate", "--noinput"], ["runserver", "--noreload", "127.0.0.1:0"]],
                         ids=["check", "migrate", "runserver"])
def test_manage_py_refuses_to_run_without_issuer_when_debug_is_off(tmp_path, command):
    result = run(tmp_path, "manage.py", *command)
    assert result.returncode != 0, result.stdout[-2000:]
    assert "identity.E002" in result.stderr, result.stderr[-2000:]
    assert tables(tmp_path / "portcullis.sqlite3") == set()  # migrate stopped before migrating anything


def tables(database: Path) -> set[str]:
    if not database.exists():
        return set()
    with sqlite3.connect(database) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.mark.parametrize("module", ["config.wsgi", "config.asgi"])
def test_the_wsgi_and_asgi_entry_points_refuse_to_load_without_issuer(tmp_path, module):
    """gunicorn (and any ASGI server) imports these modules and never runs manage.py's checks."""
    refused = run(tmp_path, "-c", f"import {module}")
    assert refused.returncode != 0
    assert "identity.E002" in refused.stderr, refused.stderr[-2000:]
    served = run(tmp_path, "-c", f"import gc, {module}; print(gc.get_freeze_count(), len(gc.get_objects()))",
                 ISSUER=HTTPS_ISSUER)
    assert served.returncode == 0, served.stderr[-2000:]
    frozen, tracked = map(int, served.stdout.split())
    assert frozen > 50_000 and tracked < 1_000, "what the server loaded is left out of the cyclic collector's walks"


def test_gunicorn_does_not_start_without_issuer(tmp_path):
    gunicorn = Path(sys.executable).with_name("gunicorn")  # the serve extra, which dev includes
    refused = run(tmp_path, str(gunicorn), "--check-config", "config.wsgi:application")
    assert refused.returncode != 0
    assert "identity.E002" in refused.stderr, refused.stderr[-2000:]
    loaded = run(tmp_path, str(gunicorn), "--check-config", "config.wsgi:application", ISSUER=HTTPS_ISSUER)
    assert loaded.returncode == 0, loaded.stderr[-2000:]


@pytest.mark.parametrize("env", [{"ISSUER": HTTPS_ISSUER}, {"ISSUER": "http://127.0.0.1:8000"}, {"DEBUG": "1"}],
                         ids=["https-issuer", "loopback-http-issuer", "debug-without-issuer"])
def test_manage_py_check_passes_with_an_issuer_or_debug(tmp_path, env):
    result = run(tmp_path, "manage.py", "check", **env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "identity.E002" not in result.stderr


def test_an_issuer_that_is_not_a_url_is_refused(tmp_path):
    result = run(tmp_path, "manage.py", "check", ISSUER="id.example.com")
    assert result.returncode != 0
    assert "identity.E003" in result.stderr, result.stderr[-2000:]


def cookie_flags(tmp_path: Path, **env: str) -> dict[str, Any]:
    script = ("import json, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; import django; "
              "django.setup(); from django.conf import settings as s; "
              "print(json.dumps({'session': s.SESSION_COOKIE_SECURE, 'csrf': s.CSRF_COOKIE_SECURE}))")
    result = run(tmp_path, "-c", script, **env)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("env", [{"ISSUER": HTTPS_ISSUER}, {"ISSUER": HTTPS_ISSUER, "DEBUG": "1"},
                                 {"ISSUER": HTTPS_ISSUER, "SESSION_COOKIE_SECURE": "0"}],
                         ids=["https", "https-with-debug", "https-with-the-switch-off"])
def test_cookies_are_secure_whenever_the_issuer_is_https(tmp_path, env):
    """TLS may end at a proxy, where Django sees plain http: the issuer says what the browser sees."""
    assert cookie_flags(tmp_path, **env) == {"session": True, "csrf": True}


@pytest.mark.parametrize("env", [{"ISSUER": "http://127.0.0.1:8000"}, {"DEBUG": "1"}], ids=["loopback-http", "debug"])
def test_a_plain_http_local_server_keeps_plain_cookies(tmp_path, env):
    """Otherwise the browser would drop the cookies and nobody could sign in on http://127.0.0.1."""
    assert cookie_flags(tmp_path, **env) == {"session": False, "csrf": False}


@pytest.mark.parametrize(("setting", "value", "check_id"), [
    ("PORTCULLIS_INTERACTION_TTL", 0, "experience.E001"),
    ("PORTCULLIS_INTERACTIONS_PER_SESSION", "5", "experience.E001"),
    ("PORTCULLIS_REFRESH_TOKEN_ABSOLUTE_SECONDS", -1, "identity.E004"),
])
def test_a_counting_setting_that_is_not_a_positive_integer_is_refused(settings, setting, value, check_id):
    from django.core.checks import run_checks

    setattr(settings, setting, value)
    assert check_id in {message.id for message in run_checks()}
    delattr(settings, setting)
    assert check_id not in {message.id for message in run_checks()}


@pytest.mark.parametrize("caches", [
    {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}},
    {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/9",
                 "OPTIONS": {"IGNORE_EXCEPTIONS": True}}},
])
def test_a_cache_that_fails_open_is_refused(settings, caches):
    """Lockouts and rate limits count in the cache: one that forgets or hides its errors would let every
    attempt through while Redis is away, so the checks refuse it (config.wsgi then refuses to serve)."""
    from identity.checks import check_cache_fails_closed, refuse_to_serve_with_errors

    settings.CACHES = caches
    assert [error.id for error in check_cache_fails_closed(None)] == ["identity.E005"]
    with pytest.raises(ImproperlyConfigured, match="identity.E005"):
        refuse_to_serve_with_errors()


def test_a_per_process_cache_is_a_deploy_warning_and_the_shipped_caches_pass(settings):
    from identity.checks import check_cache_fails_closed, check_cache_is_shared

    assert check_cache_fails_closed(None) == [] and check_cache_is_shared(None) == []  # the suite's own cache
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert [warning.id for warning in check_cache_is_shared(None)] == ["identity.W004"]
    settings.DJANGO_REDIS_IGNORE_EXCEPTIONS = True
    assert [error.id for error in check_cache_fails_closed(None)] == ["identity.E005"]


def email_timeout(tmp_path: Path, **env: str) -> Any:
    script = ("import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; import django; "
              "django.setup(); from django.conf import settings as s; print(s.EMAIL_TIMEOUT)")
    result = run(tmp_path, "-c", script, DEBUG="1", **env)
    assert result.returncode == 0, result.stderr[-2000:]
    return float(result.stdout)


def test_the_standalone_server_bounds_its_smtp_connections(tmp_path):
    """Django's default is no limit: a mail server that never answers would hold a worker."""
    assert email_timeout(tmp_path) == 10.0
    assert email_timeout(tmp_path, EMAIL_TIMEOUT="2.5") == 2.5


def test_smtp_without_a_timeout_is_a_warning(settings):
    from identity.checks import check_email_timeout

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert check_email_timeout(None) == []  # the standalone settings' 10 s
    settings.EMAIL_TIMEOUT = None
    assert [warning.id for warning in check_email_timeout(None)] == ["identity.W005"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert check_email_timeout(None) == []  # no connection to wait on
