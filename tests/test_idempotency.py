"""Idempotency-Key on every POST and PATCH: the contract through the Flask test client,
on SQLite and on MariaDB in both lock modes."""

import pytest
import sqlalchemy as sa

from .test_api import assert_problem, create_event


def keyed(client, path, body, key, headers=None):
    return client.post(path, json=body, headers={"Idempotency-Key": key, **(headers or {})})


def book(client, event_id, user, key):
    return keyed(client, "/api/events/book", {"userId": user, "eventId": event_id}, key)


def test_a_retry_gets_the_first_answer_byte_for_byte_and_changes_nothing(client, admin, rows):
    event_id = create_event(client, admin, total=1)
    first = book(client, event_id, 7, "retry-1")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = book(client, event_id, 7, "retry-1")
    assert again.status_code == 201
    assert again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Content-Type"] == first.headers["Content-Type"]
    assert rows("bookings") == 1 and rows("waiting_list_entries") == 0
    # Without the key the same booking is what it is: already booked.
    unkeyed = client.post("/api/events/book", json={"userId": 7, "eventId": event_id})
    assert assert_problem(unkeyed, 409)["type"].endswith("already-booked")


def test_the_same_json_in_another_order_or_spacing_is_the_same_request(client, admin):
    event_id = create_event(client, admin, total=1)
    first = book(client, event_id, 3, "order")
    raw = f'{{ "eventId" : {event_id},  "userId": 3 }}'
    again = client.post(
        "/api/events/book",
        data=raw,
        headers={"Idempotency-Key": "order", "Content-Type": "application/json"},
    )
    assert again.data == first.data and again.headers["Idempotent-Replayed"] == "true"


def test_refusals_of_the_rules_are_kept_and_replayed(client, admin, rows):
    event_id = create_event(client, admin, total=1)
    book(client, event_id, 1, "first-booking")
    refused = book(client, event_id, 1, "second-booking")
    assert assert_problem(refused, 409)["type"].endswith("already-booked")
    client.post("/api/events/cancel", json={"userId": 1, "eventId": event_id})
    # The ticket is free now, but the key's answer stands.
    again = book(client, event_id, 1, "second-booking")
    assert again.status_code == 409 and again.data == refused.data
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.mimetype == "application/problem+json"
    assert rows("bookings") == 0
    unknown = book(client, 999_999_999, 1, "unknown-event")
    assert book(client, 999_999_999, 1, "unknown-event").data == unknown.data


def test_the_same_key_with_another_body_is_422_and_changes_nothing(client, admin, rows):
    event_id = create_event(client, admin, total=5)
    book(client, event_id, 1, "reused")
    response = book(client, event_id, 2, "reused")
    body = assert_problem(response, 422)
    assert body["type"] == "urn:booking:problem:idempotency-key-reused"
    assert rows("bookings") == 1


def test_keys_are_scoped_by_route(client, admin, rows):
    event_id = create_event(client, admin, total=5)
    assert book(client, event_id, 1, "shared").status_code == 201
    cancel = keyed(client, "/api/events/cancel", {"userId": 1, "eventId": event_id}, "shared")
    assert cancel.status_code == 200 and "Idempotent-Replayed" not in cancel.headers
    other = create_event(client, admin, total=5)
    one = client.patch(
        f"/api/events/{event_id}",
        json={"totalTickets": 9},
        headers={**admin, "Idempotency-Key": "p"},
    )
    two = client.patch(
        f"/api/events/{other}", json={"totalTickets": 9}, headers={**admin, "Idempotency-Key": "p"}
    )
    assert one.status_code == two.status_code == 200
    assert "Idempotent-Replayed" not in two.headers


def test_admin_changes_replay_with_their_headers(client, admin):
    body = {"eventName": "Keyed", "totalTickets": 2}
    first = keyed(client, "/api/events/initialize", body, "create-1", admin)
    again = keyed(client, "/api/events/initialize", body, "create-1", admin)
    assert first.status_code == again.status_code == 201
    assert again.data == first.data
    assert again.headers["Location"] == first.headers["Location"]
    assert client.get("/api/events").json["events"] == [first.json]


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "caf\u00e9", "tab\tkey"])
def test_a_bad_key_is_400_and_nothing_is_kept(client, admin, rows, key):
    event_id = create_event(client, admin, total=1)
    response = client.post(
        "/api/events/book",
        json={"userId": 1, "eventId": event_id},
        headers={"Idempotency-Key": key.encode("utf-8").decode("latin-1")},
    )
    assert assert_problem(response, 400)["detail"].startswith("Idempotency-Key")
    assert rows("bookings") == 0 and rows("idempotency_keys") == 0


def test_a_255_character_key_is_fine(client, admin):
    event_id = create_event(client, admin, total=1)
    key = "k" * 255
    assert book(client, event_id, 1, key).status_code == 201
    assert book(client, event_id, 1, key).headers["Idempotent-Replayed"] == "true"


def test_validation_errors_do_not_use_up_the_key(client, admin, rows):
    event_id = create_event(client, admin, total=1)
    bad = keyed(client, "/api/events/book", {"userId": "1", "eventId": event_id}, "fix-me")
    assert_problem(bad, 400)
    assert rows("idempotency_keys") == 0
    assert book(client, event_id, 1, "fix-me").status_code == 201


def test_an_expired_key_is_new_again_and_expired_keys_are_purged(client, admin, app, rows):
    event_id = create_event(client, admin, total=1)
    assert book(client, event_id, 1, "old").json["status"] == "booked"
    client.post("/api/events/cancel", json={"userId": 1, "eventId": event_id})
    engine = app.extensions["booking"].engine
    with engine.begin() as conn:
        past = sa.text("UPDATE idempotency_keys SET expires_at = '2000-01-01 00:00:00'")
        conn.execute(past)
        for n in range(150):
            conn.execute(
                sa.text(
                    "INSERT INTO idempotency_keys"
                    " (idem_key, scope, fingerprint, status, headers, body, expires_at)"
                    " VALUES (:key, 'POST /x', 'f', 200, '{}', '', '2000-01-01 00:00:00')"
                ),
                {"key": f"stale-{n}"},
            )
    assert rows("idempotency_keys") == 151
    again = book(client, event_id, 1, "old")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert rows("bookings") == 1
    # The expired answer was replaced; a keyed batch purges up to 100 expired keys.
    assert rows("idempotency_keys") == 151 - 100
    book(client, event_id, 2, "another")
    assert rows("idempotency_keys") == 2
