"""The whole session's logs, checked for secrets (SPEC §7: never a secret, code, token or password
in a log line).

Every log record of the test session (root logger, DEBUG and up; ``django.db.backends`` from INFO,
so SQL and its parameters never count; not the test clients' own HTTP libraries, ``CLIENT_LOGGERS``) is written by ``identity.logs.JsonFormatter`` to
``var/artefacts/logs/<xdist worker or main>.jsonl`` (emptied when a run starts). When the session
ends, each process greps its own file for the suite's known secrets (tests.helpers' passwords and
TOTP key, every client secret ``make_application`` made) and for shapes no log line may hold (a
JWT, ``Bearer <token>``, a password or client secret with a value); what it finds goes to
``<worker>.found``, and the main process (or xdist's controller, after its workers) prints the
offending lines, redacted, and fails the run.

conftest.py imports the hooks below, which is how pytest finds them.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest

from identity.logs import JsonFormatter

LOG_DIR = Path(__file__).resolve().parent.parent / "var" / "artefacts" / "logs"
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "") or "main"
# Shapes of a secret, whatever its value.
PATTERNS = [
    re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+"),  # a JWT (ID token, signed request object)
    re.compile(r"Bearer\s+[A-Za-z0-9\-._~+/]{8,}=*"),  # an access token as a client sends it
    re.compile(r"password=[^\s&\"',;]+", re.IGNORECASE),  # a form field with its value
    re.compile(r"\"password\"\s*:\s*\"[^\"]+\"", re.IGNORECASE),  # a JSON body's field with its value
    re.compile(r"(?:access|refresh|id)_token['\"]?\s*[:=]\s*['\"]?[A-Za-z0-9\-._~+/]{8,}"),  # a token response
    re.compile(r"client_secret=[^\s&\"',;]+", re.IGNORECASE),
    re.compile(r"\"client_secret\"\s*:\s*\"[^\"]+\"", re.IGNORECASE),
]
MAX_SHOWN = 20


def known_secrets() -> list[str]:
    """The fixed secrets of tests/helpers.py and the client secrets made in this process. (CSRF_SECRET,
    "A" * 32, is left out: it is a made-up token a bad-input test repeats, and HUGE holds it.)"""
    from tests import helpers

    secrets = [helpers.PASSWORD, helpers.NEW_PASSWORD, base64.b32encode(helpers.TOTP_KEY).decode().rstrip("="),
               helpers.TOTP_KEY.hex(), *helpers.CLIENT_SECRETS]
    return sorted({secret for secret in secrets if len(secret) >= 8})


# The tests' own HTTP clients (a relying party sending id_token_hint in a logout URL, as OIDC has it)
# log in this process too; they are the clients' logs, not the server's. No Portcullis app uses them
# (its outbound HTTP is http.client: authenticators.types.outbound), which tests/test_architecture
# could tell if that changed.
CLIENT_LOGGERS = ("urllib3", "requests", "httpx", "httpcore", "hpack")


class QuietSql(logging.Filter):
    """SQL (with its parameters) never reaches the capture, even when a test turns its logger up; nor
    do the test clients' own request lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] in CLIENT_LOGGERS:
            return False
        return record.levelno >= logging.INFO or not record.name.startswith("django.db.backends")


class SessionLogHandler(logging.Handler):
    def __init__(self, path: Path) -> None:
        super().__init__(logging.DEBUG)
        self.path = path
        self.stream = path.open("w", encoding="utf-8", buffering=1 << 16)
        self.setFormatter(JsonFormatter())
        self.addFilter(QuietSql())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")  # JSON: one line whatever the message
        except Exception:  # noqa: BLE001  a record that cannot be formatted must not fail the test
            self.handleError(record)

    def close(self) -> None:
        self.stream.close()
        super().close()


_handler: SessionLogHandler | None = None


def redact(line: str, secrets: list[str]) -> str:
    for secret in secrets:
        line = line.replace(secret, "[secret]")
    for pattern in PATTERNS:
        line = pattern.sub("[secret]", line)
    return line[:400]


def text_of(line: str) -> str:
    """A JSON line's values as they were logged (a message's quotes unescaped)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    return " ".join(str(value) for value in entry.values()) if isinstance(entry, dict) else line


def offending(text: str, secrets: list[str]) -> bool:
    return any(secret in text for secret in secrets) or any(pattern.search(text) for pattern in PATTERNS)


def offending_lines(path: Path, secrets: list[str]) -> list[str]:
    found = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            text = text_of(line)
            if offending(text, secrets):
                found.append(f"{path.name}:{number}: {redact(text, secrets)}")
    return found


# -- the hooks (conftest.py imports them) ------------------------------------------------------------------
def pytest_configure(config: Any) -> None:
    if not hasattr(config, "workerinput"):  # the main process (or xdist's controller): a new run
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        for old in [*LOG_DIR.glob("*.jsonl"), *LOG_DIR.glob("*.found")]:
            old.unlink(missing_ok=True)


def pytest_sessionstart(session: Any) -> None:
    """After django.setup() has applied settings.LOGGING (which replaces the root's handlers)."""
    global _handler
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in root.handlers:  # the console keeps showing what it showed before
        if handler.level == logging.NOTSET:
            handler.setLevel(root.level)
    _handler = SessionLogHandler(LOG_DIR / f"{WORKER}.jsonl")
    root.addHandler(_handler)
    sql = logging.getLogger("django.db.backends")
    if sql.level == logging.NOTSET or sql.level < logging.INFO:
        sql.setLevel(logging.INFO)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session: Any) -> Any:
    """The root logger at DEBUG for the tests. Here, outside pytest's own logging wrapper: that one
    puts back, when it ends, the level it found when it began (its sessionstart's too)."""
    logging.getLogger().setLevel(logging.DEBUG)
    return (yield)


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    global _handler
    if _handler is None:
        return
    logging.getLogger().removeHandler(_handler)
    _handler.close()
    path, _handler = _handler.path, None
    found = offending_lines(path, known_secrets())
    if found:
        (LOG_DIR / f"{WORKER}.found").write_text("\n".join(found) + "\n", encoding="utf-8")
    if hasattr(session.config, "workerinput"):
        return  # the controller reports every worker's findings
    reports = sorted(LOG_DIR.glob("*.found"))
    lines = [line for report in reports for line in report.read_text(encoding="utf-8").splitlines()]
    if not lines:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")

    def write(text: str) -> None:
        reporter.write_line(text) if reporter is not None else print(text)

    write(f"\nA secret appeared in the logs: {len(lines)} lines (redacted below; the files are in {LOG_DIR})")
    for line in lines[:MAX_SHOWN]:
        write("  " + line)
    session.exitstatus = 1
