"""docs/deploy.md, followed literally: its ``sh deploy…`` blocks run in the page's order with bash
(``set -euo pipefail``), with only the values of the variables its ``sh deploy-env`` blocks export
changed (a fresh database and role on 127.0.0.1, Redis under a key prefix of its own, two ports, a
temporary directory for keys, static files and var). Between the blocks the test does what an
operator then checks: two gunicorn processes started with the page's command line, a sign-in through
the hosted pages of the first (authorize with PKCE, the sign-in form, code, token), a refresh through
the second, the static files from both; after the backup block, the restore block into a new
database and a server on it that still knows the user, the key and the refresh token.

Needs PostgreSQL and Redis on 127.0.0.1 (skipped otherwise). Drops the databases and the role it
made and deletes its Redis keys at the end."""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from jwcrypto import jwk

from tests.servers import (
    HOST,
    PG_PORT,
    REDIS_PORT,
    ROOT,
    LiveBrowser,
    Server,
    base_env,
    clear_redis_prefix,
    free_port,
    pg,
    pkce,
    reachable,
    token_request,
    verified_claims,
)

pytestmark = pytest.mark.postgres

DOC = ROOT / "docs" / "deploy.md"
BLOCK = re.compile(r"^```sh (deploy(?:-[a-z]+)?)\n(.*?)^```$", re.M | re.S)
EXPORT = re.compile(r"^export ([A-Z_][A-Z0-9_]*)=(.*)$")


def blocks() -> list[tuple[str, str]]:
    """The page's marked blocks, in order: (kind, text)."""
    found = [(match.group(1), match.group(2)) for match in BLOCK.finditer(DOC.read_text())]
    kinds = {kind for kind, _text in found}
    assert kinds == {"deploy-env", "deploy", "deploy-serve", "deploy-backup", "deploy-restore"}, kinds
    return found


def test_the_marked_blocks_are_plain_sh_blocks_to_a_reader() -> None:
    """GitHub and CommonMark take the info string's first word as the language: the marked blocks
    are highlighted as ``sh``; every ``deploy-env`` line is an export the test can change."""
    for kind, text in blocks():
        if kind == "deploy-env":
            for line in text.splitlines():
                assert EXPORT.match(line) or not line.strip() or line.startswith("#"), line


