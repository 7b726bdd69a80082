"""Settings of the standalone Portcullis server, read from the environment.

Every variable is documented in docs/configuration.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# A checkout keeps its state in var/ beside manage.py; an installed package (no manage.py beside
# config/, which then lives in site-packages) in ./var of the directory it runs from.
VAR_DIR = Path(os.environ.get("PORTCULLIS_VAR_DIR")
               or (BASE_DIR / "var" if (BASE_DIR / "manage.py").exists() else Path.cwd() / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and not env_bool("PORTCULLIS_ALLOW_GENERATED_SECRET", True):
        raise ImproperlyConfigured("SECRET_KEY must be set")
    # Embedded default: a key generated once and kept beside the SQLite file.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        import secrets

        # Created exclusively: processes starting at once (workers, parallel tests) keep one key.
        try:
            descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(50))
    for _ in range(50):  # another process may be writing it this instant
        SECRET_KEY = key_file.read_text().strip()
        if SECRET_KEY:
            break
        import time

        time.sleep(0.01)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "oauth2_provider",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "captcha",
    "identity",
    "experience",
    "authenticators",
    "config",
]

MIDDLEWARE = [
    "identity.logs.RequestLogMiddleware",  # first: the request id and the access line (docs/deploy.md)
    "identity.metrics.MetricsMiddleware",  # removes itself unless METRICS_ENABLED (no cost when off)
    "identity.middleware.UnavailableMiddleware",  # Redis or PostgreSQL away is a 503, never a 500
    "django.middleware.security.SecurityMiddleware",
    # Discovery and JWKS answered from memory, before the middleware they do not need (docs/performance.md).
    "identity.middleware.PublicDocumentsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "identity.languages.LocaleMiddleware",  # Django's, cheaper without i18n_patterns
    "django.middleware.common.CommonMiddleware",
    "identity.middleware.ReadableBodyMiddleware",  # before CSRF: an unreadable form is a 400, not a 500
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.middleware.AuthenticationMiddleware",  # Django's, leaving no reference cycle behind
    "config.middleware.LazyMessageMiddleware",  # Django's, storage made only when messages are used
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
try:  # whitenoise is in the "serve" extra; the apps do not need it.
    import whitenoise  # noqa: F401
    STATIC_STORAGE = "config.storage.StaticFiles"
except ImportError:  # pragma: no cover
    MIDDLEWARE.remove("whitenoise.middleware.WhiteNoiseMiddleware")
    STATIC_STORAGE = "django.contrib.staticfiles.storage.StaticFilesStorage"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portcullis.sqlite3'}"),
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
    )
}
# A PostgreSQL restarted under a kept connection (CONN_MAX_AGE) is noticed before the request's first
# query and reconnected, instead of failing that query (docs/deploy.md, "Redis and PostgreSQL outages").
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("CONN_HEALTH_CHECKS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend whose health check asks the kernel before it sends SELECT 1 (config.postgresql).
    DATABASES["default"]["ENGINE"] = "config.postgresql"
if DATABASES["default"]["ENGINE"] == "config.postgresql":
    # An unreachable server fails the request in seconds, not after the kernel's TCP timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", int(os.environ.get("DATABASE_CONNECT_TIMEOUT", "5")))
    # The hot paths' lookups (identity.prepared) are prepared on each connection after 5 runs and
    # then only executed; Django's other queries are never prepared. 0 turns it off (a pooler that
    # cannot keep prepared statements: docs/configuration.md).
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = int(os.environ.get("DATABASE_PREPARE_THRESHOLD", "5")) or None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let several processes share the embedded file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Tests use a file too: an in-memory database cannot take parallel writers (race tests).
    # One file per test process, so that two runs in one checkout do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-portcullis-{os.getpid()}.sqlite3")}

REDIS_URL = os.environ.get("REDIS_URL", "")
# Parallel test workers (pytest-xdist names each in PYTEST_XDIST_WORKER: gw0, gw1, ...) clear the
# cache between tests, so each gets its own: REDIS_URL's database counting down (gw0 keeps it), or
# its own file cache directory. The test databases are per worker already (pytest-django).
TEST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if TEST_WORKER and REDIS_URL:
    from urllib.parse import urlsplit, urlunsplit

    _parts = urlsplit(REDIS_URL)
    _base = int(_parts.path.strip("/") or 0)
    REDIS_URL = urlunsplit(_parts._replace(path=f"/{(_base - int(TEST_WORKER[2:] or 0)) % 16}"))
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.redis_cache.RedisCache",  # django-redis's (its close() made cheap)
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "portcullis"),
            # A Redis that is down or hung fails the request quickly (a 503, identity.middleware) instead of
            # holding a worker. Never IGNORE_EXCEPTIONS: lockouts and rate limits must fail closed.
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": float(os.environ.get("REDIS_CONNECT_TIMEOUT", "1")),
                "SOCKET_TIMEOUT": float(os.environ.get("REDIS_TIMEOUT", "2")),
            },
        }
    }
else:
    # Without Redis: a file cache, which every worker process on the machine shares.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache" / TEST_WORKER) if TEST_WORKER else str(VAR_DIR / "cache"),
        }
    }

# Durable by default (the database, read through the cache). "django.contrib.sessions.backends.cache"
# keeps sessions in Redis only: fewer writes per sign-in, but a Redis flush signs everyone out.
SESSION_ENGINE = os.environ.get("SESSION_ENGINE", "identity.session_store")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Secure whenever the issuer is https (DEBUG or not, TLS ending here or at a proxy); a plain-http
# loopback issuer keeps plain cookies for local runs. Without ISSUER only DEBUG runs (identity.E002).
SESSION_COOKIE_SECURE = os.environ.get("ISSUER", "").strip().lower().startswith("https://") or env_bool(
    "SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(14 * 24 * 3600)))
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # a load balancer's probes may come over plain http
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# The signed-in user is loaded with a statement built once (identity.backends); credentials and
# permissions stay Django's ModelBackend's.
AUTHENTICATION_BACKENDS = ["identity.backends.SessionUserBackend", "django.contrib.auth.backends.ModelBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "identity.hashers.ClientSecretHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ru", "Русский"), ("uk", "Українська")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# collectstatic writes hashed, compressed copies that WhiteNoise serves as immutable (config/storage.py).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": STATIC_STORAGE},
}
# Uploaded branding images (logos, favicons): served by experience.branding_views from here, or by the
# proxy from the same directory with the same headers (docs/deploy.md). Several hosts share it.
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-simple-captcha: our challenge (from secrets, 6 characters; experience.captcha). Never
# CAPTCHA_TEST_MODE here: with DEBUG off it is a system check error (experience.E010).
CAPTCHA_CHALLENGE_FUNCT = "experience.captcha.challenge"
CAPTCHA_TIMEOUT = 5  # minutes, the library's own forms; experience.captcha uses PORTCULLIS_CAPTCHA_TIMEOUT

# @login_required pages (of a host project too) send the user to the hosted sign-in with ?next=.
LOGIN_URL = "experience:sign-in-start"
LOGIN_REDIRECT_URL = "/"

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Seconds an SMTP connection may wait for the server (Django's default is none): a server that takes
# the connection and then says nothing would otherwise hold the worker that sends (a sign-in's
# notice, a code) for as long as the connection lasts. Past it the send is a DeliveryError: a
# sign-in goes on without its notice, a code's request answers 503 (identity.W005 checks it is set).
EMAIL_TIMEOUT = float(os.environ.get("EMAIL_TIMEOUT", "10"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Portcullis <no-reply@localhost>")

# SMS (one-time codes by text message): a backend's dotted path, see docs/configuration.md.
PORTCULLIS_SMS_BACKEND = os.environ.get("SMS_BACKEND", "identity.delivery.ConsoleSmsBackend")
PORTCULLIS_SMS_FILE_PATH = os.environ.get("SMS_FILE_PATH", str(VAR_DIR / "sms"))
PORTCULLIS_SMS_FROM = os.environ.get("SMS_FROM", "")
PORTCULLIS_SMS_HTTP_URL = os.environ.get("SMS_HTTP_URL", "")
PORTCULLIS_SMS_HTTP_TOKEN = os.environ.get("SMS_HTTP_TOKEN", "")
PORTCULLIS_SMS_HTTP_USERNAME = os.environ.get("SMS_HTTP_USERNAME", "")
PORTCULLIS_SMS_HTTP_FORMAT = os.environ.get("SMS_HTTP_FORMAT", "json")

# OpenID provider. ISSUER is required unless DEBUG is on (identity.E002: manage.py and, through
# config.wsgi / config.asgi, gunicorn refuse to start); with DEBUG the site root of each request.
PORTCULLIS_ISSUER = os.environ.get("ISSUER", "").strip()
PORTCULLIS_SIGNING_KEY_PEM = os.environ.get("SIGNING_KEY_PEM", "")
PORTCULLIS_SIGNING_KEY_FILE = os.environ.get("SIGNING_KEY_FILE", "")
# Behind a reverse proxy (identity.network): the header whose LAST address is the client IP, and the
# header naming the client's region (ISO 3166-1 alpha-2). Unset: the socket address; no region.
PORTCULLIS_TRUSTED_PROXY_HEADER = os.environ.get("TRUSTED_PROXY_HEADER", "").strip()
PORTCULLIS_REGION_HEADER = os.environ.get("REGION_HEADER", "").strip()
# The experience's access rules where the provider issues codes and tokens (experience.access_control).
PORTCULLIS_TOKEN_CHECK = "experience.access_control.token_check"
PORTCULLIS_AUTHORIZE_CHECK = "experience.access_control.authorize_check"
PORTCULLIS_DEMO = env_bool("PORTCULLIS_DEMO", False)
PORTCULLIS_DEMO_CLIENT_ID = os.environ.get("PORTCULLIS_DEMO_CLIENT_ID", "portcullis-demo")

# Two-factor (docs/mfa.md): TOTP secrets sealed at rest with this key (comma-separated: rotation).
PORTCULLIS_TOTP_ENCRYPTION_KEY = env_list("TOTP_ENCRYPTION_KEY", "")
# The JSON APIs (Django REST framework): JSON only, errors in SPEC's shape, schemas by drf-spectacular.
# The Experience API's views fix their own parsers, CSRF and error handler; these are the defaults.
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PARSER_CLASSES": ["experience.api.parsers.BoundedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["experience.api.authentication.CsrfSession"],
    "DEFAULT_PERMISSION_CLASSES": [],
    "EXCEPTION_HANDLER": "experience.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Portcullis",
    "DESCRIPTION": "The JSON APIs of Portcullis: the Experience API (a custom sign-in UI over the interaction "
                   "engine). Errors: one top-level key naming the kind, holding `code` and `message`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page works offline: Swagger UI from drf-spectacular-sidecar's static files.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},  # no call to swagger.io's validator
}

# django-oauth-toolkit policy: identity.defaults installs the safe defaults; override keys here if needed.
OAUTH2_PROVIDER: dict[str, object] = {}

# Operations (docs/deploy.md, "Health checks, metrics and logs"): /metrics is off unless METRICS_ENABLED,
# and then needs METRICS_TOKEN (a bearer token) and/or a client IP in METRICS_ALLOWED_IPS.
PORTCULLIS_METRICS_ENABLED = env_bool("METRICS_ENABLED", False)
PORTCULLIS_METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
PORTCULLIS_METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", "")
# Argon2's working memory stays mapped between sign-ins (identity.allocator): a third less CPU a hash.
PORTCULLIS_RETAIN_HASH_MEMORY = env_bool("RETAIN_HASH_MEMORY", True)

# LOG_FORMAT=json: one JSON object a line (identity.logs.JsonFormatter); the default is plain text.
# Every record carries the id of the request it was written for (identity.logs.RequestIdFilter).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").strip().lower()
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured("LOG_FORMAT must be text or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "identity.logs.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "identity.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
