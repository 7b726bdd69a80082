"""Real servers for the tests that run Portcullis the production way: gunicorn processes on
PostgreSQL and Redis (test_risk_workers, the deploy walk-through, the two-process and fault tests).

- ``migrated_database(name)``: a fresh PostgreSQL database, cloned from a template migrated once per
  set of migrations (``CREATE DATABASE ... TEMPLATE``: a second instead of a ``migrate`` run), shared by
  every test process on the machine.
- ``Server``: one gunicorn process (sync workers) in its own process group, stopped with it, never by
  name.
- ``Server.on_each_worker(call)``: ``call`` answered by each of a two-worker server's workers in
  turn, not by whichever the kernel hands the connection to.
- ``server_env(...)``: the environment of a production-shaped server (``DEBUG=0``, an issuer, a
  random ``SECRET_KEY``, its own cache key prefix).

Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PG_PORT, REDIS_PORT = 5432, 6379
# The Redis database the servers share, each under a key prefix of its own (the suite's own are flushed).
SERVERS_REDIS_URL = os.environ.get("SERVERS_REDIS_URL", f"redis://{HOST}:{REDIS_PORT}/3")
T = TypeVar("T")


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
               prefix: str | None = None, pg_port: int = PG_PORT, **overrides: str) -> dict[str, str]:
    """A production-shaped server's environment: ``DEBUG=0``, ``ISSUER`` on its port, a random
    ``SECRET_KEY``, PostgreSQL ``database``, Redis (default db 3) under a key prefix of its own, and
    tests.live_settings (the product's settings plus an ``X-Worker-Pid`` header). ``pg_port``: a
    PostgreSQL of the test's own (test_faults). ``overrides`` may replace any of these (servers of
    one deployment share ``ISSUER`` and ``SECRET_KEY``; CONN_MAX_AGE, say)."""
    defaults = dict(
        DATABASE_URL=f"postgres://postgres@{HOST}:{pg_port}/{database}",
        REDIS_URL=redis_url or SERVERS_REDIS_URL,
        CACHE_KEY_PREFIX=prefix or "live-" + secrets.token_hex(6),
        DEBUG="0", ISSUER=f"http://{HOST}:{port}", SECRET_KEY=secrets.token_urlsafe(40),
        DJANGO_SETTINGS_MODULE="tests.live_settings", PORTCULLIS_VAR_DIR=str(var_dir), LOG_LEVEL="WARNING",
        CONN_MAX_AGE="0")
    return base_env(**{**defaults, **overrides})


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
                 extra_args: tuple[str, ...] = (), command: list[str] | None = None, gunicorn: Path | None = None,
                 cwd: Path = ROOT) -> None:
        """``command``: run this command line instead (e.g. ``bash -c`` of the gunicorn line a doc
        gives), in the same process group and with the same readiness wait."""
        self.env, self.port, self.log, self.workers, self.extra_args = env, port, log, workers, extra_args
        self.command = command
        self.gunicorn, self.cwd = gunicorn or Path(sys.executable).parent / "gunicorn", cwd
        self.url = f"http://{HOST}:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_path: str = "/.well-known/openid-configuration", timeout: float = 60) -> None:
        self.log_file = open(self.log, "ab")  # noqa: SIM115  closed in stop()
        self.process = subprocess.Popen(
            self.command or
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

    def on_each_worker(self, call: Callable[[], T], worker: Callable[[T], str]) -> dict[str, T]:
        """``call`` run twice, answered once by each of the server's two sync workers: {worker pid (as
        ``worker`` reads it from a result): the result}. Which idle worker takes a new connection is
        the kernel's choice, and one worker may win every time; so the other is kept busy instead. A
        sync worker that has accepted a request whose headers have not all arrived waits for them and
        takes no other connection: one such request held open sends every connection ``call`` makes
        to the other worker. Hold one (worker A), call (B answers); hold a second (only B is free to
        take it); release the first; call again (only A is free)."""
        assert self.workers == 2, "on_each_worker keeps one of exactly two workers busy"
        first = _HeldRequest(self)
        answered = [call()]
        second = _HeldRequest(self)
        first.release()
        answered.append(call())
        second.release()
        results = {worker(result): result for result in answered}
        assert len(results) == 2, f"both calls were answered by one worker: {list(results)}"
        return results

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


class _HeldRequest:
    """A ``GET /healthz`` on its own connection, sent but for the blank line that ends its headers:
    the server's worker that accepts it waits for the rest. The constructor returns once a worker has
    accepted it (the listening socket's accept queue is empty again); ``release()`` sends the rest and
    reads the answer."""

    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection((HOST, server.port), timeout=30)
        self.sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nConnection: close\r\n")
        client = f"0100007F:{self.sock.getsockname()[1]:04X}"
        deadline = time.monotonic() + 20
        # The server's side of the connection exists (queued or accepted) and nothing is queued.
        while not (_tcp_state(server.port, client) == "01" and _accept_queue(server.port) == 0):
            assert time.monotonic() < deadline, "no worker accepted the held connection"
            time.sleep(0.01)

    def release(self) -> None:
        self.sock.sendall(b"\r\n")
        answer = b""
        while chunk := self.sock.recv(65536):
            answer += chunk
        self.sock.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:500]


def _tcp_sockets(port: int) -> Iterator[list[str]]:
    """/proc/net/tcp's rows (split into fields) of the sockets bound to 127.0.0.1:``port``."""
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local:
            yield fields


def _tcp_state(port: int, remote: str) -> str | None:
    """The state (/proc/net/tcp's hex code; 01 is established) of the server's side of the
    connection from ``remote``, if the server has one."""
    return next((fields[3] for fields in _tcp_sockets(port) if fields[2] == remote), None)


def _accept_queue(port: int) -> int:
    """Connections waiting on 127.0.0.1:``port``'s listening socket for a worker to accept them (for
    a socket in LISTEN, state 0A, the rx_queue column is its accept queue's length)."""
    for fields in _tcp_sockets(port):
        if fields[3] == "0A":
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"nothing listens on {HOST}:{port}")


