"""GET /metrics: one scrape reports the whole server (prometheus_client multiprocess mode).

Through real gunicorn with 4 workers on MariaDB: bookings spread over the workers
are counted once in one scrape, equal to the tables' counts, and a killed
worker's counts are neither lost nor doubled.
"""

import os
import signal
import time

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from .conftest import ADMIN_PASSWORD, basic_auth, initialize, wipe
from .servers import Gunicorn, wait_for_workers, worker_pids
from .storm import Call, run_storm

ADMIN = basic_auth("admin", ADMIN_PASSWORD)


def samples(text: str) -> dict[tuple, float]:
    """{(name, sorted labels): value} of a scrape."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def outcome(scrape: dict, name: str) -> float:
    return scrape.get(("booking_outcomes_total", (("outcome", name),)), 0.0)


def count(database_url: str, table: str) -> int:
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        found = conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
    engine.dispose()
    return found


def test_metrics_in_one_process(client, admin):
    """The Flask test client: no multiprocess directory, the process's own registry."""
    event_id = client.post(
        "/api/events/initialize", json={"eventName": "M", "totalTickets": 1}, headers=admin
    ).json["eventId"]
    before = samples(client.get("/metrics").get_data(as_text=True))
    client.post("/api/events/book", json={"userId": 1, "eventId": event_id})
    client.post("/api/events/book", json={"userId": 1, "eventId": event_id})  # 409
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    after = samples(response.get_data(as_text=True))
    assert outcome(after, "booked") - outcome(before, "booked") == 1
    refused = ("booking_refusals_total", (("type", "already-booked"),))
    assert after[refused] - before.get(refused, 0) == 1
    assert ("booking_journal_oldest_undelivered_seconds", ()) in after


def test_tickets_are_counted_as_well_as_requests_and_held_back_tickets_are_seen(client, admin):
    """A party of 3 counts 3 tickets booked; free tickets that wait for a blocking party
    show in booking_tickets_held_back (read from the database at scrape time)."""
    event_id = client.post(
        "/api/events/initialize",
        json={"eventName": "M", "totalTickets": 5, "maxOvertakes": 0},
        headers=admin,
    ).json["eventId"]
    before = samples(client.get("/metrics").get_data(as_text=True))
    booked = ("booking_tickets_total", (("outcome", "booked"),))
    client.post("/api/events/book", json={"userId": 1, "eventId": event_id, "tickets": 3})
    client.post("/api/events/book", json={"userId": 2, "eventId": event_id, "tickets": 4})
    after = samples(client.get("/metrics").get_data(as_text=True))
    assert after[booked] - before.get(booked, 0) == 3
    waited = ("booking_tickets_total", (("outcome", "waitlisted"),))
    assert after[waited] - before.get(waited, 0) == 4
    # User 2's party of 4 may not be passed (maxOvertakes 0): the 2 free tickets wait.
    assert after[("booking_tickets_held_back", ())] == 2
    client.post("/api/events/cancel", json={"userId": 1, "eventId": event_id, "tickets": 2})
    after = samples(client.get("/metrics").get_data(as_text=True))
    assert after[("booking_tickets_held_back", ())] == 0
    promoted = ("booking_tickets_total", (("outcome", "promoted"),))
    assert after[promoted] - before.get(promoted, 0) == 4


def test_requests_are_labelled_by_route_as_the_spec_writes_it(client):
    client.get("/api/events/status/77")
    client.get("/api/events/77/users/5")
    routes = {
        dict(labels)["route"]
        for (name, labels) in samples(client.get("/metrics").get_data(as_text=True))
        if name == "booking_http_request_duration_seconds_count"
    }
    assert {"/api/events/status/{eventId}", "/api/events/{eventId}/users/{userId}"} <= routes
    assert not [route for route in routes if "<" in route], routes


