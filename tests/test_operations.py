"""Rate limits, logs and health, with the real parts: Redis, nginx, gunicorn."""

import json
import shutil
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from booking import create_app

from .conftest import ADMIN_PASSWORD, require_service
from .servers import Gunicorn, free_port


def read_log(path) -> list[dict]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]  # every line must be one JSON object


# -- rate limit -----------------------------------------------------------------


def test_the_sixth_request_under_five_per_minute_is_429(settings):
    client = create_app({**settings, "RATE_LIMIT": "5 per minute"}).test_client()
    for left in range(4, -1, -1):
        response = client.get("/api/events/status/1")
        assert response.status_code == 404
        assert response.headers["X-RateLimit-Limit"] == "5"
        assert response.headers["X-RateLimit-Remaining"] == str(left)
        assert "X-RateLimit-Reset" in response.headers
        assert "Retry-After" not in response.headers
    limited = client.get("/api/events/status/1")
    assert limited.status_code == 429
    assert limited.mimetype == "application/problem+json"
    assert limited.json["status"] == 429
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    # Health checks and the docs' assets are never limited.
    for _ in range(10):
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/api/docs/assets/swagger-ui.css").status_code == 200


def test_rate_limit_off_lifts_it(settings):
    client = create_app({**settings, "RATE_LIMIT": "off"}).test_client()
    for _ in range(30):
        response = client.get("/api/events/status/1")
        assert response.status_code == 404
        assert "X-RateLimit-Limit" not in response.headers


@pytest.mark.mariadb
@pytest.mark.slow
def test_with_redis_the_limit_holds_across_workers(mysql_database_url, redis_url, tmp_path):
    log_file = tmp_path / "booking.log"
    with Gunicorn(
        mysql_database_url,
        ADMIN_PASSWORD,
        workers=2,
        RATE_LIMIT="5 per minute",
        RATELIMIT_STORAGE_URI=redis_url,
        RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex}",
        LOG_FILE=log_file,
    ) as server:

        def one(_):
            # A new connection each time, in parallel, so both workers take some.
            return httpx.get(f"{server.url}/api/events/status/1", timeout=10).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(one, range(24)))
    assert statuses.count(404) == 5
    assert statuses.count(429) == 19
    served_by = {
        line["process"] for line in read_log(log_file) if line.get("path") == "/api/events/status/1"
    }
    assert len(served_by) == 2, "requests should have reached both workers"


def test_when_redis_is_down_requests_are_served_and_it_is_logged_once(settings, tmp_path):
    log_file = tmp_path / "booking.log"
    app = create_app(
        {
            **settings,
            "RATE_LIMIT": "100 per minute",
            "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{free_port()}",
            "LOG_FILE": str(log_file),
        }
    )
    client = app.test_client()
    for _ in range(20):
        assert client.get("/api/events/status/1").status_code == 404
    outage = [line for line in read_log(log_file) if "unreachable" in line["message"]]
    assert len(outage) == 1
    assert outage[0]["level"] == "WARNING"


def test_memory_storage_with_several_workers_warns_that_the_limit_is_per_worker(
    settings, tmp_path, monkeypatch
):
    log_file = tmp_path / "booking.log"
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    create_app({**settings, "RATE_LIMIT": "100 per 15 minutes", "LOG_FILE": str(log_file)})
    warnings = [
        line for line in read_log(log_file) if "each worker counts on its own" in line["message"]
    ]
    assert len(warnings) == 1


# -- nginx in front ------------------------------------------------------------


NGINX_CONF = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"


