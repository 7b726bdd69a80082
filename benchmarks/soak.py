"""Portcullis soak: a steady mixed load for minutes on gunicorn (2 sync workers), PostgreSQL and Redis,
watching every answer, the latency of each kind of request and the workers' memory.

Run with ``make soak`` (10 minutes; ``make soak SOAK_MINUTES=1`` for a quick run) or
``.venv/bin/python benchmarks/soak.py --minutes 10 --rate 10``. The server is benchmarks/run.py's
(``deployment()``: a fresh database ``portcullis_soak``, migrated and bootstrapped, one confidential
first-party application, users with a known password, gunicorn with benchmarks/bench_settings.py;
everything removed at the end, also on error or Ctrl-C). E-mail goes to Django's file backend in the
run's own directory (nothing kept in a worker's memory), where the code e-mails are counted.

Operations start at a steady ``--rate`` per second (open loop: a slow answer does not slow the
schedule), in a fixed mix, each from the load generator's threads:

- ``flow`` (6 in 10): authorize with a signed-in browser → token (code, PKCE, client_secret_basic)
  → userinfo;
- ``refresh`` (2 in 10): the refresh-token grant with the client's latest refresh token (rotation:
  each answer's new token is the next one);
- ``sign-in`` (1 in 10): a new browser, signed out: authorize → the hosted sign-in page → password
  POST (one real Argon2id hash) → authorize again, to the redirect URI with a code;
- ``code-send`` (1 in 10): a new browser: authorize → the e-mail code tab → send (to a user's address,
  each address at most once a cool-down and under its daily limit).

Every answer other than the one expected counts as an error (and so does a refused connection or a
timeout). The run fails (exit 1) when:

- errors exceed ``--max-error-rate`` (0.1 %) of the requests;
- more operations than that could not be started (every load generator thread or client busy);
- a worker's resident memory (``VmRSS`` from /proc/<pid>/status, read every second, taken as the
  lowest reading of each ``--sample-seconds`` window, 10 s, since with ``RETAIN_HASH_MEMORY=0`` a
  reading can land in a password hash's 100 MiB, given back after it) grew by more than
  ``--rss-growth-mib`` (20 MiB) from the end of the warm-up (``--warmup-seconds``, 60, at most a
  third of the run) to the end (read once the load has stopped), or a worker was replaced;
- fewer code e-mails were written than sends answered;
- gunicorn's log shows a traceback or an error.

The report (markdown) is printed and written to ``--output`` (var/soak-results.md).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import math
import os
import platform
import re
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.flood import memory_kib  # noqa: E402
from benchmarks.run import (  # noqa: E402
    CLIENT_SECRET,
    CSRF,
    PASSWORD,
    REDIRECT_URI,
    REQUEST_TIMEOUT,
    ROOT,
    Deployment,
    RelyingParty,
    cpu_model,
    database_name,
    deployment,
    lean,
    log,
    pg_version,
    server_log_problems,
)

MIX = (("flow", 6), ("refresh", 2), ("sign-in", 1), ("code-send", 1))
PARTIES = 16  # signed-in clients for the flows and refreshes, each used by one thread at a time
CODE_COOLDOWN, CODE_DAILY_LIMIT = 60, 10  # authenticators.base's defaults, which the soak stays under
CODE_SUBJECT = re.compile(r"^Subject: Your sign-in code", re.M)


class Failed(Exception):
    """An operation stopped at a request whose answer was not the expected one."""


class Recorder:
    """Every request's kind, whether its answer was the expected one, and its wall time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter[str] = Counter()
        self.samples: list[str] = []
        self.operations: Counter[str] = Counter()
        self.late = 0  # operations started more than a second after their time
        self.dropped = 0  # operations the load generator could not start (all its threads busy)

    def record(self, kind: str, seconds: float, error: str = "") -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            if error:
                self.errors[kind] += 1
                if len(self.samples) < 10:
                    self.samples.append(f"{kind}: {error}"[:300])

    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values())


def timed(recorder: Recorder, kind: str, call: Callable[[], Any], check: Callable[[Any], str]) -> Any:
    """One request: ``check`` names what is wrong with its answer ("" when it is the expected one)."""
    started = time.perf_counter()
    try:
        answer = call()
    except (requests.RequestException, OSError, ValueError) as error:
        recorder.record(kind, time.perf_counter() - started, f"{type(error).__name__}: {error}")
        raise Failed(kind) from error
    elapsed = time.perf_counter() - started
    problem = check(answer)
    recorder.record(kind, elapsed, problem)
    if problem:
        raise Failed(kind)
    return answer


