"""The distribution as a user gets it: ``python -m build`` makes an sdist and, from it, a wheel; the
wheel installed in a fresh virtual environment (no checkout on the path) runs the minimal host
project (tests/minimal, copied elsewhere) and the standalone server under gunicorn.

On the PostgreSQL run of the suite the standalone server runs on a fresh PostgreSQL database and
Redis (``[postgres,redis,serve]``, as docs/deploy.md installs it); otherwise on SQLite (``[serve]``).
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from identity import __version__
from tests.servers import HOST, ROOT, SERVERS_REDIS_URL, Server, base_env, clear_redis_prefix, free_port, pg

APPS = ("identity", "experience", "authenticators")
DATA_DIRS = ("templates", "static", "locale", "migrations")
NEVER_SHIPPED = re.compile(r"(^|/)(tests|var|\.venv|node_modules|__pycache__|\.git|benchmarks|examples)(/|$)|\.pyc$")
POSTGRES = os.environ.get("DATABASE_URL", "").startswith("postgres")
TIMEOUT = 300


@dataclass
class Dist:
    wheel: Path
    sdist: Path
    wheel_names: list[str]
    sdist_names: list[str]  # without the leading "django_portcullis-<version>/"


@dataclass
class Installed:
    python: Path
    bin: Path
    site_packages: Path
    env: dict[str, str]  # an environment that knows nothing of the checkout


def run(command: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=TIMEOUT,
                            **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


# What a working checkout collects beside its sources; none of it may reach a distribution.
LITTER = ("var/portcullis.sqlite3", ".venv/bin/python", "tests/axe/node_modules/axe-core/axe.min.js",
          "tests/spa/node_modules/oidc-client-ts/package.json", "identity/__pycache__/models.cpython-311.pyc",
          "experience/templates/experience/__pycache__/stray.pyc", "examples/magic_link/build/lib/magic_link/x.py")


def checkout_copy(destination: Path) -> Path:
    """The checkout's files as a commit would hold them (tracked, and new ones not ignored) plus the
    litter of a working checkout: a build here cannot lean on leftovers of an earlier build (a stale
    egg-info's SOURCES.txt would put files in that MANIFEST.in and package-data do not)."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    for name in LITTER:
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        (destination / name).write_text("litter\n")
    return destination


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """``python -m build`` as a maintainer runs it: the sdist first, then the wheel built from the
    unpacked sdist."""
    out = tmp_path_factory.mktemp("dist")
    source = checkout_copy(tmp_path_factory.mktemp("checkout"))
    run([sys.executable, "-m", "build", "--outdir", out, source], env=base_env())
    (wheel,), (sdist,) = out.glob("*.whl"), out.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        wheel_names = archive.namelist()
    with tarfile.open(sdist) as archive:
        top = f"django_portcullis-{__version__}/"
        sdist_names = [member.name.removeprefix(top) for member in archive.getmembers() if member.isfile()]
    return Dist(wheel, sdist, wheel_names, sdist_names)


@pytest.fixture(scope="module")
def installed(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A fresh virtual environment (not this one's site-packages) with the wheel and its dependencies
    from the package index (pip's cache makes a repeat quick)."""
    home = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", home / "venv"])
    bin_dir = home / "venv" / "bin"
    env = {key: value for key, value in base_env(HOME=str(home)).items()
           if key not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP"}}
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    extras = "postgres,redis,serve" if POSTGRES else "serve"
    run([bin_dir / "python", "-m", "pip", "install", "--progress-bar", "off", f"{dist.wheel}[{extras}]"], env=env)
    site_packages = Path(run([bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             env=env, cwd=home).stdout.strip())
    return Installed(bin_dir / "python", bin_dir, site_packages, env)


def shipped_data_files(app: str) -> set[str]:
    """Every file the checkout has under an app's templates, static, locale and migrations."""
    return {path.relative_to(ROOT).as_posix() for folder in DATA_DIRS for path in (ROOT / app / folder).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"}


def test_the_wheel_holds_the_apps_with_their_templates_static_files_translations_and_migrations(dist: Dist):
    names = set(dist.wheel_names)
    for app in APPS:
        assert shipped_data_files(app) <= names, sorted(shipped_data_files(app) - names)
        for language in ("ru", "uk"):
            assert {f"{app}/locale/{language}/LC_MESSAGES/django.po",
                    f"{app}/locale/{language}/LC_MESSAGES/django.mo"} <= names
        assert any(re.fullmatch(rf"{app}/migrations/0001_\w+\.py", name) for name in names)
        assert any(name.startswith(f"{app}/templates/") and name.endswith(".html") for name in names)
    assert {"experience/templates/experience/sign_in.html", "identity/static/identity/admin/application.css",
            "identity/static/identity/admin/client_secret.js"} <= names
    # The standalone project is part of the distribution: docs/deploy.md serves `config.wsgi` after pip install.
    assert {"config/wsgi.py", "config/settings.py", "config/management/commands/portcullis_bootstrap.py"} <= names
    assert {name.split("/")[0] for name in names} == {*APPS, "config", f"django_portcullis-{__version__}.dist-info"}
    assert [name for name in names if NEVER_SHIPPED.search(name)] == []


def test_the_wheel_metadata_is_complete_and_has_the_one_version(dist: Dist):
    with zipfile.ZipFile(dist.wheel) as archive:
        metadata = email.parser.Parser().parsestr(
            archive.read(f"django_portcullis-{__version__}.dist-info/METADATA").decode())
    assert dist.wheel.name == f"django_portcullis-{__version__}-py3-none-any.whl"
    assert metadata["Name"] == "django-portcullis" and metadata["Version"] == __version__
    assert metadata["License-Expression"] == "BSD-3-Clause" and metadata["Requires-Python"] == ">=3.11"
    assert metadata["Summary"] and metadata["Description-Content-Type"] == "text/markdown"
    assert "Framework :: Django :: 5.2" in metadata.get_all("Classifier")
    assert set(metadata.get_all("Provides-Extra")) == {"postgres", "redis", "serve", "dev"}
    requirements = metadata.get_all("Requires-Dist")
    assert any(r.startswith("Django") and "extra" not in r for r in requirements)
    # make test installs .[dev]: the build frontend this test runs comes with it.
    assert any(re.fullmatch(r'build>=[\d.]+; extra == "dev"', r) for r in requirements), requirements
    assert metadata.get_payload().startswith("# Portcullis")  # README.md is the long description


def test_the_sdist_has_the_changelog_readme_license_and_a_whole_suite_but_nothing_a_checkout_collects(dist: Dist):
    names = set(dist.sdist_names)
    assert {"CHANGELOG.md", "README.md", "LICENSE", "pyproject.toml", "MANIFEST.in", "Makefile", "manage.py",
            "docs/deploy.md", "tests/conftest.py", "tests/helpers.py", "tests/minimal/settings.py",
            "tests/axe/package-lock.json", "examples/magic_link/pyproject.toml", "benchmarks/run.py"} <= names
    for app in APPS:
        assert shipped_data_files(app) <= names
    assert [name for name in names if re.search(r"(^|/)(node_modules|\.venv|__pycache__|\.git)(/|$)|^var/|\.pyc$",
                                                name)] == []
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert re.search(rf"^## \[{re.escape(__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M), \
        f"CHANGELOG.md has no entry for {__version__}"


PROBE = """
import json, sys
import authenticators, config, experience, identity
from django.template.loader import get_template
from django.utils import translation
from tests.minimal.sign_in import main

outcome = main()
with translation.override("ru"):
    title = translation.gettext("Sign in to %(name)s") % {"name": "X"}
print(json.dumps({**outcome, "version": identity.__version__, "sys_path": sys.path,
                  "modules": [m.__file__ for m in (identity, experience, authenticators, config)],
                  "template": get_template("experience/sign_in.html").origin.name, "ru_title": title}))
"""


def test_the_installed_wheel_serves_the_minimal_host_project(installed: Installed, tmp_path: Path):
    host = tmp_path / "host"  # outside the checkout: only the installed package can be imported
    shutil.copytree(ROOT / "tests" / "minimal", host / "tests" / "minimal",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (host / "tests" / "__init__.py").write_text("")
    (host / "tests" / "minimal" / "installed.py").write_text(
        "from tests.minimal.settings import *  # noqa: F403\n\n"
        "PORTCULLIS_ISSUER = 'https://host.example.com/id'\n"
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': 'host.sqlite3'}}\n")
    env = {**installed.env, "PYTHONPATH": str(host), "DJANGO_SETTINGS_MODULE": "tests.minimal.installed"}
    admin = installed.bin / "django-admin"
    migrated = run([admin, "migrate", "--noinput"], env=env, cwd=host).stdout
    assert "Applying identity.0001" in migrated and "Applying experience.0001" in migrated
    assert "Applying authenticators.0001" in migrated
    checked = run([admin, "check", "--fail-level", "ERROR"], env=env, cwd=host)
    assert "urls.W" not in checked.stdout + checked.stderr  # the routes (branding images) are well formed
    # The wheel's migrations are all there is to its models.
    assert "No changes detected" in run([admin, "makemigrations", "--check", "--dry-run"], env=env, cwd=host).stdout

    probe = run([installed.python, "-c", PROBE], env={**installed.env, "PYTHONPATH": str(host)}, cwd=host)
    outcome = json.loads(probe.stdout)
    assert outcome["version"] == __version__
    for path in [*outcome["modules"], outcome["template"]]:
        assert Path(path).is_relative_to(installed.site_packages), path
    assert not any(entry and Path(entry).resolve().is_relative_to(ROOT) for entry in outcome["sys_path"])
    assert outcome["ru_title"] == "Вход в X"  # the .mo files came along
    assert outcome["sign_in_status"] == 303 and outcome["token_status"] == 200
    assert outcome["userinfo"]["email"] == "bob@example.com"
    assert outcome["login_required"] == ["/id/sign-in/?next=/account/", "/account/", "hello bob"]


@pytest.fixture
def standalone_database() -> Iterator[str]:
    """An empty database for the installed server to migrate: SQLite in its var dir (""), or a fresh
    PostgreSQL database's name on the PostgreSQL run (dropped at the end)."""
    if not POSTGRES:
        yield ""
        return
    name = f"portcullis_pkg_{os.getpid()}_{secrets.token_hex(3)}"
    pg(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_installed_wheel_runs_the_standalone_server(installed: Installed, standalone_database: str,
                                                        tmp_path: Path):
    port, prefix = free_port(), "pkg-" + secrets.token_hex(6)
    env = {**installed.env, "DJANGO_SETTINGS_MODULE": "config.settings", "PORTCULLIS_VAR_DIR": str(tmp_path / "var"),
           "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(40), "ISSUER": f"http://{HOST}:{port}",
           "ALLOWED_HOSTS": HOST, "LOG_LEVEL": "WARNING", "CACHE_KEY_PREFIX": prefix}
    if standalone_database:
        env.update(DATABASE_URL=f"postgres://postgres@{HOST}:5432/{standalone_database}", REDIS_URL=SERVERS_REDIS_URL)
    admin = installed.bin / "portcullis-admin"  # the installed package's manage.py (docs/deploy.md)
    without_var = {key: value for key, value in env.items() if key != "PORTCULLIS_VAR_DIR"}
    var_dir = run([admin, "shell", "-c", "from django.conf import settings; print(settings.VAR_DIR)"],
                  env={**without_var, "DEBUG": "1"}, cwd=tmp_path).stdout.strip().splitlines()[-1]
    assert Path(var_dir) == tmp_path / "var"  # state beside where it runs, never inside site-packages
    assert "Applying identity.0001" in run([admin, "migrate", "--noinput"], env=env, cwd=tmp_path).stdout
    run([admin, "collectstatic", "--noinput", "-v", "0"], env=env, cwd=tmp_path)
    server = Server(env, port, tmp_path / "gunicorn.log", workers=1, gunicorn=installed.bin / "gunicorn",
                    cwd=tmp_path)
    try:
        server.start()
        discovery = requests.get(f"{server.url}/.well-known/openid-configuration", timeout=10).json()
        assert discovery["issuer"] == env["ISSUER"]
        assert requests.get(discovery["jwks_uri"], timeout=10).json()["keys"][0]["kty"] == "RSA"
        browser = requests.Session()
        page = browser.get(f"{server.url}/sign-in/", headers={"Accept-Language": "ru"}, timeout=10)
        assert page.status_code == 200 and "/sign-in/" in page.url
        assert '<html lang="ru"' in page.text and "<h1>Вход в Portcullis" in page.text
        css = requests.get(f"{server.url}/static/identity/admin/application.css", timeout=10)
        assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
        assert css.content == (ROOT / "identity/static/identity/admin/application.css").read_bytes()
        assert requests.get(f"{server.url}/api/docs/", timeout=10).status_code == 200  # sidecar assets, offline
        if standalone_database:  # it ran on PostgreSQL and Redis: its signing key and its cache keys are there
            assert pg("SELECT count(*) FROM identity_signingkey", dbname=standalone_database)[0] >= 1
            import redis

            assert any(redis.Redis.from_url(SERVERS_REDIS_URL).scan_iter(f"{prefix}:*"))
    finally:
        server.stop()
        if standalone_database:
            clear_redis_prefix(SERVERS_REDIS_URL, prefix)
