"""Anonymous flood of wrong passwords: server CPU per request before and after the risk rules
(captcha, lockout) kick in. Every failed attempt that reaches the password check costs one Argon2
hash; once a captcha is demanded or the account is locked the request is refused before hashing.

Run with ``.venv/bin/python benchmarks/flood.py`` (PostgreSQL and Redis on 127.0.0.1). Like
benchmarks/run.py it creates a fresh database (``portcullis_flood``, dropped first and at the end),
starts gunicorn (2 sync workers, Redis db 14 under a key prefix of its own), and measures, from one
IP, with one attacker session:

1. spraying: wrong passwords at distinct unknown accounts, until the per-IP captcha threshold;
2. the same flood once a captcha is demanded (the attacker cannot answer it);
3. one account: wrong passwords with solved captchas (as a captcha farm would; the script reads the
   answers from the captcha store) until the lockout;
4. the same account while it is locked (429).

For each phase: requests, statuses, median wall time and the gunicorn workers' CPU per request
(utime+stime from /proc). Options: --requests N (per refused phase, 200), --db NAME.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psycopg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.run import (  # noqa: E402
    CLIENT_SECRET,
    HOST,
    PASSWORD,
    REDIRECT_URI,
    ROOT,
    Server,
    cpu_seconds,
    free_port,
    log,
    pg_admin,
    run_task,
)

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CAPTCHA_ID = re.compile(r'name="captcha_id" value="([0-9a-f]+)"')
MAX_PHASE = 1000


class Attacker:
    def __init__(self, base_url: str, database: str) -> None:
        self.base_url, self.database = base_url, database
        self.session = requests.Session()
        start = self.session.get(base_url + "/sign-in/?next=/", allow_redirects=False, timeout=20)
        self.url = base_url + start.headers["Location"]
        self.page = self.session.get(self.url, timeout=20).text
        self.csrf = CSRF.search(self.page).group(1)  # type: ignore[union-attr]

    def attempt(self, identifier: str, *, solve: bool = False) -> tuple[int, float]:
        data = {"identifier": identifier, "password": "wrong-" + secrets.token_hex(4), "authenticator": "password",
                "csrfmiddlewaretoken": self.csrf}
        key = CAPTCHA_ID.search(self.page)
        if solve and key:
            with psycopg.connect(host=HOST, port=5432, user="postgres", dbname=self.database) as connection:
                row = connection.execute("SELECT response FROM captcha_captchastore WHERE hashkey = %s",
                                         (key.group(1),)).fetchone()
            data.update(captcha_id=key.group(1), captcha_answer=row[0] if row else "")
        started = time.perf_counter()
        response = self.session.post(self.url, data=data, allow_redirects=False, timeout=30)
        elapsed = time.perf_counter() - started
        if response.status_code == 400:
            self.page = response.text
        return response.status_code, elapsed


def memory_kib(pid: int, field: str) -> int:
    """A process's resident memory now (``VmRSS``) or at its peak so far (``VmHWM``), in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def phase(server: Server, name: str, attempts: int, attempt: callable, stop: callable = lambda status: False) -> dict:  # type: ignore[valid-type]
    workers = server.workers()
    before = cpu_seconds(workers)
    statuses: Counter = Counter()
    times = []
    for index in range(min(attempts, MAX_PHASE)):
        status, elapsed = attempt(index)
        statuses[status] += 1
        times.append(elapsed)
        if stop(status):
            break
    cpu = cpu_seconds(workers) - before
    count = sum(statuses.values())
    result = {"phase": name, "requests": count, "statuses": dict(statuses),
              "median_ms": 1000 * statistics.median(times), "cpu_ms": 1000 * cpu / count,
              "rss_mib": max((memory_kib(pid, "VmRSS") for pid in workers), default=0) / 1024,
              "peak_mib": max((memory_kib(pid, "VmHWM") for pid in workers), default=0) / 1024}
    log(f"{name}: {result}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--db", default="portcullis_flood")
    config = parser.parse_args()
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", config.db):
        parser.error("--db must be a plain lower-case identifier")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="portcullis-flood-"))
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "benchmarks.bench_settings",
           "DATABASE_URL": f"postgres://postgres@{HOST}:5432/{config.db}", "REDIS_URL": f"redis://{HOST}:6379/14",
           "CACHE_KEY_PREFIX": f"portcullis-flood-{secrets.token_hex(4)}", "SECRET_KEY": secrets.token_urlsafe(50),
           "DEBUG": "0", "ALLOWED_HOSTS": HOST, "ISSUER": base_url, "PORTCULLIS_VAR_DIR": str(workdir),
           "LOG_LEVEL": "WARNING"}
    server = Server(env, port, workdir / "gunicorn.log")
    created = False
    try:
        pg_admin(f'DROP DATABASE IF EXISTS "{config.db}" WITH (FORCE)')
        created = True
        pg_admin(f'CREATE DATABASE "{config.db}"')
        setup = run_task(env, "setup", "--base-url", base_url, "--redirect-uri", REDIRECT_URI,
                         "--secret", CLIENT_SECRET, "--users", "2", "--password", PASSWORD)
        victim = setup["users"][1]
        server.start()
        attacker = Attacker(base_url, config.db)
        results = [
            phase(server, "spraying, before the IP's captcha", 10,
                  lambda i: attacker.attempt(f"nobody{i}@example.com")),
            phase(server, "spraying, captcha demanded (not answered)", config.requests,
                  lambda i: attacker.attempt(f"nobody{i + 10}@example.com")),
            phase(server, "one account, captchas solved, until the lockout", 30,
                  lambda i: attacker.attempt(victim, solve=True), stop=lambda status: status == 429),
            phase(server, "one account, locked (429)", config.requests,
                  lambda i: attacker.attempt(victim, solve=True)),
        ]
        argon = run_task(env, "hash", "--count", "5", "--password", PASSWORD)
        print()
        print(f"One {argon['algorithm']} hash: {argon['cpu_s'] * 1000:.0f} ms CPU in a process of its own.\n")
        print("| phase | requests | statuses | median wall ms | server CPU ms / request | largest worker RSS MiB "
              "(now / peak so far) |")
        print("|---|---|---|---|---|---|")
        for result in results:
            print(f"| {result['phase']} | {result['requests']} | {result['statuses']} | {result['median_ms']:.1f} "
                  f"| {result['cpu_ms']:.1f} | {result['rss_mib']:.0f} / {result['peak_mib']:.0f} |")
        return 0
    finally:
        server.stop()
        try:
            run_task(env, "cleanup", timeout=60)
        except Exception as error:  # noqa: BLE001
            print(f"cache cleanup failed: {error}", file=sys.stderr)
        if created:
            pg_admin(f'DROP DATABASE IF EXISTS "{config.db}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