class Party:
    """A signed-in client: its browser cookie and its latest refresh token."""

    def __init__(self, base_url: str, client_id: str, username: str) -> None:
        self.relying = RelyingParty(base_url, client_id, username)
        self.relying.sign_in()
        self.cookie = "; ".join(f"{c.name}={c.value}" for c in self.relying.browser.cookies)
        self.basic = "Basic " + base64.b64encode(f"{client_id}:{CLIENT_SECRET}".encode()).decode()
        self.refresh_token = ""

    def token_request(self, form: dict[str, str]) -> tuple[int, Any, bytes]:
        return lean(self.relying.base_url, "POST", "/oauth/token", urlencode(form).encode(),
                    {"Authorization": self.basic, "Content-Type": "application/x-www-form-urlencoded"})


def status_is(*expected: int) -> Callable[[tuple[int, Any, bytes]], str]:
    return lambda answer: "" if answer[0] in expected else f"HTTP {answer[0]}: {answer[2][:160]!r}"


def tokens_check(answer: tuple[int, Any, bytes]) -> str:
    status, _headers, body = answer
    if status != 200 or b'"access_token"' not in body or b'"refresh_token"' not in body:
        return f"HTTP {status}: {body[:160]!r}"
    return ""


def flow(party: Party, recorder: Recorder) -> None:
    url, verifier = party.relying.authorize_url()
    base = party.relying.base_url

    def redirected_with_code(answer: tuple[int, Any, bytes]) -> str:
        location = answer[1].get("Location", "")
        if answer[0] != 302 or not location.startswith(REDIRECT_URI) or "code=" not in location:
            return f"HTTP {answer[0]} → {location[:100]}"
        return ""

    _status, headers, _body = timed(recorder, "authorize (signed in)",
                                    lambda: lean(base, "GET", url[len(base):], headers={"Cookie": party.cookie}),
                                    redirected_with_code)
    code = parse_qs(urlsplit(headers["Location"]).query)["code"][0]
    _status, _headers, body = timed(recorder, "token (code)", lambda: party.token_request({
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier}),
        tokens_check)
    answer = json.loads(body)
    party.refresh_token = answer["refresh_token"]
    timed(recorder, "userinfo", lambda: lean(base, "GET", "/oauth/userinfo",
                                             headers={"Authorization": f"Bearer {answer['access_token']}"}),
          lambda a: "" if a[0] == 200 and b'"sub"' in a[2] else f"HTTP {a[0]}: {a[2][:160]!r}")


def refresh(party: Party, recorder: Recorder) -> None:
    if not party.refresh_token:
        flow(party, recorder)
        return
    _status, _headers, body = timed(recorder, "token (refresh)", lambda: party.token_request({
        "grant_type": "refresh_token", "refresh_token": party.refresh_token}), tokens_check)
    party.refresh_token = json.loads(body)["refresh_token"]


def hosted_start(urls: RelyingParty, browser: requests.Session, recorder: Recorder) -> str:
    """A new browser at the authorization endpoint: the hosted sign-in page's URL."""
    url, _verifier = urls.authorize_url()
    response = timed(recorder, "authorize (signed out)",
                     lambda: browser.get(url, allow_redirects=False, timeout=REQUEST_TIMEOUT),
                     lambda r: "" if r.status_code in (302, 303) and "/sign-in/" in r.headers.get("Location", "")
                     else f"HTTP {r.status_code} → {r.headers.get('Location', '')[:100]}")
    return urljoin(url, response.headers["Location"])


def page_with_form(response: requests.Response) -> str:
    return "" if response.status_code == 200 and CSRF.search(response.text) else f"HTTP {response.status_code}"


def sign_in(urls: RelyingParty, username: str, recorder: Recorder) -> None:
    with requests.Session() as browser:
        page_url = hosted_start(urls, browser, recorder)
        page = timed(recorder, "sign-in page", lambda: browser.get(page_url, allow_redirects=False,
                                                                    timeout=REQUEST_TIMEOUT), page_with_form)
        data = {"csrfmiddlewaretoken": CSRF.search(page.text).group(1),  # type: ignore[union-attr]
                "identifier": username, "password": PASSWORD, "authenticator": "password"}
        response = timed(recorder, "sign-in POST (password)",
                         lambda: browser.post(page_url, data=data, headers={"Referer": page_url},
                                              allow_redirects=False, timeout=REQUEST_TIMEOUT),
                         lambda r: "" if r.status_code == 303 else f"HTTP {r.status_code}")
        url = urljoin(page_url, response.headers["Location"])
        for _hop in range(4):  # back to the authorization endpoint, which answers with the code
            response = timed(recorder, "authorize (after sign-in)",
                             lambda: browser.get(url, allow_redirects=False, timeout=REQUEST_TIMEOUT),  # noqa: B023
                             lambda r: "" if r.status_code in (301, 302, 303) else f"HTTP {r.status_code}")
            url = urljoin(url, response.headers["Location"])
            if url.startswith(REDIRECT_URI):
                if "code=" not in url:
                    recorder.record("authorize (after sign-in)", 0.0, f"no code in {url[:100]}")
                    raise Failed("authorize (after sign-in)")
                return
        recorder.record("authorize (after sign-in)", 0.0, "too many redirects")
        raise Failed("authorize (after sign-in)")


