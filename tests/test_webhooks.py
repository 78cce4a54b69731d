"""Webhooks end to end: real gunicorn for the API, the real worker process
(`flask --app wsgi worker`), real HTTP receivers on loopback, the real MariaDB.

Every change is journalled and sent, signed (Standard Webhooks), in commit
order, to each webhook that wants it; failures are retried with backoff in
entry order, 410 and WEBHOOK_MAX_AGE disable, and private destinations are
refused both at creation and at delivery. Nothing is mocked: the retry timings
are made short through the worker's environment.
"""

import base64
import itertools
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import sqlalchemy as sa

from booking.storage.journal import TYPES

from .conftest import ADMIN_PASSWORD, basic_auth, wipe
from .receivers import Receiver, WorkerProcess, verified
from .servers import Gunicorn
from .test_durability import book, cancel, initialize

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

ADMIN = basic_auth("admin", ADMIN_PASSWORD)
PROBLEM = "urn:booking:problem:"
# Short retries so a test of backoff takes a fraction of a second.
FAST = {"WEBHOOK_RETRY_BASE": 0.05, "WEBHOOK_RETRY_CAP": 0.2}


def gunicorn(database_url: str, log_dir, **env) -> Gunicorn:
    return Gunicorn(
        database_url,
        ADMIN_PASSWORD,
        workers=2,
        LOG_FILE=str(log_dir / "booking.log"),
        LOG_LEVEL="WARNING",
        **env,
    )


@pytest.fixture(scope="module")
def server(mysql_database_url, tmp_path_factory):
    """One gunicorn for the module, allowed to subscribe loopback receivers."""
    with gunicorn(
        mysql_database_url, tmp_path_factory.mktemp("gunicorn"), WEBHOOK_ALLOW_PRIVATE="true"
    ) as running:
        yield running


@pytest.fixture
def api(server, mysql_database_url):
    """An HTTP client on the module's server, the database wiped first."""
    wipe(mysql_database_url)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def worker(database_url: str, tmp_path, **env) -> WorkerProcess:
    return WorkerProcess(database_url, output=tmp_path / "worker.log", **env)


