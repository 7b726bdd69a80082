"""A command-line client of the headless Identity API (docs/headless.md, SPEC §3): it walks the two
diagrams of the B2B document, a password (with a second factor and a captcha) and a one-time code.

    python examples/headless_client.py --server http://127.0.0.1:8000 --client-id ID [--client-secret S] \\
        password --email alice@example.com [--password P]
    python examples/headless_client.py --server http://127.0.0.1:8000 --client-id ID code --email alice@example.com
    python examples/headless_client.py --server http://127.0.0.1:8000 --client-id ID code --phone +15551234567

Standard library only. Prompts and messages go to stderr and answers are read from stdin, so a script
can drive it through a pipe; the UserToken (or, with --quiet, its access token) goes to stdout.
Exit codes: 0 signed in, 1 refused (or an answer the client cannot use), 2 usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

LOGIN_BY_PASSWORD = "/api/authorization/login-by-password"
CHECK_CODE = "/api/authorization/check-code"
SEND_CODE = "/api/authorization/send-code"
LOGIN = "/api/authorization/login"
CAPTCHA_ROUNDS = 3  # a wrong answer brings a new captcha; stop after this many


class Refused(Exception):
    """The server (or the client's own check of a timeout) refused: print the message, exit 1."""


class Client:
    def __init__(self, server: str, client_id: str, client_secret: str | None, scope: str | None) -> None:
        self.server = server.rstrip("/")
        self.credentials: dict[str, Any] = {"client_id": client_id}
        if client_secret:
            self.credentials["client_secret"] = client_secret
        self.scope = scope

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST a JSON body; the status and the JSON answer (an error status is an answer too)."""
        request = urllib.request.Request(
            self.server + path, data=json.dumps({**self.credentials, **body}).encode(), method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, parse(response.read())
        except urllib.error.HTTPError as error:
            return error.code, parse(error.read())
        except (urllib.error.URLError, OSError) as error:
            raise Refused(f"cannot reach {self.server}: {error}") from error

    def scoped(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "scope": self.scope} if self.scope else body

    def with_captcha(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST, and while a ``captcha_answer`` error comes: show its image URL, ask the answer and
        send the same request again with ``captcha: {id, answer}``. The successful answer's JSON."""
        for _ in range(CAPTCHA_ROUNDS):
            status, answer = self.post(path, body)
            if status == 200:
                return answer
            captcha = answer.get("captcha_answer")
            if not isinstance(captcha, dict) or not isinstance(captcha.get("captcha"), dict):
                raise Refused(describe(status, answer))
            say(f"{captcha.get('message', 'Solve the captcha.')}")
            say(f"Captcha image: {captcha['captcha']['url']}")
            say(f"Captcha id: {captcha['captcha']['id']}")
            body = {**body, "captcha": {"id": captcha["captcha"]["id"], "answer": ask("Captcha answer: ")}}
        raise Refused("the captcha was not solved")

    def finish(self, answer: dict[str, Any]) -> dict[str, Any]:
        """A UserToken as it is; a Data2fa finished with a second factor at check-code."""
        if "access_token" in answer:
            return answer
        if "data_2fa" not in answer:
            raise Refused(f"unexpected answer: {json.dumps(answer)}")
        return self.second_factor(answer, Deadline(answer.get("timeout")))

    def second_factor(self, pending: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
        methods = [str(method) for method in pending.get("methods") or []]
        if not methods:
            raise Refused("the account needs a second factor, but none is offered")
        say("A second factor is needed. Methods:")
        for number, method in enumerate(methods, 1):
            say(f"  {number}. {method}")
        method = choose(methods)
        body: dict[str, Any] = {"data_2fa": pending["data_2fa"], "method": method}
        if method == "email_code":
            deadline.check("the sign-in")
            sent = self.with_captcha(SEND_CODE, {"data_2fa": pending["data_2fa"]})
            body["code_id"] = sent["code_id"]
            say("A code was sent to your e-mail address.")
        body["code"] = ask(f"Code ({method}): ")
        deadline.check("the sign-in")
        status, answer = self.post(CHECK_CODE, body)
        if status != 200:
            raise Refused(describe(status, answer))
        return answer

    def password(self, email: str, password: str) -> dict[str, Any]:
        answer = self.with_captcha(LOGIN_BY_PASSWORD, self.scoped({"email": email, "password": password}))
        return self.finish(answer)

    def code(self, address: dict[str, str]) -> dict[str, Any]:
        sent = self.with_captcha(SEND_CODE, address)
        deadline = Deadline(sent.get("timeout"))
        say("A one-time code was sent.")
        code = ask("Code: ")
        deadline.check("the code")
        status, answer = self.post(LOGIN, self.scoped({"code_id": sent["code_id"], "code": code}))
        if status != 200:
            raise Refused(describe(status, answer))
        return self.finish(answer)


class Deadline:
    """A Data2fa's or an OtpCode's ``timeout``, kept by the client (the document's notes): once it
    has passed, the client says so instead of sending the handle."""

    def __init__(self, timeout: Any) -> None:
        seconds = timeout if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else 0
        self.ends = time.monotonic() + seconds

    def check(self, what: str) -> None:
        if time.monotonic() >= self.ends:
            raise Refused(f"{what} has expired (its timeout passed); start again")


def parse(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def describe(status: int, answer: dict[str, Any]) -> str:
    """An error object (SPEC's shape: one key naming the kind) as one line."""
    if len(answer) != 1:
        return f"HTTP {status}: {json.dumps(answer) or 'no JSON answer'}"
    kind, error = next(iter(answer.items()))
    error = error if isinstance(error, dict) else {}
    line = f"{kind}.{error.get('code', '?')}: {error.get('message', '')}".rstrip(": ")
    if kind == "sso" and error.get("url"):
        line += f"\nContinue with single sign-on ({error.get('authenticator', '')}): {error['url']}"
    if kind == "rate_limited":
        line += f"\nRetry after {error.get('retry_after', '?')} seconds."
    if kind == "validation" and error.get("fields"):
        line += f"\nFields: {json.dumps(error['fields'])}"
    return line


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ask(prompt: str) -> str:
    print(prompt, end="", file=sys.stderr, flush=True)
    try:
        return input().strip()
    except EOFError:
        raise Refused("no answer on stdin") from None


def choose(methods: list[str]) -> str:
    picked = ask(f"Method [{methods[0]}]: ")
    if not picked:
        return methods[0]
    if picked.isdigit() and 1 <= int(picked) <= len(methods):
        return methods[int(picked) - 1]
    if picked in methods:
        return picked
    raise Refused(f"not one of the methods: {picked}")


def read_password(given: str | None) -> str:
    if given is not None:
        return given
    if sys.stdin.isatty():
        return getpass.getpass("Password: ", stream=sys.stderr)
    return ask("Password: ")


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Sign in through the headless Identity API.")
    parser.add_argument("--server", required=True, help="The identity server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", default=os.environ.get("PORTCULLIS_CLIENT_SECRET"), help=(
        "A confidential application's secret (default: $PORTCULLIS_CLIENT_SECRET, which keeps it out of the "
        "process list); write --client-secret=S when it starts with '-'."))
    parser.add_argument("--scope", help="Space-separated scopes (default: the server's, openid profile email).")
    parser.add_argument("--quiet", action="store_true", help="Print only the access token.")
    flows = parser.add_subparsers(dest="flow", required=True)
    password = flows.add_parser("password", help="E-mail and password (then a second factor when the user has one).")
    password.add_argument("--email", required=True)
    password.add_argument("--password", help="Otherwise asked (without echo on a terminal, else a line of stdin).")
    code = flows.add_parser("code", help="A one-time code by e-mail or SMS.")
    address = code.add_mutually_exclusive_group(required=True)
    address.add_argument("--email")
    address.add_argument("--phone", help="E.164, e.g. +15551234567")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = arguments(argv)
    client = Client(options.server, options.client_id, options.client_secret, options.scope)
    try:
        if options.flow == "password":
            token = client.password(options.email, read_password(options.password))
        else:
            token = client.code({"email": options.email} if options.email else {"phone_number": options.phone})
    except Refused as refused:
        say(f"Refused: {refused}")
        return 1
    except KeyboardInterrupt:
        say("Interrupted.")
        return 1
    print(token.get("access_token", "") if options.quiet else json.dumps(token, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