def code_send(urls: RelyingParty, email: str, recorder: Recorder) -> None:
    with requests.Session() as browser:
        page_url = hosted_start(urls, browser, recorder) + "?authenticator=email-code"
        page = timed(recorder, "code tab", lambda: browser.get(page_url, allow_redirects=False,
                                                                timeout=REQUEST_TIMEOUT), page_with_form)
        data = {"csrfmiddlewaretoken": CSRF.search(page.text).group(1),  # type: ignore[union-attr]
                "authenticator": "email-code", "action": "send", "email": email}
        timed(recorder, "code send (e-mail)",
              lambda: browser.post(page_url, data=data, headers={"Referer": page_url}, allow_redirects=False,
                                   timeout=REQUEST_TIMEOUT),
              lambda r: "" if r.status_code == 303 and r.headers.get("Location", "").endswith("?authenticator=email-code")
              else f"HTTP {r.status_code} → {r.headers.get('Location', '')[:100]}")


def schedule(mix: tuple[tuple[str, int], ...]) -> list[str]:
    """One cycle of the mix, interleaved (smooth weighted round robin): 6/2/1/1 → flow, refresh, flow, ..."""
    total = sum(weight for _, weight in mix)
    current = dict.fromkeys((kind for kind, _ in mix), 0)
    order = []
    for _ in range(total):
        for kind, weight in mix:
            current[kind] += weight
        chosen = max(current, key=lambda kind: current[kind])
        current[chosen] -= total
        order.append(chosen)
    return order


def users_needed(config: argparse.Namespace) -> int:
    """Enough accounts that the round robin of code sends stays out of each address's cool-down and
    under its daily limit (with a margin), and at least the flows' parties."""
    share = dict(MIX)["code-send"] / sum(weight for _, weight in MIX)
    sends_per_second = config.rate * share
    total_sends = sends_per_second * config.minutes * 60
    return max(PARTIES + 2, math.ceil(sends_per_second * (CODE_COOLDOWN + 15)),
               math.ceil(total_sends / (CODE_DAILY_LIMIT - 2)) + 1)


def sample_memory(deployed: Deployment, samples: list[tuple[float, dict[int, int]]], started: float,
                  stop: threading.Event) -> None:
    """Every worker's VmRSS once a second (the report takes each window's lowest reading)."""
    while True:
        workers = deployed.server.workers()
        samples.append((time.monotonic() - started, {pid: memory_kib(pid, "VmRSS") for pid in workers}))
        if stop.wait(1.0):
            return


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def run_load(deployed: Deployment, config: argparse.Namespace, recorder: Recorder) -> float:
    """The steady schedule; returns its wall time."""
    client_id, users = deployed.setup["client_id"], deployed.setup["users"]
    parties: list[Party] = [Party(deployed.base_url, client_id, users[i]) for i in range(PARTIES)]
    free_parties: list[Party] = list(parties)
    urls = RelyingParty(deployed.base_url, client_id, "")  # builds the new browsers' authorization URLs
    parties_lock = threading.Lock()
    counters = {"sign-in": 0, "code-send": 0}
    order = schedule(MIX)
    interval = 1 / config.rate
    total = round(config.rate * config.minutes * 60)
    slots = threading.BoundedSemaphore(config.threads * 2)  # started or waiting for a thread

    def operation(kind: str, due: float) -> None:
        try:
            if time.monotonic() - due > 1:
                with recorder.lock:
                    recorder.late += 1
            with recorder.lock:
                recorder.operations[kind] += 1
            if kind in ("flow", "refresh"):
                with parties_lock:
                    party = free_parties.pop() if free_parties else None
                if party is None:  # every party busy: the load generator fell behind
                    with recorder.lock:
                        recorder.dropped += 1
                    return
                try:
                    (flow if kind == "flow" else refresh)(party, recorder)
                finally:
                    with parties_lock:
                        free_parties.append(party)
            else:
                with parties_lock:
                    index = counters[kind]
                    counters[kind] += 1
                if kind == "sign-in":
                    sign_in(urls, users[index % len(users)], recorder)
                else:
                    code_send(urls, f"{users[index % len(users)]}@example.com", recorder)
        except Failed:
            pass
        finally:
            slots.release()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=config.threads) as pool:
        for index in range(total):
            due = started + index * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if not slots.acquire(blocking=False):
                with recorder.lock:
                    recorder.dropped += 1
                continue
            pool.submit(operation, order[index % len(order)], due)
            if index and index % max(1, round(config.rate * 60)) == 0:
                log(f"{index / config.rate / 60:.0f} min: {recorder.requests()} requests, "
                    f"{sum(recorder.errors.values())} errors")
    for party in parties:
        party.relying.close()
    urls.close()
    return time.monotonic() - started