class Walkthrough:
    """The page's variables (as the page sets them, then changed by ``values``) and a bash to run
    its blocks in."""

    def __init__(self, values: dict[str, str], tmp: Path) -> None:
        self.values, self.tmp = values, tmp
        self.exported: dict[str, str] = {}
        path = f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        self.base = base_env(PATH=path)

    def export(self, text: str, change: dict[str, str]) -> None:
        for line in text.splitlines():
            match = EXPORT.match(line)
            if match:
                name, written = match.groups()
                self.exported[name] = change[name] if name in change else self.values.get(name, written)

    def script(self, text: str) -> str:
        exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in self.exported.items())
        return "set -euo pipefail\n" + exports + text

    def run(self, text: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["bash", "-c", self.script(text)], cwd=ROOT, env=self.base, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, f"{text}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
        return result

    def server(self, text: str, bind_port: int, log: Path) -> Server:
        """The page's gunicorn line, run by bash (``exec``: the server is the process the test stops)."""
        command = text.strip()
        assert command.startswith("gunicorn "), command
        self.exported["BIND"] = f"{HOST}:{bind_port}"
        server = Server(self.base, bind_port, log, command=["bash", "-c", self.script("exec " + command)])
        server.start()
        return server


@pytest.fixture
def place(tmp_path: Path) -> Iterator[dict[str, Any]]:
    if not (reachable(PG_PORT) and reachable(REDIS_PORT)):
        pytest.skip("needs PostgreSQL and Redis on 127.0.0.1")
    name = f"portcullis_deploy_{os.getpid()}_{secrets.token_hex(3)}"
    redis_url = os.environ.get("SERVERS_REDIS_URL", f"redis://{HOST}:{REDIS_PORT}/3")
    prefix = "deploy-" + secrets.token_hex(6)
    ports = [free_port(), free_port()]
    place = {"name": name, "restored": name + "_restored", "redis_url": redis_url, "prefix": prefix,
             "ports": ports, "servers": []}
    try:
        yield place
    finally:
        for server in place["servers"]:
            server.stop()
        for database in (place["name"], place["restored"]):
            pg(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        pg(f'DROP ROLE IF EXISTS "{name}"')
        clear_redis_prefix(redis_url, prefix)


def test_the_deploy_walkthrough_serves_signs_in_and_survives_a_restore(place: dict[str, Any], tmp_path: Path) -> None:
    name, restored, ports = place["name"], place["restored"], place["ports"]
    issuer = f"http://{HOST}:{ports[0]}"
    var = tmp_path / "var"

    def database_url(database: str) -> str:
        return f"postgres://{name}:pw@{HOST}:{PG_PORT}/{database}"

    values = {
        "DATABASE_URL": database_url(name), "REDIS_URL": place["redis_url"], "CACHE_KEY_PREFIX": place["prefix"],
        "SECRET_KEY": secrets.token_urlsafe(40), "ISSUER": issuer, "ALLOWED_HOSTS": HOST,
        "PORTCULLIS_VAR_DIR": str(var), "STATIC_ROOT": str(var / "static"), "MEDIA_ROOT": str(var / "media"),
        "SIGNING_KEY_FILE": str(tmp_path / "keys" / "signing-key.pem"),
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend", "EMAIL_HOST": HOST,
        "WEB_CONCURRENCY": "2", "PGHOST": HOST, "PGPORT": str(PG_PORT), "PGUSER": "postgres",
        "DB_NAME": name, "DB_USER": name, "DB_PASSWORD": "pw",
        "DJANGO_SUPERUSER_PASSWORD": secrets.token_urlsafe(16), "CLIENT_SECRET": secrets.token_urlsafe(32),
        "TOTP_ENCRYPTION_KEY": secrets.token_urlsafe(32),
        "TRY_PASSWORD": "a long and unusual passphrase", "BACKUP_DIR": str(tmp_path / "backups"),
        "RESTORE_DB": restored,
    }
    page = Walkthrough(values, tmp_path)
    state: dict[str, Any] = {}

    for kind, text in blocks():
        if kind == "deploy-env":
            change = {}
            if "RESTORE_DB" in text:  # the restore's own values: the dump just made, the new database
                change = {"BACKUP_FILE": str(max((tmp_path / "backups").glob("*.dump"))),
                          "DATABASE_URL": database_url(restored)}
            page.export(text, change)
        elif kind == "deploy":
            page.run(text)
        elif kind == "deploy-serve" and not state:
            state["serve"] = text
            one = page.server(text, ports[0], tmp_path / "one.log")
            place["servers"].append(one)
            two = page.server(text, ports[1], tmp_path / "two.log")
            place["servers"].append(two)
            state.update(served(page, one, two))
        elif kind == "deploy-backup":
            page.run(text)
            # After the backup: one more refresh, whose token the restore will not know.
            after = token_request(state["two"], page.exported["CLIENT_ID"], values["CLIENT_SECRET"],
                                  grant_type="refresh_token", refresh_token=state["refresh_token"])
            assert after.status_code == 200, after.text
            state["refresh_after_backup"] = after.json()["refresh_token"]
        elif kind == "deploy-restore":
            for server in place["servers"]:  # "stop every gunicorn"
                server.stop()
            page.run(text)
            assert pg("SELECT count(*) FROM auth_user", restored) == (2,)
            again = page.server(state["serve"], ports[0], tmp_path / "restored.log")
            place["servers"].append(again)
            after_restore(page, again, state)
    assert state.get("restored"), "the page has no restore after its gunicorn line"


def served(page: Walkthrough, one: Server, two: Server) -> dict[str, Any]:
    """Both servers answer as one deployment: the static files, a sign-in on one, a refresh on two."""
    env = page.exported
    manifest = json.loads((Path(env["STATIC_ROOT"]) / "staticfiles.json").read_text())["paths"]
    hashed = manifest["admin/css/base.css"]
    assert hashed != "admin/css/base.css"
    for server in (one, two):
        css = requests.get(f"{server.url}/static/{hashed}", timeout=30)
        assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
        assert "immutable" in css.headers["Cache-Control"] and "max-age=315360000" in css.headers["Cache-Control"]
        assert requests.get(f"{server.url}/static/admin/css/base.css", timeout=30).status_code == 200
        discovery = requests.get(server.url + "/.well-known/openid-configuration", timeout=30).json()
        assert discovery["issuer"] == env["ISSUER"]
    key = jwk.JWK.from_pem(Path(env["SIGNING_KEY_FILE"]).read_bytes())
    tokens = sign_in(page, one)
    kid, claims = verified_claims(two, tokens["id_token"])
    assert kid == key.thumbprint()  # the key the page made, imported
    assert claims["email"] == env["TRY_EMAIL"] and claims["iss"] == env["ISSUER"]
    refreshed = token_request(two, env["CLIENT_ID"], env["CLIENT_SECRET"], grant_type="refresh_token",
                              refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert pg("SELECT is_superuser FROM auth_user WHERE username = %s", env["DB_NAME"],
              (env["DJANGO_SUPERUSER_USERNAME"],)) == (True,)
    return {"one": one, "two": two, "refresh_token": refreshed.json()["refresh_token"], "kid": kid,
            "sub": claims["sub"]}


def sign_in(page: Walkthrough, server: Server) -> dict[str, Any]:
    """The relying party the page registered, and the account it made: authorize with PKCE, the
    hosted sign-in form, the code, the token."""
    env = page.exported
    browser = LiveBrowser(urlsplit(env["DATABASE_URL"]).path.lstrip("/"))
    verifier, challenge = pkce()
    state, response = browser.authorize(server, env["CLIENT_ID"], env["CLIENT_REDIRECT_URI"], challenge)
    assert response.status_code in (302, 303), response.text[:1000]
    signed_in = browser.sign_in_with_password(server, server, urlsplit(response.headers["Location"]).path,
                                              env["TRY_EMAIL"], env["TRY_PASSWORD"])
    code = browser.code_after(server, signed_in, env["CLIENT_REDIRECT_URI"], state)
    tokens = token_request(server, env["CLIENT_ID"], env["CLIENT_SECRET"], grant_type="authorization_code",
                           code=code, redirect_uri=env["CLIENT_REDIRECT_URI"], code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text
    return dict(tokens.json())


def after_restore(page: Walkthrough, server: Server, state: dict[str, Any]) -> None:
    """The restored database serves: the refresh token from before the backup works, the one from
    after it is unknown, the user signs in again, signed by the same key."""
    env = page.exported
    unknown = token_request(server, env["CLIENT_ID"], env["CLIENT_SECRET"], grant_type="refresh_token",
                            refresh_token=state["refresh_after_backup"])
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_grant"
    refreshed = token_request(server, env["CLIENT_ID"], env["CLIENT_SECRET"], grant_type="refresh_token",
                              refresh_token=state["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert verified_claims(server, refreshed.json()["id_token"])[1]["sub"] == state["sub"]
    tokens = sign_in(page, server)
    kid, claims = verified_claims(server, tokens["id_token"])
    assert kid == state["kid"] and claims["sub"] == state["sub"]
    state["restored"] = True
