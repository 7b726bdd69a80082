"""What an operator's tools ask (SPEC §7): /healthz, /readyz with the failing part named, and the
Prometheus /metrics, off by default, protected when on, whose counters move with what happens."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django.core.exceptions import MiddlewareNotUsed
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import OperationalError, connections
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from identity import metrics
from tests.helpers import authorize_params, pkce_pair, query_of, refresh, sign_in_url_from
from tests.servers import free_port

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-" + "x" * 24


def assert_operational(response: Any) -> None:
    """Never cached, no cookie, JSON."""
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies, response.cookies
    assert response["Content-Type"] == "application/json"


# -- /healthz and /readyz ----------------------------------------------------------------------------------
def test_healthz_answers_without_the_database_or_the_cache(client, settings, django_assert_num_queries):
    settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert_operational(response)
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_readyz_is_ready_when_the_database_and_the_cache_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "cache": "ok"}}
    assert_operational(response)


def test_readyz_names_the_cache_when_redis_is_away(client, settings):
    settings.CACHES = {"default": {"BACKEND": "django_redis.cache.RedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}  # nothing listens there
    response = client.get("/readyz")
    assert response.status_code == 503, response.content
    assert response.json() == {"status": "unavailable", "checks": {"database": "ok", "cache": "unavailable"}}
    assert int(response["Retry-After"]) > 0
    assert_operational(response)


def test_readyz_names_the_database_when_it_does_not_answer(client, monkeypatch, caplog):
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("connection to server at 127.0.0.1 failed: secret-dsn-detail")

    monkeypatch.setattr(connections["default"], "cursor", refused)
    response = client.get("/readyz")
    assert response.status_code == 503, response.content
    assert response.json() == {"status": "unavailable", "checks": {"database": "unavailable", "cache": "ok"}}
    assert int(response["Retry-After"]) > 0
    assert_operational(response)
    assert "OperationalError" in caplog.text and "secret-dsn-detail" not in caplog.text  # the kind, not the text


# -- /metrics: off, protected ------------------------------------------------------------------------------
def test_metrics_are_off_by_default_and_the_middleware_is_not_in_the_chain(client, settings):
    assert not getattr(settings, "PORTCULLIS_METRICS_ENABLED", False)
    assert client.get("/metrics").status_code == 404
    with pytest.raises(MiddlewareNotUsed):
        metrics.MetricsMiddleware(lambda request: None)  # type: ignore[arg-type, return-value]


@pytest.fixture
def metrics_on(settings):
    settings.PORTCULLIS_METRICS_ENABLED = True
    settings.PORTCULLIS_METRICS_TOKEN = TOKEN
    return settings


def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain") and response["Cache-Control"] == "no-store"
    assert not response.cookies
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples}


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_the_bearer_token(metrics_on):
    client = Client()
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert missing.json()["key"]["code"] == "invalid_token"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer " + TOKEN[:-1] + "y").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic " + TOKEN).status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer " + TOKEN).status_code == 200


def test_metrics_from_allowed_addresses_only(metrics_on):
    metrics_on.PORTCULLIS_METRICS_TOKEN = ""
    metrics_on.PORTCULLIS_METRICS_ALLOWED_IPS = ["10.0.0.0/8", "2001:db8::/32"]
    refused = Client().get("/metrics")  # the test client comes from 127.0.0.1
    assert refused.status_code == 403 and refused.json()["forbidden"]["code"] == "ip_denied"
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    metrics_on.PORTCULLIS_METRICS_TOKEN = TOKEN  # both set: both are needed
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 401
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_metrics_on_without_protection_refuse_everyone_and_the_checks_say_why(metrics_on, monkeypatch):
    metrics_on.PORTCULLIS_METRICS_TOKEN = ""
    response = Client().get("/metrics")
    assert response.status_code == 403 and response.json()["forbidden"]["code"] == "metrics_unprotected"
    with pytest.raises(SystemCheckError, match="identity.W021"):
        call_command("check", "--fail-level", "WARNING")
    metrics_on.PORTCULLIS_METRICS_ALLOWED_IPS = ["10.0.0.0/8", "not-an-address"]
    with pytest.raises(SystemCheckError, match="identity.E020"):
        call_command("check")
    metrics_on.PORTCULLIS_METRICS_ALLOWED_IPS = []
    metrics_on.PORTCULLIS_METRICS_TOKEN = TOKEN
    monkeypatch.setattr(metrics, "prometheus_client", None)  # not installed
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404
    with pytest.raises(SystemCheckError, match="identity.W020"):
        call_command("check", "--fail-level", "WARNING")


# -- /metrics: the counters move -----------------------------------------------------------------------------
def test_counters_move_with_sign_ins_codes_lockouts_and_tokens(metrics_on, confidential_app, user, mail_code):
    metrics_on.PORTCULLIS_LOCKOUT_THRESHOLD = 2
    client = Client()  # built after the settings: the metrics middleware is in its chain
    before = scrape(client)

    # A password sign-in through the authorization endpoint, then the token exchange and a refresh.
    verifier, challenge = pkce_pair()
    params = authorize_params(confidential_app, challenge)
    url = sign_in_url_from(client.get("/oauth/authorize", params))
    signed_in = client.post(url, {"identifier": "alice", "password": "correct horse battery staple",
                                  "authenticator": "password"})
    assert signed_in.status_code == 303, signed_in.content
    code = query_of(client.get(signed_in["Location"])["Location"])["code"]
    tokens = client.post("/oauth/token", {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                                          "redirect_uri": params["redirect_uri"], "client_id": confidential_app.client_id,
                                          "client_secret": confidential_app.client_secret})
    assert tokens.status_code == 200, tokens.content
    assert refresh(client, confidential_app, tokens.json()["refresh_token"]).status_code == 200

    # A code by e-mail, and two wrong passwords for bob, which lock his (unknown) account.
    other = Client()
    url = sign_in_url_from(other.get("/oauth/authorize", authorize_params(confidential_app)))
    sent = other.post(f"{url}?authenticator=email-code", {"authenticator": "email-code", "action": "send",
                                                          "email": "alice@example.com"})
    assert sent.status_code == 303 and len(mail.outbox) == 1
    for _ in range(2):
        failed = other.post(url, {"identifier": "bob", "password": "wrong", "authenticator": "password"})
        assert failed.status_code in (400, 429), failed.status_code  # the form again, with its error

    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("portcullis_sign_ins_total", outcome="succeeded", method="password") == 1
    assert moved("portcullis_sign_ins_total", outcome="failed", method="password") == 2
    assert moved("portcullis_codes_sent_total", channel="email") == 1
    assert moved("portcullis_lockouts_total") == 1
    assert moved("portcullis_tokens_issued_total", grant_type="authorization_code") == 1
    assert moved("portcullis_tokens_issued_total", grant_type="refresh_token") == 1
    assert moved("portcullis_http_requests_total", endpoint="identity:token", method="POST", status="2xx") == 2
    assert moved("portcullis_http_requests_total", endpoint="experience:sign-in", method="POST", status="3xx") >= 2
    assert moved("portcullis_http_request_duration_seconds_count", endpoint="identity:authorize", method="GET") == 3

    # Bounded labels: URL names, never a path (the interaction's id in /sign-in/<uid>/ is nowhere).
    uid = url.rstrip("/").rsplit("/", 1)[-1]
    assert not [key for key in after if any(uid in label for _name, label in key[1])]
    client.get("/no/such/page/" + "z" * 40)
    unmatched = scrape(client)
    assert value(unmatched, "portcullis_http_requests_total", endpoint="unmatched", method="GET", status="4xx") >= 1
    assert not [key for key in unmatched if any("zzzz" in label for _name, label in key[1])]


def test_the_exposition_names_every_metric_before_anything_happened(metrics_on):
    text = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    for name in ("portcullis_http_requests", "portcullis_http_request_duration_seconds", "portcullis_sign_ins",
                 "portcullis_codes_sent", "portcullis_lockouts", "portcullis_tokens_issued"):
        assert re.search(rf"^# TYPE {name}(_total)? (counter|histogram)$", text, re.M), name


# -- gunicorn with two workers: the metrics of both, JSON logs ---------------------------------------------
@pytest.mark.postgres
def test_two_gunicorn_workers_report_their_metrics_together_and_log_json(tmp_path):
    import json
    import os

    import requests

    from tests.servers import PG_PORT, REDIS_PORT, ROOT, Server, migrated_database, reachable, server_env

    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("runs in the PostgreSQL pass (its server has a database of its own: once is enough)")
    if not (reachable(PG_PORT) and reachable(REDIS_PORT)):
        pytest.skip("needs PostgreSQL and Redis on 127.0.0.1")
    port, metrics_dir = free_port(), tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"")  # left by an earlier run: gunicorn's on_starting removes it
    with migrated_database("portcullis_ops_live") as database:
        env = server_env(database, tmp_path / "var", port, METRICS_ENABLED="1", METRICS_TOKEN=TOKEN, LOG_FORMAT="json",
                         LOG_LEVEL="INFO", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
        server = Server(env, port, tmp_path / "gunicorn.log",
                        extra_args=("-c", str(ROOT / "config" / "gunicorn.conf.py")))
        try:
            server.start(ready_path="/healthz")
            session = requests.Session()
            session.headers["Connection"] = "close"  # a new connection each time
            answered: dict[str, int] = {}
            ids = []
            for _ in range(5):  # five answered by each worker
                for pid, response in server.on_each_worker(lambda: session.get(server.url + "/readyz", timeout=20),
                                                           lambda response: response.headers["X-Worker-Pid"]).items():
                    assert response.status_code == 200, response.text
                    answered[pid] = answered.get(pid, 0) + 1
                    ids.append(response.headers["X-Request-ID"])
            assert len(answered) == 2, answered
            scraped = session.get(server.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=20)
            assert scraped.status_code == 200, scraped.text
            samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                       for family in text_string_to_metric_families(scraped.text) for sample in family.samples}
            assert value(samples, "portcullis_http_requests_total", endpoint="identity:readyz", method="GET",
                         status="2xx") == sum(answered.values())
            assert sorted(path.name for path in metrics_dir.iterdir()) and "counter_1.db" not in os.listdir(metrics_dir)
        finally:
            server.stop()
        lines = [json.loads(line) for line in (tmp_path / "gunicorn.log").read_text().splitlines()
                 if line.startswith("{")]
        access = {line["request_id"]: line for line in lines if line["logger"] == "portcullis.request"}
        for request_id in ids:
            line = access[request_id]
            assert line["path"] == "/readyz" and line["status"] == 200 and line["method"] == "GET"
            assert line["ip"] == "127.0.0.1" and line["level"] == "INFO" and line["duration_ms"] >= 0