def code_mails(deployed: Deployment) -> int:
    folder = deployed.workdir / "mail"
    return sum(len(CODE_SUBJECT.findall(path.read_text(errors="replace")))
               for path in folder.glob("*") if path.is_file()) if folder.is_dir() else 0


def report(config: argparse.Namespace, recorder: Recorder, elapsed: float,
           samples: list[tuple[float, dict[int, int]]], mails: int, problems: list[str],
           machine: dict[str, str]) -> tuple[str, bool]:
    requests_total = recorder.requests()
    errors_total = sum(recorder.errors.values())
    error_rate = errors_total / max(1, requests_total)
    operations_total = sum(recorder.operations.values()) + recorder.dropped
    dropped_rate = recorder.dropped / max(1, operations_total)
    lines = [
        "# Portcullis soak results",
        "",
        f"Run {machine['when']} by `make soak` (benchmarks/soak.py): {config.minutes:g} min at {config.rate:g} "
        f"operations/s ({elapsed:.0f} s), gunicorn with 2 sync workers, PostgreSQL {machine['postgres']}, Redis; "
        f"{machine['nproc']} CPUs ({machine['cpu']}), Python {machine['python']}; load average (1 min) "
        f"{machine['load_start']} at start, {os.getloadavg()[0]:.2f} at the end; the load generator on the same machine.",
        "",
        "Operations: " + ", ".join(f"{kind} {recorder.operations[kind]}" for kind, _ in MIX)
        + f"; started more than 1 s late: {recorder.late}; not started (load generator saturated): {recorder.dropped}.",
        "",
        "| request | count | errors | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, values in sorted(recorder.latencies.items(), key=lambda item: -len(item[1])):
        lines.append(f"| {kind} | {len(values)} | {recorder.errors[kind]} | {1000 * percentile(values, 0.5):.1f} | "
                     f"{1000 * percentile(values, 0.95):.1f} | {1000 * percentile(values, 0.99):.1f} | "
                     f"{1000 * max(values):.1f} |")
    lines.append(f"| **all** | {requests_total} | {errors_total} | | | | |")

    warmup = min(config.warmup_seconds, config.minutes * 60 / 3)
    window = config.sample_seconds
    pids = sorted({pid for _, rss in samples for pid in rss})
    idle_at, idle = samples[-1]  # taken once the load had stopped

    def floor(pid: int, start: float, stop: float) -> int | None:
        values = [rss[pid] for at, rss in samples[:-1] if start <= at < stop and pid in rss]
        return min(values) if values else None

    lines += ["", f"Worker memory (VmRSS, MiB), read every second: each figure but the last is the lowest reading "
              f"of a {window:g}-s window (with RETAIN_HASH_MEMORY=0 a reading can land in a password hash's 100 MiB, given back after it; by default a worker keeps that block from its first sign-in on, so the warm-up includes sign-ins); "
              f"growth from the end of the warm-up ({warmup:.0f}–{warmup + window:.0f} s) to the end (read once the "
              f"load had stopped, {idle_at:.0f} s); bound {config.rss_growth_mib:g} MiB per worker.", "",
              "| worker | first window | after warm-up | at the end | highest reading | growth | within bound |",
              "|---|---|---|---|---|---|---|"]
    memory_ok = True
    series: dict[int, list[int]] = {}
    for pid in pids:
        readings = [rss[pid] for _, rss in samples if pid in rss]
        first, base = floor(pid, 0, window), floor(pid, warmup, warmup + window)
        series[pid] = [value for start in range(0, int(idle_at), int(window))
                       if (value := floor(pid, start, start + window)) is not None]
        if base is None or pid not in idle:
            memory_ok = False
            lines.append(f"| {pid} | {(first or 0) / 1024:.1f} | n/a | n/a | {max(readings) / 1024:.1f} | "
                         "replaced | **no** |")
            continue
        growth = (idle[pid] - base) / 1024
        ok = growth <= config.rss_growth_mib
        memory_ok &= ok
        lines.append(f"| {pid} | {(first or 0) / 1024:.1f} | {base / 1024:.1f} | {idle[pid] / 1024:.1f} | "
                     f"{max(readings) / 1024:.1f} | {growth:+.1f} | {'yes' if ok else '**no**'} |")
    lines += ["", f"Lowest reading of each {window:g}-s window, MiB:", ""]
    lines += [f"- {pid}: " + " ".join(f"{value / 1024:.0f}" for value in values) for pid, values in series.items()]
    sends = len(recorder.latencies.get("code send (e-mail)", [])) - recorder.errors["code send (e-mail)"]
    verdicts = [
        (f"error rate {100 * error_rate:.3f} % ≤ {100 * config.max_error_rate:g} %", error_rate <= config.max_error_rate),
        (f"operations not started on time (load generator saturated) {100 * dropped_rate:.3f} % ≤ "
         f"{100 * config.max_error_rate:g} %", dropped_rate <= config.max_error_rate),
        (f"worker memory growth ≤ {config.rss_growth_mib:g} MiB, no worker replaced", memory_ok),
        (f"code e-mails written {mails} ≥ sends answered {sends}", mails >= sends),
        (f"gunicorn log without tracebacks or errors ({len(problems)} lines)", not problems),
    ]
    lines += ["", "| check | passed |", "|---|---|"] + [f"| {text} | {'yes' if ok else '**no**'} |"
                                                      for text, ok in verdicts]
    if recorder.samples:
        lines += ["", "First errors:", ""] + [f"- `{sample}`" for sample in recorder.samples]
    if problems:
        lines += ["", "gunicorn log (first 10 problem lines):", ""] + [f"    {line}" for line in problems[:10]]
    return "\n".join(lines) + "\n", all(ok for _, ok in verdicts)


def parse_args() -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=float(env("SOAK_MINUTES", "10")))
    parser.add_argument("--rate", type=float, default=float(env("SOAK_RATE", "10")), help="operations per second")
    parser.add_argument("--threads", type=int, default=32, help="load generator threads")
    parser.add_argument("--warmup-seconds", type=float, default=60)
    parser.add_argument("--sample-seconds", type=float, default=10)
    parser.add_argument("--rss-growth-mib", type=float, default=20)
    parser.add_argument("--max-error-rate", type=float, default=0.001)
    parser.add_argument("--db", type=database_name, default=env("SOAK_DB", "portcullis_soak"))
    parser.add_argument("--output", default=str(ROOT / "var" / "soak-results.md"))
    config = parser.parse_args()
    config.minutes = max(0.25, min(config.minutes, 240.0))
    config.rate = max(0.5, min(config.rate, 200.0))
    config.threads = max(2, min(config.threads, 128))
    config.sample_seconds = max(1.0, min(config.sample_seconds, 60.0))
    return config


