"""Real servers for the tests that run Portcullis the production way: gunicorn processes on
PostgreSQL and Redis (test_risk_workers, the deploy walk-through, the two-process and fault tests).

- ``migrated_database(name)``: a fresh PostgreSQL database, cloned from a template migrated once per
  set of migrations (``CREATE DATABASE ... TEMPLATE``: a second instead of a ``migrate`` run), shared by
  every test process on the machine.
- ``Server``: one gunicorn process (sync workers) in its own process group, stopped with it, never by
  name.
- ``server_env(...)``: the environment of a production-shaped server (``DEBUG=0``, an issuer, a
  random ``SECRET_KEY``, its own cache key prefix).

Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PG_PORT, REDIS_PORT = 5432, 6379
# The Redis database the servers share, each under a key prefix of its own (the suite's own are flushed).
SERVERS_REDIS_URL = os.environ.get("SERVERS_REDIS_URL", f"redis://{HOST}:{REDIS_PORT}/3")


def reachable(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def pg(sql: str, dbname: str = "postgres", params: tuple[Any, ...] = (), port: int = PG_PORT) -> Any:
    """One statement on the machine's PostgreSQL (autocommit); its first row, if it has rows."""
    import psycopg

    with psycopg.connect(host=HOST, port=port, user="postgres", dbname=dbname, autocommit=True,
                         connect_timeout=10) as connection:
        cursor = connection.execute(sql, params)  # type: ignore[arg-type]
        return cursor.fetchone() if cursor.description else None


def base_env(**overrides: str) -> dict[str, str]:
    """This process's environment without what would bend a server's settings: pytest-xdist's worker
    name (config.settings moves REDIS_URL's database by it) and the suite's own database and cache."""
    dropped = {"PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "DATABASE_URL", "REDIS_URL",
               "DJANGO_SETTINGS_MODULE", "PYTEST_CURRENT_TEST"}
    return {**{key: value for key, value in os.environ.items() if key not in dropped}, **overrides}


def server_env(database: str, var_dir: Path, port: int, *, redis_url: str | None = None,
               prefix: str | None = None, **overrides: str) -> dict[str, str]:
    """A production-shaped server's environment: ``DEBUG=0``, ``ISSUER`` on its port, a random
    ``SECRET_KEY``, PostgreSQL ``database``, Redis (default db 3) under a key prefix of its own, and
    tests.live_settings (the product's settings plus an ``X-Worker-Pid`` header)."""
    return base_env(
        DATABASE_URL=f"postgres://postgres@{HOST}:{PG_PORT}/{database}",
        REDIS_URL=redis_url or SERVERS_REDIS_URL,
        CACHE_KEY_PREFIX=prefix or "live-" + secrets.token_hex(6),
        DEBUG="0", ISSUER=f"http://{HOST}:{port}", SECRET_KEY=secrets.token_urlsafe(40),
        DJANGO_SETTINGS_MODULE="tests.live_settings", PORTCULLIS_VAR_DIR=str(var_dir), LOG_LEVEL="WARNING",
        CONN_MAX_AGE="0", **overrides)


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``manage.py <args>`` in a server's environment; its output kept for the assertion message."""
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def _migrations_fingerprint() -> str:
    """Changes whenever a migration could: our migration files and the installed libraries' versions."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for path in sorted(ROOT.glob("*/migrations/*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    for package in ("django", "django-oauth-toolkit", "django-otp", "django-simple-captcha"):
        digest.update(version(package).encode())
    return digest.hexdigest()[:12]


def _template() -> str:
    """The migrated template database, made once per fingerprint by whichever test process comes
    first (a PostgreSQL advisory lock keeps the others waiting), older templates dropped."""
    name = f"portcullis_tpl_{_migrations_fingerprint()}"
    import psycopg

    with psycopg.connect(host=HOST, port=PG_PORT, user="postgres", dbname="postgres", autocommit=True,
                         connect_timeout=10) as connection:
        connection.execute("SELECT pg_advisory_lock(724100)")
        try:
            if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return name
            for (old,) in connection.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'portcullis\\_tpl\\_%%'").fetchall():
                connection.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
            building = f"{name}_building"
            connection.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{building}"')
            env = base_env(DATABASE_URL=f"postgres://postgres@{HOST}:{PG_PORT}/{building}", DEBUG="1",
                           DJANGO_SETTINGS_MODULE="config.settings", CONN_MAX_AGE="0",
                           PORTCULLIS_VAR_DIR=str(ROOT / "var"))
            manage(env, "migrate", "--verbosity", "0")
            connection.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
            return name
        finally:
            connection.execute("SELECT pg_advisory_unlock(724100)")


@contextmanager
def migrated_database(prefix: str = "portcullis_live") -> Iterator[str]:
    """A fresh, migrated PostgreSQL database of this process (dropped at the end, with force)."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    template = _template()
    pg(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield name
    finally:
        pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clear_redis_prefix(redis_url: str, prefix: str) -> None:
    try:
        import redis

        connection = redis.Redis.from_url(redis_url)
        for key in connection.scan_iter(f"{prefix}:*"):
            connection.delete(key)
    except Exception:  # noqa: BLE001  cleaning up only
        pass


class Server:
    """gunicorn serving config.wsgi (sync workers) in its own process group: this environment's
    gunicorn in the checkout, or ``gunicorn`` of another environment in ``cwd`` (an installed wheel's)."""

    def __init__(self, env: dict[str, str], port: int, log: Path, workers: int = 2,
                 extra_args: tuple[str, ...] = (), gunicorn: Path | None = None, cwd: Path = ROOT) -> None:
        self.env, self.port, self.log, self.workers, self.extra_args = env, port, log, workers, extra_args
        self.gunicorn, self.cwd = gunicorn or Path(sys.executable).parent / "gunicorn", cwd
        self.url = f"http://{HOST}:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_path: str = "/.well-known/openid-configuration", timeout: float = 60) -> None:
        self.log_file = open(self.log, "ab")  # noqa: SIM115  closed in stop()
        self.process = subprocess.Popen(
            [str(self.gunicorn), "config.wsgi:application", "--workers",
             str(self.workers), "--worker-class", "sync", "--bind", f"{HOST}:{self.port}", "--timeout", "30",
             *self.extra_args],
            cwd=self.cwd, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if requests.get(self.url + ready_path, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError("gunicorn did not answer:\n" + self.log.read_text()[-3000:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.process is not None:
            self.log_file.close()
        self.process = None