@pytest.mark.mariadb
def test_one_scrape_counts_every_worker_and_survives_a_killed_one(mysql_database_url, tmp_path):
    wipe(mysql_database_url)
    metrics_dir = tmp_path / "metrics"
    with Gunicorn(
        mysql_database_url,
        ADMIN_PASSWORD,
        workers=4,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        LOG_FILE=str(tmp_path / "booking.log"),
        LOG_LEVEL="WARNING",
    ) as server:
        event_id = initialize(server.url, "Metrics", 50)
        books = [
            Call("POST", "/api/events/book", {"userId": u, "eventId": event_id})
            for u in range(1, 201)
        ]
        storm = run_storm(server.url, books, concurrency=32)
        assert storm.statuses() == {201: 200}
        cancels = [
            Call("POST", "/api/events/cancel", {"userId": u, "eventId": event_id})
            for u in range(1, 11)
        ]
        run_storm(server.url, cancels, concurrency=8)
        pids = worker_pids(server.process.pid)
        scrape = samples(httpx.get(f"{server.url}/metrics").text)
        booked_rows = count(mysql_database_url, "bookings")
        waiting_rows = count(mysql_database_url, "waiting_list_entries")
        assert (
            outcome(scrape, "booked") + outcome(scrape, "promoted") - outcome(scrape, "cancelled")
            == booked_rows
        )
        assert outcome(scrape, "waitlisted") - outcome(scrape, "promoted") == waiting_rows
        assert outcome(scrape, "cancelled") == 10
        # More than one worker did the work, and each wrote its own files.
        assert len([f for f in os.listdir(metrics_dir) if f.startswith("counter_")]) >= 2
        requests = sum(
            v
            for (name, labels), v in scrape.items()
            if name == "booking_http_request_duration_seconds_count"
            and dict(labels).get("route") == "/api/events/book"
        )
        assert requests == 200

        victim = sorted(pids)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for_workers(server.process.pid, 4, {victim})
        time.sleep(0.5)
        again = samples(httpx.get(f"{server.url}/metrics").text)
        for name in ("booked", "waitlisted", "cancelled", "promoted"):
            assert outcome(again, name) == outcome(scrape, name), name  # not lost, not doubled
        more = [
            Call("POST", "/api/events/book", {"userId": u, "eventId": event_id})
            for u in range(201, 221)
        ]
        run_storm(server.url, more, concurrency=8)
        last = samples(httpx.get(f"{server.url}/metrics").text)
        assert outcome(last, "waitlisted") == outcome(scrape, "waitlisted") + 20


@pytest.mark.mariadb
def test_a_metrics_token_is_required_when_set(mysql_database_url, tmp_path):
    wipe(mysql_database_url)
    with Gunicorn(
        mysql_database_url,
        ADMIN_PASSWORD,
        workers=1,
        METRICS_TOKEN="s3cret-token",
        RATE_LIMIT="2 per minute",
        LOG_FILE=str(tmp_path / "booking.log"),
    ) as server:
        refused = httpx.get(f"{server.url}/metrics")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert (
            httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
        good = {"Authorization": "Bearer s3cret-token"}
        # Never rate limited: far more scrapes than the limit allows.
        for _ in range(5):
            response = httpx.get(f"{server.url}/metrics", headers=good)
            assert response.status_code == 200
        assert "booking_outcomes_total" in response.text or "booking_batch_size" in response.text


def test_the_grafana_dashboard_plots_only_metrics_the_service_exports(client):
    """Every metric a panel of deploy/grafana-dashboard.json queries is in a real scrape."""
    import json
    import re
    from pathlib import Path

    dashboard = json.loads(
        (Path(__file__).resolve().parent.parent / "deploy" / "grafana-dashboard.json").read_text()
    )
    exported = set()
    for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True)):
        exported.add(family.name)
        exported.update(sample.name for sample in family.samples)
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(booking_[a-z_]+)", target["expr"])
    }
    assert len(queried) >= 10
    # A labelled family has no samples until it is used: match the family's name too.
    missing = {
        name
        for name in queried
        if name not in exported and re.sub(r"_(total|bucket|count|sum)$", "", name) not in exported
    }
    assert not missing, missing