def main() -> int:
    config = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that deployment() cleans up
    machine = {"when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
               "nproc": str(len(os.sched_getaffinity(0))), "cpu": cpu_model(), "python": platform.python_version(),
               "load_start": f"{os.getloadavg()[0]:.2f}", "postgres": pg_version()}
    users = users_needed(config)
    with deployment(config.db, users, "soak",
                    EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend") as deployed:
        recorder = Recorder()
        samples: list[tuple[float, dict[int, int]]] = []
        stop = threading.Event()
        started = time.monotonic()
        sampler = threading.Thread(target=sample_memory, args=(deployed, samples, started, stop),
                                   daemon=True)
        sampler.start()
        log(f"{config.minutes:g} min at {config.rate:g} operations/s, {users} users")
        try:
            elapsed = run_load(deployed, config, recorder)
        finally:
            stop.set()
            sampler.join(timeout=5)
        samples.append((time.monotonic() - started, {pid: memory_kib(pid, "VmRSS")
                                                     for pid in deployed.server.workers()}))
        table, passed = report(config, recorder, elapsed, samples, code_mails(deployed),
                               server_log_problems(deployed.server), machine)
    print()
    print(table)
    output = Path(config.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(table)
    log(f"written to {output}; {'passed' if passed else 'FAILED'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