def subscribe(api: httpx.Client, url: str, **fields) -> dict:
    response = api.post("/api/webhooks", json={"url": url, **fields}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def webhook(api: httpx.Client, webhook_id: int) -> dict:
    response = api.get(f"/api/webhooks/{webhook_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def deliveries(api: httpx.Client, webhook_id: int, limit: int = 100) -> list[dict]:
    """Every attempt, walking the pages."""
    found, cursor = [], None
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = api.get(f"/api/webhooks/{webhook_id}/deliveries", params=params, headers=ADMIN)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["webhookId"] == webhook_id
        found += page["deliveries"]
        if (cursor := page["nextCursor"]) is None:
            return found


def history(api: httpx.Client, event_id: int) -> list[dict]:
    found, cursor = [], None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        response = api.get(f"/api/events/{event_id}/history", params=params, headers=ADMIN)
        assert response.status_code == 200, response.text
        found += response.json()["entries"]
        if (cursor := response.json()["nextCursor"]) is None:
            return found


def change(api: httpx.Client, event_id: int, **fields) -> dict:
    response = api.patch(f"/api/events/{event_id}", json=fields, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def sequence_now(api: httpx.Client, event_id: int) -> None:
    """Reading a history gives entry ids to everything committed, so a webhook made
    next starts after it (a webhook starts at the last entry id given out)."""
    history(api, event_id)


def wait_until(condition: Callable[[], object], timeout: float = 20, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


def kinds(payloads: list[dict]) -> list[tuple[str, int | None]]:
    return [(p["type"], p["data"]["userId"]) for p in payloads]


def entry_ids(received) -> list[int]:
    return [int(r.webhook_id) for r in received]


def seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def as_history(payload: dict) -> dict:
    """A delivered body in the history route's shape."""
    data = dict(payload["data"])
    return {
        "entryId": data.pop("entryId"),
        "type": payload["type"],
        "eventId": data.pop("eventId"),
        "userId": data.pop("userId"),
        "at": payload["timestamp"],
        "data": data,
    }


def test_every_change_type_arrives_signed_in_commit_order(api, mysql_database_url, tmp_path):
    with Receiver() as receiver, worker(mysql_database_url, tmp_path):
        hook = subscribe(api, receiver.url)
        assert hook["eventTypes"] == ["*"] and hook["eventId"] is None and hook["enabled"]
        event_id = initialize(api, "One seat", 1)
        assert book(api, event_id, 1)["status"] == "booked"
        assert book(api, event_id, 2)["status"] == "waitlisted"
        assert book(api, event_id, 3)["status"] == "waitlisted"
        cancel(api, event_id, 3)
        assert cancel(api, event_id, 1)["promotedUserId"] == 2
        change(api, event_id, totalTickets=2, eventName="Two seats")
        assert book(api, event_id, 4)["status"] == "booked"
        received = receiver.wait_for(9, timeout=20)

    assert len(receiver.received) == 9  # each acknowledged once, nothing else sent
    payloads = [verified(r, hook["secret"]) for r in received]
    assert kinds(payloads) == [
        ("event.created", None),
        ("booking.booked", 1),
        ("waitlist.joined", 2),
        ("waitlist.joined", 3),
        ("waitlist.left", 3),
        ("booking.cancelled", 1),
        ("booking.promoted", 2),
        ("event.updated", None),
        ("booking.booked", 4),
    ]
    for r, payload in zip(received, payloads, strict=True):
        assert r.headers["content-type"] == "application/json"
        assert r.webhook_id == str(payload["data"]["entryId"])
        assert payload["data"]["eventId"] == event_id
        assert json.loads(r.body) == payload
    ids = entry_ids(received)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert ids[0] > hook["deliveredUpTo"]
    # What was sent is the journal, field for field.
    assert [as_history(p) for p in payloads] == history(api, event_id)
    assert payloads[2]["data"]["position"] == 1 and payloads[3]["data"]["position"] == 2
    assert payloads[6]["data"]["cause"] == "booking.cancelled"
    assert payloads[7]["data"]["eventName"] == "Two seats"
    assert payloads[7]["data"]["totalTickets"] == 2
    # Every delivery was one attempt, answered 200, and the cursor reached the end.
    attempts = deliveries(api, hook["webhookId"])
    assert [(d["entryId"], d["attempt"], d["statusCode"]) for d in attempts] == [
        (i, 1, 200) for i in ids
    ]
    assert webhook(api, hook["webhookId"])["deliveredUpTo"] == ids[-1]


def test_filters_send_each_webhook_only_what_it_asked_for(api, mysql_database_url, tmp_path):
    a = initialize(api, "A", 1)
    b = initialize(api, "B", 1)
    sequence_now(api, a)
    receivers = {name: Receiver().start() for name in ("only_a", "promoted", "all", "b_cancel")}
    try:
        hooks = {
            "only_a": subscribe(api, receivers["only_a"].url, eventId=a),
            "promoted": subscribe(api, receivers["promoted"].url, eventTypes=["booking.promoted"]),
            "all": subscribe(api, receivers["all"].url, eventTypes=["*"]),
            "b_cancel": subscribe(
                api,
                receivers["b_cancel"].url,
                eventId=b,
                eventTypes=["booking.cancelled", "event.updated"],
            ),
        }
        for event_id in (a, b):
            book(api, event_id, 1)
        for event_id in (a, b):
            book(api, event_id, 2)
        for event_id in (a, b):
            cancel(api, event_id, 1)  # cancelled, and 2 promoted
        change(api, b, eventName="B renamed")
        worker(mysql_database_url, tmp_path).once()
        got = {
            name: [verified(r, hooks[name]["secret"]) for r in receiver.received]
            for name, receiver in receivers.items()
        }
    finally:
        for receiver in receivers.values():
            receiver.stop()

    def of(name):
        return [(p["data"]["eventId"], p["type"], p["data"]["userId"]) for p in got[name]]

    everything = [
        (a, "booking.booked", 1),
        (b, "booking.booked", 1),
        (a, "waitlist.joined", 2),
        (b, "waitlist.joined", 2),
        (a, "booking.cancelled", 1),
        (a, "booking.promoted", 2),
        (b, "booking.cancelled", 1),
        (b, "booking.promoted", 2),
        (b, "event.updated", None),
    ]
    assert of("all") == everything
    assert of("only_a") == [e for e in everything if e[0] == a]
    assert of("promoted") == [e for e in everything if e[1] == "booking.promoted"]
    assert of("b_cancel") == [(b, "booking.cancelled", 1), (b, "event.updated", None)]
    all_ids = [p["data"]["entryId"] for p in got["all"]]
    for name in ("only_a", "promoted", "b_cancel"):
        ids = [p["data"]["entryId"] for p in got[name]]
        assert ids == [i for i in all_ids if i in ids]  # the same entries, same order
    # Each filtered webhook's cursor moved past what it did not want, too.
    for hook in hooks.values():
        assert webhook(api, hook["webhookId"])["deliveredUpTo"] == all_ids[-1]


def test_a_failing_receiver_gets_the_entry_again_until_it_acknowledges(
    api, mysql_database_url, tmp_path
):
    base = 0.1
    with (
        Receiver(answer=lambda n: 500 if n <= 3 else 200) as receiver,
        worker(mysql_database_url, tmp_path, WEBHOOK_RETRY_BASE=base, WEBHOOK_RETRY_CAP=1),
    ):
        hook = subscribe(api, receiver.url)
        event_id = initialize(api, "Flaky", 1)
        book(api, event_id, 1)
        book(api, event_id, 2)
        receiver.wait_for(3, timeout=20)
    received = receiver.received
    assert [r.status for r in received] == [500, 500, 500, 200, 200, 200]
    first, *rest = (e["entryId"] for e in history(api, event_id))
    assert entry_ids(received) == [first] * 4 + rest
    # Every try of the entry is the same message: the same id and the same bytes.
    assert len({r.body for r in received[:4]}) == 1
    for r in received:
        verified(r, hook["secret"])
    acknowledged = entry_ids(receiver.acknowledged())
    assert acknowledged == [first, *rest]

    attempts = deliveries(api, hook["webhookId"])
    assert [(d["entryId"], d["attempt"], d["statusCode"]) for d in attempts] == [
        (first, 1, 500),
        (first, 2, 500),
        (first, 3, 500),
        (first, 4, 200),
        *[(entry, 1, 200) for entry in rest],
    ]
    assert all(d["durationMs"] >= 0 and d["error"] is None for d in attempts)
    assert deliveries(api, hook["webhookId"], limit=4) == attempts  # pages of 4 and 2
    # Backoff: attempt n+1 waits at least half of base * 2**(n-1) (its jitter's floor).
    ats = [seconds(d["at"]) for d in attempts[:4]]
    for n, (before, after) in enumerate(itertools.pairwise(ats), start=1):
        assert after - before >= base * 2 ** (n - 1) / 2 - 0.002, (n, ats)
    final = webhook(api, hook["webhookId"])
    assert final["enabled"] and final["deliveredUpTo"] == rest[-1]


def test_a_receiver_that_was_down_gets_everything_in_order_once(api, mysql_database_url, tmp_path):
    down = Receiver()  # its port, not listening yet
    hook = subscribe(api, down.url)
    with worker(mysql_database_url, tmp_path, **FAST):
        event_id = initialize(api, "Outage", 2)
        for user in (1, 2, 3):
            book(api, event_id, user)
        cancel(api, event_id, 1)

        def failures():
            tried = deliveries(api, hook["webhookId"])
            return len(tried) >= 3 and tried

        tried = wait_until(failures, what="three failed attempts")
        with Receiver(port=down.port) as receiver:
            received = receiver.wait_for(6, timeout=20)
            expected = [e["entryId"] for e in history(api, event_id)]
            assert len(expected) == 6
            wait_until(
                lambda: webhook(api, hook["webhookId"])["deliveredUpTo"] == expected[-1],
                what="the cursor at the last entry",
            )
    assert all(d["statusCode"] is None and d["error"] for d in tried)
    assert {d["entryId"] for d in tried} == {expected[0]}  # nothing skipped ahead
    assert [d["attempt"] for d in tried] == list(range(1, len(tried) + 1))
    assert entry_ids(received) == expected
    assert entry_ids(receiver.received) == expected  # none sent again once acknowledged
    for r in received:
        verified(r, hook["secret"])


def test_410_gone_disables_the_webhook_at_once(api, mysql_database_url, tmp_path):
    with Receiver(answer=lambda n: 410) as gone, Receiver() as control:
        hook = subscribe(api, gone.url)
        other = subscribe(api, control.url)
        event_id = initialize(api, "Gone", 5)
        book(api, event_id, 1)
        run = worker(mysql_database_url, tmp_path, **FAST)
        run.once()
        disabled = webhook(api, hook["webhookId"])
        assert disabled["enabled"] is False
        assert "410" in disabled["disabledReason"]
        book(api, event_id, 2)
        run.once()
    assert len(gone.received) == 1  # the first entry, answered 410; nothing after
    assert len(control.acknowledged()) == 3  # the worker did deliver the later entries
    attempts = deliveries(api, hook["webhookId"])
    assert [(d["attempt"], d["statusCode"]) for d in attempts] == [(1, 410)]
    assert attempts[0]["entryId"] == int(gone.received[0].webhook_id)
    after = webhook(api, hook["webhookId"])
    assert after["enabled"] is False and after["deliveredUpTo"] == disabled["deliveredUpTo"]
    assert webhook(api, other["webhookId"])["enabled"]


def test_a_webhook_failing_longer_than_max_age_is_disabled(api, mysql_database_url, tmp_path):
    max_age = 0.6
    with Receiver(answer=lambda n: 500) as receiver:
        hook = subscribe(api, receiver.url)
        initialize(api, "Broken receiver", 1)
        with worker(mysql_database_url, tmp_path, WEBHOOK_MAX_AGE=max_age, **FAST):
            disabled = wait_until(
                lambda: (found := webhook(api, hook["webhookId"]))["enabled"] is False and found,
                what="the webhook disabled",
            )
        sent = len(receiver.received)
    assert "WEBHOOK_MAX_AGE" in disabled["disabledReason"]
    attempts = deliveries(api, hook["webhookId"])
    assert len(attempts) == sent >= 3
    assert all(d["statusCode"] == 500 for d in attempts)
    assert [d["attempt"] for d in attempts] == list(range(1, sent + 1))
    # Disabled on the first failure past the age, not before.
    span = seconds(attempts[-1]["at"]) - seconds(attempts[0]["at"])
    assert span >= max_age - 0.002
    assert seconds(attempts[-2]["at"]) - seconds(attempts[0]["at"]) < max_age + 0.002


def test_a_webhook_failing_for_long_keeps_the_worker_alive(api, mysql_database_url, tmp_path):
    # A receiver down for days, retried every minute or so (WEBHOOK_RETRY_CAP), runs up
    # thousands of attempts; the backoff of attempt 1025 must not overflow.
    cap = 0.2
    with Receiver(answer=lambda n: 500) as receiver:
        hook = subscribe(api, receiver.url)
        initialize(api, "Long outage", 1)
        engine = sa.create_engine(mysql_database_url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "UPDATE webhooks SET failed_attempts = 1030,"
                        " failing_since = UTC_TIMESTAMP(6) WHERE id = :id"
                    ),
                    {"id": hook["webhookId"]},
                )
            worker(
                mysql_database_url, tmp_path, WEBHOOK_RETRY_BASE=0.05, WEBHOOK_RETRY_CAP=cap
            ).once()
            with engine.connect() as conn:
                wait = conn.execute(
                    sa.text(
                        "SELECT TIMESTAMPDIFF(MICROSECOND, d.at, w.next_attempt_at) / 1e6"
                        " FROM webhooks w JOIN webhook_deliveries d ON d.webhook_id = w.id"
                        " WHERE w.id = :id"
                    ),
                    {"id": hook["webhookId"]},
                ).scalar_one()
        finally:
            engine.dispose()
    assert len(receiver.received) == 1
    (attempt,) = deliveries(api, hook["webhookId"])
    assert (attempt["attempt"], attempt["statusCode"]) == (1031, 500)
    assert cap / 2 <= float(wait) <= cap
    assert webhook(api, hook["webhookId"])["enabled"]


def test_private_destinations_are_refused(api, mysql_database_url, tmp_path):
    with gunicorn(mysql_database_url, tmp_path, WEBHOOK_ALLOW_PRIVATE="") as strict:
        for url in (
            "http://127.0.0.1:8080/hook",
            "http://2130706433/",
            "http://127.1/",
            "http://localhost/hook",
            "http://10.0.0.1/",
            "http://192.168.1.10/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://224.0.0.1/",
            "ftp://93.184.215.14/",
            "http://user:pass@93.184.215.14/",
            "file:///etc/passwd",
        ):
            response = httpx.post(
                f"{strict.url}/api/webhooks", json={"url": url}, headers=ADMIN, timeout=30
            )
            assert response.status_code == 400, (url, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"] == PROBLEM + "webhook-destination-refused", url
        # A public address is taken (nothing is sent to it: no worker runs here).
        public = httpx.post(
            f"{strict.url}/api/webhooks",
            json={"url": "https://93.184.215.14/hook"},
            headers=ADMIN,
            timeout=30,
        )
        assert public.status_code == 201, public.text
        removed = api.delete(f"/api/webhooks/{public.json()['webhookId']}", headers=ADMIN)
        assert removed.status_code == 204
    assert api.get("/api/webhooks", headers=ADMIN).json()["webhooks"] == []

    # Made where private destinations are allowed, checked again at each attempt.
    with Receiver() as receiver:
        hook = subscribe(api, receiver.url)
        initialize(api, "Private", 1)
        worker(mysql_database_url, tmp_path, WEBHOOK_ALLOW_PRIVATE="false", **FAST).once()
        assert receiver.received == []
    attempts = deliveries(api, hook["webhookId"])
    assert len(attempts) == 1
    assert attempts[0]["statusCode"] is None
    assert attempts[0]["error"].startswith("refused:")
    still = webhook(api, hook["webhookId"])
    assert still["enabled"] and still["deliveredUpTo"] == hook["deliveredUpTo"]


def test_webhook_routes_contract(api, server):
    routes = [
        ("POST", "/api/webhooks", {"url": "http://127.0.0.1:9/x"}),
        ("GET", "/api/webhooks", None),
        ("GET", "/api/webhooks/1", None),
        ("DELETE", "/api/webhooks/1", None),
        ("GET", "/api/webhooks/1/deliveries", None),
    ]
    for method, path, body in routes:
        for headers in ({}, basic_auth("admin", "wrong")):
            response = api.request(method, path, json=body, headers=headers)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"

    made = [subscribe(api, f"http://127.0.0.1:{9000 + n}/hook") for n in range(3)]
    for hook in made:
        secret = hook["secret"]
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 24
        assert hook["enabled"] and hook["disabledReason"] is None
        assert hook["createdAt"].endswith("Z")
    assert len({hook["secret"] for hook in made}) == 3
    created = api.post("/api/webhooks", json={"url": "http://127.0.0.1:9999/"}, headers=ADMIN)
    made.append(created.json())
    assert created.headers["location"].endswith(f"/api/webhooks/{made[-1]['webhookId']}")
    shown = api.get(created.headers["location"], headers=ADMIN).json()
    assert shown == {k: v for k, v in made[-1].items() if k != "secret"}

    walked, cursor, pages = [], None, 0
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/webhooks", params=params, headers=ADMIN).json()
        pages += 1
        assert len(page["webhooks"]) <= 1
        walked += page["webhooks"]
        if (cursor := page["nextCursor"]) is None:
            break
    assert [h["webhookId"] for h in walked] == [h["webhookId"] for h in made]
    assert pages in (len(made), len(made) + 1)
    for hook in walked:
        assert "secret" not in hook
        assert "secret" not in webhook(api, hook["webhookId"])
    assert api.get("/api/webhooks?limit=0", headers=ADMIN).status_code == 400
    assert api.get("/api/webhooks?cursor=NOT!", headers=ADMIN).status_code == 400

    gone = made[0]["webhookId"]
    removed = api.delete(f"/api/webhooks/{gone}", headers=ADMIN)
    assert removed.status_code == 204
    assert removed.content == b"" and "content-type" not in removed.headers
    for method, path in (
        ("GET", f"/api/webhooks/{gone}"),
        ("DELETE", f"/api/webhooks/{gone}"),
        ("GET", f"/api/webhooks/{gone}/deliveries"),
        ("GET", "/api/webhooks/999999999/deliveries"),
    ):
        response = api.request(method, path, headers=ADMIN)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == PROBLEM + "webhook-not-found"
    listed = api.get("/api/webhooks", headers=ADMIN).json()["webhooks"]
    assert gone not in [h["webhookId"] for h in listed] and len(listed) == 3
    empty = api.get(f"/api/webhooks/{made[1]['webhookId']}/deliveries", headers=ADMIN).json()
    assert empty == {"webhookId": made[1]["webhookId"], "deliveries": [], "nextCursor": None}

    unknown_event = api.post(
        "/api/webhooks", json={"url": "http://127.0.0.1:9/", "eventId": 999999999}, headers=ADMIN
    )
    assert unknown_event.status_code == 404, unknown_event.text
    assert unknown_event.json()["type"] == PROBLEM + "event-not-found"
    for bad in (
        {"eventTypes": ["booking.nope"]},
        {"eventTypes": []},
        {"eventTypes": "booking.booked"},
        {"eventTypes": ["booking.booked"] * (len(TYPES) + 1)},  # more than there are types
        {"eventId": "1"},
        {"eventId": 0},
        {"url": ""},
        {"url": "http://127.0.0.1:9/", "unknown": 1},
    ):
        response = api.post(
            "/api/webhooks", json={"url": "http://127.0.0.1:9/", **bad}, headers=ADMIN
        )
        assert response.status_code == 400, (bad, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert api.post("/api/webhooks", json={}, headers=ADMIN).status_code == 400
    not_json = api.post(
        "/api/webhooks",
        content=b'{"url": "http://127.0.0.1:9/"}',
        headers={**ADMIN, "Content-Type": "text/plain"},
    )
    assert not_json.status_code == 415, not_json.text
    assert not_json.headers["content-type"] == "application/problem+json"
    # The refused requests made nothing.
    assert len(api.get("/api/webhooks", headers=ADMIN).json()["webhooks"]) == 3


class Scripted:
    """A receiver whose answer depends on the path: /big answers 200 with a large
    body, /moved answers 302 to /big. Records (path, webhook-id) of each POST."""

    BIG = ("0123456789abcdef" * 400).encode()  # 6400 bytes

    def __init__(self):
        self.received: list[tuple[str, str]] = []
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                scripted.received.append((self.path, self.headers["webhook-id"]))
                if self.path == "/big":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(Scripted.BIG)))
                    self.end_headers()
                    self.wfile.write(Scripted.BIG)
                else:
                    self.send_response(302)
                    self.send_header("Location", f"{scripted.url}/big")
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_large_answers_are_cut_and_redirects_not_followed(api, mysql_database_url, tmp_path):
    receiver = Scripted()
    try:
        big = subscribe(api, f"{receiver.url}/big")
        moved = subscribe(api, f"{receiver.url}/moved")
        initialize(api, "Bodies", 1)
        worker(mysql_database_url, tmp_path, WEBHOOK_RETRY_BASE=60).once()
    finally:
        receiver.stop()
    (entry_id,) = {webhook_id for _, webhook_id in receiver.received}
    # One POST each; the 302 was not followed to /big.
    assert sorted(path for path, _ in receiver.received) == ["/big", "/moved"]

    (delivered,) = deliveries(api, big["webhookId"])
    assert delivered["statusCode"] == 200 and delivered["entryId"] == int(entry_id)
    assert webhook(api, big["webhookId"])["deliveredUpTo"] == int(entry_id)
    (redirected,) = deliveries(api, moved["webhookId"])
    assert (redirected["attempt"], redirected["statusCode"]) == (1, 302)
    still = webhook(api, moved["webhookId"])
    assert still["enabled"] and still["deliveredUpTo"] == moved["deliveredUpTo"]

    engine = sa.create_engine(mysql_database_url)
    try:
        with engine.connect() as conn:
            kept = conn.execute(
                sa.text("SELECT response_body FROM webhook_deliveries WHERE webhook_id = :id"),
                {"id": big["webhookId"]},
            ).scalar_one()
    finally:
        engine.dispose()
    assert len(kept.encode()) <= 1024
    assert kept == Scripted.BIG[:1024].decode()


def test_a_retried_create_with_its_idempotency_key_gets_the_same_webhook(
    api, server, mysql_database_url
):
    """Sequential retries replay; 16 concurrent ones spread over the workers make one."""
    keyed = {**ADMIN, "Idempotency-Key": "subscribe-1"}
    body = {"url": "http://127.0.0.1:9000/hook", "eventTypes": ["booking.booked"]}
    first = api.post("/api/webhooks", json=body, headers=keyed)
    again = api.post("/api/webhooks", json=body, headers=keyed)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content  # the same webhook, secret included
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    other = api.post("/api/webhooks", json={**body, "eventTypes": ["*"]}, headers=keyed)
    assert other.status_code == 422
    assert other.json()["type"] == PROBLEM + "idempotency-key-reused"
    refused = {**ADMIN, "Idempotency-Key": "subscribe-2"}
    missing_event = {**body, "eventId": 999}
    for _ in range(2):  # a refusal is kept and replayed like an answer
        response = api.post("/api/webhooks", json=missing_event, headers=refused)
        assert response.status_code == 404
        assert response.json()["type"] == PROBLEM + "event-not-found"

    racing = {**ADMIN, "Idempotency-Key": "subscribe-3"}

    def create(_):
        with httpx.Client(base_url=server.url, timeout=30) as client:
            return client.post("/api/webhooks", json=body, headers=racing)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(create, range(16)))
    assert {answer.status_code for answer in answers} == {201}
    assert len({answer.content for answer in answers}) == 1
    engine = sa.create_engine(mysql_database_url)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT COUNT(*) FROM webhooks")).scalar_one()
    engine.dispose()
    assert count == 2  # subscribe-1 and subscribe-3, once each