# -- a browser and a relying party against live servers ------------------------------------------------
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CAPTCHA_FIELD = re.compile(r'name="captcha_id" value="([0-9a-f]+)"')
CODE_ID_FIELD = re.compile(r'name="code_id" value="([^"]*)"')


def path_of(location: str) -> str:
    """A redirect's path and query (a Location may be absolute, naming the issuer's host)."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class LiveBrowser:
    """One browser (one cookie jar) in front of several servers of one deployment, as behind a load
    balancer: cookies belong to the host, not the port, so the session follows the browser to
    whichever server a call names. Each request on a new connection (either worker may take it).
    Forms are posted with the CSRF token of the last page, and a captcha on it is answered from the
    captcha store in ``database``, as a person reads the picture."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.session = requests.Session()
        self.session.headers["Connection"] = "close"
        self.page = ""

    def get(self, server: Server, path: str) -> requests.Response:
        response = self.session.get(server.url + path, allow_redirects=False, timeout=30)
        if response.headers.get("Content-Type", "").startswith("text/html"):
            self.page = response.text
        return response

    def captcha_shown(self) -> bool:
        return CAPTCHA_FIELD.search(self.page) is not None

    def post(self, server: Server, path: str, data: dict[str, str]) -> requests.Response:
        csrf = CSRF_FIELD.search(self.page)
        assert csrf, self.page[:2000]
        data = {**data, "csrfmiddlewaretoken": csrf.group(1)}
        captcha = CAPTCHA_FIELD.search(self.page)
        if captcha:
            row = pg("SELECT response FROM captcha_captchastore WHERE hashkey = %s", self.database, (captcha.group(1),))
            data.update(captcha_id=captcha.group(1), captcha_answer=row[0])
        response = self.session.post(server.url + path, data=data, allow_redirects=False, timeout=30)
        if response.headers.get("Content-Type", "").startswith("text/html"):
            self.page = response.text
        return response

    def authorize(self, server: Server, client_id: str, redirect_uri: str,
                  challenge: str) -> tuple[str, requests.Response]:
        """The authorization request of a relying party with PKCE: (state, the server's answer)."""
        state = secrets.token_urlsafe(8)
        query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                           "scope": "openid email", "state": state, "nonce": secrets.token_urlsafe(8),
                           "code_challenge": challenge, "code_challenge_method": "S256"})
        return state, self.get(server, "/oauth/authorize?" + query)

    def sign_in_with_password(self, page_on: Server, post_on: Server, sign_in_path: str, identifier: str,
                              password: str) -> requests.Response:
        """The hosted sign-in page read from one server and its form posted to another."""
        page = self.get(page_on, sign_in_path)
        assert page.status_code == 200, page.text[:2000]
        return self.post(post_on, sign_in_path, {"identifier": identifier, "password": password,
                                                 "authenticator": "password"})

    def code_after(self, server: Server, signed_in: requests.Response, redirect_uri: str, state: str) -> str:
        """From the 303 of a finished sign-in: the authorization endpoint's code (asked of ``server``)."""
        assert signed_in.status_code == 303, signed_in.text[:2000]
        onward = self.get(server, path_of(signed_in.headers["Location"]))
        assert onward.status_code == 302, onward.text[:2000]
        location = onward.headers["Location"]
        assert location.startswith(redirect_uri + "?"), location
        query = parse_qs(urlsplit(location).query)
        assert query["state"] == [state], query
        return query["code"][0]


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def token_request(server: Server, client_id: str, client_secret: str, **data: str) -> requests.Response:
    return requests.post(server.url + "/oauth/token", data={"client_id": client_id, "client_secret": client_secret,
                                                            **data}, headers={"Connection": "close"}, timeout=30)


def verified_claims(server: Server, id_token: str) -> tuple[str, dict[str, Any]]:
    """An ID token checked against ``server``'s published JWKS, as a relying party would: (kid, claims)."""
    from jwcrypto import jwk, jwt

    keyset = jwk.JWKSet.from_json(requests.get(server.url + "/.well-known/jwks.json", timeout=30).text)
    token = jwt.JWT(jwt=id_token, key=keyset, algs=["RS256"], check_claims=False)
    header = json.loads(base64.urlsafe_b64decode(id_token.split(".")[0] + "==="))
    return header["kid"], json.loads(token.claims)