class Nginx:
    """deploy/nginx.conf's server block, on a loopback port, in a scratch prefix."""

    def __init__(self, upstream_port: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = Path(tempfile.mkdtemp(prefix="nginx-"))
        site = NGINX_CONF.read_text()
        site = site.replace("127.0.0.1:3000", f"127.0.0.1:{upstream_port}")
        site = site.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        site = site.replace("server_name booking.example.com;", "server_name _;")
        (self.prefix / "nginx.conf").write_text(
            f"""
daemon off;
worker_processes 1;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {self.prefix}/body;
    proxy_temp_path {self.prefix}/proxy;
    fastcgi_temp_path {self.prefix}/fastcgi;
    uwsgi_temp_path {self.prefix}/uwsgi;
    scgi_temp_path {self.prefix}/scgi;
    {site}
}}
"""
        )
        self.process = None

    def __enter__(self):
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            require_service("nginx", FileNotFoundError(binary))
        self.process = subprocess.Popen(
            [binary, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf")]
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError((self.prefix / "error.log").read_text())

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.prefix, ignore_errors=True)


def client_from(address: str) -> httpx.Client:
    """A client whose connections come from `address` (any of 127.0.0.0/8)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10)


@pytest.mark.mariadb
@pytest.mark.slow
def test_behind_nginx_each_client_address_has_its_own_limit(mysql_database_url):
    with (
        Gunicorn(
            mysql_database_url,
            ADMIN_PASSWORD,
            workers=1,
            RATE_LIMIT="3 per minute",
            TRUSTED_PROXY_COUNT=1,
        ) as server,
        Nginx(server.port) as nginx,
        client_from("127.0.0.2") as alice,
        client_from("127.0.0.3") as bob,
    ):
        url = f"{nginx.url}/api/events/status/1"
        assert [alice.get(url).status_code for _ in range(3)] == [404, 404, 404]
        assert alice.get(url).status_code == 429
        # A forged X-Forwarded-For does not buy alice a fresh limit: nginx
        # appends the real peer and the app trusts only that last hop.
        assert alice.get(url, headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 429
        assert [bob.get(url).status_code for _ in range(3)] == [404, 404, 404]
        assert bob.get(url).status_code == 429
        # The request id nginx passes on comes back.
        assert alice.get(url, headers={"X-Request-ID": "trace-1"}).headers["X-Request-ID"] == (
            "trace-1"
        )


@pytest.mark.mariadb
@pytest.mark.slow
def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(mysql_database_url):
    with (
        Gunicorn(mysql_database_url, ADMIN_PASSWORD, workers=1, RATE_LIMIT="3 per minute") as s,
        httpx.Client(timeout=10) as client,
    ):
        url = f"{s.url}/api/events/status/1"
        statuses = [
            client.get(url, headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
            for i in range(5)
        ]
    assert statuses == [404, 404, 404, 429, 429]


# -- logs ----------------------------------------------------------------------


def test_bookings_and_cancellations_are_logged_as_json_with_request_ids(settings, admin, tmp_path):
    log_file = tmp_path / "logs" / "booking.log"
    client = create_app({**settings, "LOG_FILE": str(log_file)}).test_client()
    created = client.post(
        "/api/events/initialize", json={"eventName": "Gig", "totalTickets": 1}, headers=admin
    )
    event_id = created.json["eventId"]
    booked = client.post(
        "/api/events/book",
        json={"userId": 4711, "eventId": event_id},
        headers={"X-Request-ID": "client-chosen-42"},
    )
    waiting = client.post("/api/events/book", json={"userId": 4712, "eventId": event_id})
    cancelled = client.post("/api/events/cancel", json={"userId": 4711, "eventId": event_id})
    assert booked.headers["X-Request-ID"] == "client-chosen-42"
    assert cancelled.json["promotedUserId"] == 4712

    lines = read_log(log_file)
    outcomes = {(line.get("outcome"), line.get("userId")): line for line in lines}
    book_line = outcomes[("booked", 4711)]
    assert (book_line["eventId"], book_line["tickets"]) == (event_id, 1)
    assert book_line["request_id"] == "client-chosen-42"
    waiting_line = outcomes[("waitlisted", 4712)]
    assert waiting_line["request_id"] == waiting.headers["X-Request-ID"]
    assert waiting_line["tickets"] == 1
    cancel_line = outcomes[("cancelled", 4711)]
    assert cancel_line["tickets"] == 1
    assert (cancel_line["promotedUserIds"], cancel_line["offeredUserIds"]) == ([4712], [])
    assert cancel_line["request_id"] == cancelled.headers["X-Request-ID"]
    assert outcomes[("initialized", None)]["eventId"] == event_id

    requests = [line for line in lines if line["logger"] == "booking.requests"]
    assert {line["route"] for line in requests} >= {"/api/events/book", "/api/events/cancel"}
    for line in requests:
        assert {"time", "request_id", "method", "route", "status", "duration_ms", "client"} <= set(
            line
        )
    text = log_file.read_text()
    assert ADMIN_PASSWORD not in text
    assert admin["Authorization"].split()[1] not in text
    assert "Authorization" not in text


@pytest.mark.parametrize("offered", ["has spaces", "x" * 200, "semi;colon", ""])
def test_an_insane_request_id_is_replaced(client, offered):
    response = client.get("/healthz", headers={"X-Request-ID": offered})
    returned = response.headers["X-Request-ID"]
    assert returned != offered
    assert len(returned) == 32


def test_an_unwritable_log_directory_fails_fast_with_a_clear_message(settings, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(SystemExit) as stopped:
        create_app({**settings, "LOG_FILE": str(blocker / "booking.log")})
    assert "LOG_FILE" in str(stopped.value)


# -- health ----------------------------------------------------------------------


def test_readyz_is_200_when_the_database_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ready"}


def test_readyz_is_503_when_the_database_does_not(settings):
    closed = f"mysql+pymysql://root@127.0.0.1:{free_port()}/nothing"
    client = create_app({**settings, "SQLALCHEMY_DATABASE_URI": closed}).test_client()
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0
    booking = client.post("/api/events/book", json={"userId": 1, "eventId": 1})
    assert booking.status_code == 503
    assert "Traceback" not in booking.get_data(as_text=True)
