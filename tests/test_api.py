"""The HTTP contract, every success and refusal, on SQLite and on MariaDB."""

import re

import pytest

from .conftest import basic_auth


def create_event(client, admin, total=2, name="Concert"):
    response = client.post(
        "/api/events/initialize", json={"eventName": name, "totalTickets": total}, headers=admin
    )
    assert response.status_code == 201, response.json
    return response.json["eventId"]


def book(client, event_id, user_id):
    return client.post("/api/events/book", json={"userId": user_id, "eventId": event_id})


def cancel(client, event_id, user_id):
    return client.post("/api/events/cancel", json={"userId": user_id, "eventId": event_id})


def status(client, event_id):
    response = client.get(f"/api/events/status/{event_id}")
    assert response.status_code == 200
    return response.json


def waiting_list(client, admin, event_id):
    response = client.get(f"/api/events/{event_id}/waiting-list", headers=admin)
    assert response.status_code == 200
    return response.json["userIds"]


def assert_problem(response, status):
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    return body


# -- initialize ---------------------------------------------------------------


def test_initialize_returns_the_event_and_where_it_lives(client, admin):
    response = client.post(
        "/api/events/initialize",
        json={"eventName": "  Jazz night ", "totalTickets": 3},
        headers=admin,
    )
    assert response.status_code == 201
    body = response.json
    assert body == {
        "eventId": body["eventId"],
        "eventName": "Jazz night",
        "totalTickets": 3,
        "availableTickets": 3,
        "waitingListCount": 0,
        "salesOpen": True,
        "waitlistMode": "auto",
        "offerTtlSeconds": 3600,
        "offeredTickets": 0,
        "maxTicketsPerBooking": 10,
        "maxOvertakes": 3,
        "waitingTickets": 0,
        "holdTtlSeconds": 0,
        "heldTickets": 0,
        "salesOpenAt": None,
        "queueing": False,
        "queuedCount": 0,
        "queuedTickets": 0,
    }
    assert response.headers["Location"] == f"/api/events/status/{body['eventId']}"
    assert client.get(response.headers["Location"]).json == body


def test_initialize_gives_each_event_its_own_id(client, admin):
    assert create_event(client, admin) != create_event(client, admin)


@pytest.mark.parametrize("total", [0, 1_000_000])
def test_initialize_accepts_the_ticket_bounds(client, admin, total):
    assert status(client, create_event(client, admin, total))["availableTickets"] == total


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic_auth("admin", "wrong"),
        basic_auth("someone", "wrong"),
        {"Authorization": "Basic !!not-base64!!"},
        {"Authorization": "Bearer abc"},
    ],
    ids=["missing", "wrong-password", "unknown-user", "malformed", "other-scheme"],
)
def test_initialize_refuses_without_admin_credentials(client, headers):
    response = client.post(
        "/api/events/initialize", json={"eventName": "x", "totalTickets": 1}, headers=headers
    )
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_admin_routes_fail_closed_when_no_password_is_configured(settings, admin):
    from booking import create_app

    app = create_app({**settings, "ADMIN_PASSWORD": None, "ADMIN_PASSWORD_HASH": None})
    response = app.test_client().post(
        "/api/events/initialize", json={"eventName": "x", "totalTickets": 1}, headers=admin
    )
    assert_problem(response, 401)


def test_admin_password_may_be_given_as_a_werkzeug_hash(settings):
    from werkzeug.security import generate_password_hash

    from booking import create_app

    app = create_app(
        {**settings, "ADMIN_PASSWORD": None, "ADMIN_PASSWORD_HASH": generate_password_hash("s3")}
    )
    client = app.test_client()
    body = {"eventName": "x", "totalTickets": 1}
    ok = client.post("/api/events/initialize", json=body, headers=basic_auth("admin", "s3"))
    assert ok.status_code == 201
    bad = client.post("/api/events/initialize", json=body, headers=basic_auth("admin", "s4"))
    assert_problem(bad, 401)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"totalTickets": 1}, "eventName"),
        ({"eventName": "x"}, "totalTickets"),
        ({"eventName": "", "totalTickets": 1}, "eventName"),
        ({"eventName": "   ", "totalTickets": 1}, "eventName"),
        ({"eventName": "x" * 256, "totalTickets": 1}, "eventName"),
        ({"eventName": "bad\x00name", "totalTickets": 1}, "eventName"),
        ({"eventName": 5, "totalTickets": 1}, "eventName"),
        ({"eventName": "x", "totalTickets": -1}, "totalTickets"),
        ({"eventName": "x", "totalTickets": 1_000_001}, "totalTickets"),
        ({"eventName": "x", "totalTickets": "10"}, "totalTickets"),
        ({"eventName": "x", "totalTickets": 10.0}, "totalTickets"),
        ({"eventName": "x", "totalTickets": 10.5}, "totalTickets"),
        ({"eventName": "x", "totalTickets": True}, "totalTickets"),
        ({"eventName": "x", "totalTickets": None}, "totalTickets"),
        ({"eventName": "x", "totalTickets": 1, "extra": 1}, "extra"),
    ],
)
def test_initialize_rejects_bad_input_and_stores_nothing(client, admin, rows, body, field):
    response = client.post("/api/events/initialize", json=body, headers=admin)
    problem = assert_problem(response, 400)
    assert field in problem["errors"]
    assert rows("events") == 0


def test_initialize_keeps_a_255_character_name_with_4_byte_characters(client, admin):
    name = "🎫" * 255
    event_id = create_event(client, admin, name=name)
    assert status(client, event_id)["eventName"] == name


# -- book ---------------------------------------------------------------------


def test_book_until_sold_out_then_waitlist_in_order(client, admin):
    event_id = create_event(client, admin, total=2)
    assert book(client, event_id, 1).json == {
        "status": "booked",
        "eventId": event_id,
        "userId": 1,
        "tickets": 1,
    }
    assert book(client, event_id, 2).status_code == 201
    third = book(client, event_id, 3)
    assert third.status_code == 201
    assert third.json == {
        "status": "waitlisted",
        "eventId": event_id,
        "userId": 3,
        "tickets": 1,
        "position": 1,
    }
    assert book(client, event_id, 4).json["position"] == 2
    assert status(client, event_id) == {
        "eventId": event_id,
        "eventName": "Concert",
        "totalTickets": 2,
        "availableTickets": 0,
        "waitingListCount": 2,
        "salesOpen": True,
        "waitlistMode": "auto",
        "offerTtlSeconds": 3600,
        "offeredTickets": 0,
        "maxTicketsPerBooking": 10,
        "maxOvertakes": 3,
        "waitingTickets": 2,
        "holdTtlSeconds": 0,
        "heldTickets": 0,
        "salesOpenAt": None,
        "queueing": False,
        "queuedCount": 0,
        "queuedTickets": 0,
    }
    assert waiting_list(client, admin, event_id) == [3, 4]


def test_an_event_with_no_tickets_waitlists_everyone(client, admin):
    event_id = create_event(client, admin, total=0)
    assert book(client, event_id, 9).json["status"] == "waitlisted"


def test_booking_twice_is_refused_saying_booked(client, admin):
    event_id = create_event(client, admin, total=2)
    book(client, event_id, 1)
    problem = assert_problem(book(client, event_id, 1), 409)
    assert problem["type"].endswith("already-booked")
    assert status(client, event_id)["availableTickets"] == 1


def test_a_booked_user_cannot_also_wait(client, admin):
    event_id = create_event(client, admin, total=1)
    book(client, event_id, 1)
    problem = assert_problem(book(client, event_id, 1), 409)
    assert problem["type"].endswith("already-booked")
    assert status(client, event_id)["waitingListCount"] == 0


def test_waiting_twice_is_refused_saying_waiting_and_where(client, admin):
    event_id = create_event(client, admin, total=0)
    book(client, event_id, 1)
    book(client, event_id, 2)
    problem = assert_problem(book(client, event_id, 2), 409)
    assert problem["type"].endswith("already-waiting")
    assert problem["position"] == 2
    assert waiting_list(client, admin, event_id) == [1, 2]


def test_the_same_user_may_book_different_events(client, admin):
    first, second = create_event(client, admin), create_event(client, admin)
    assert book(client, first, 1).status_code == 201
    assert book(client, second, 1).status_code == 201


def test_booking_an_unknown_event_is_404(client):
    assert_problem(book(client, 999_999, 1), 404)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"eventId": 1}, "userId"),
        ({"userId": 1}, "eventId"),
        ({"userId": True, "eventId": 1}, "userId"),
        ({"userId": "1", "eventId": 1}, "userId"),
        ({"userId": 1.0, "eventId": 1}, "userId"),
        ({"userId": 0, "eventId": 1}, "userId"),
        ({"userId": -3, "eventId": 1}, "userId"),
        ({"userId": 2**63, "eventId": 1}, "userId"),
        ({"userId": 1, "eventId": False}, "eventId"),
        ({"userId": 1, "eventId": [1]}, "eventId"),
        ({"userId": None, "eventId": 1}, "userId"),
    ],
)
@pytest.mark.parametrize("path", ["/api/events/book", "/api/events/cancel"])
def test_bad_ids_are_400_and_change_nothing(client, admin, rows, path, body, field):
    event_id = create_event(client, admin, total=1)
    if body.get("eventId") == 1:
        body = {**body, "eventId": event_id}
    problem = assert_problem(client.post(path, json=body), 400)
    assert field in problem["errors"]
    assert status(client, event_id)["availableTickets"] == 1
    assert rows("bookings") == 0


@pytest.mark.parametrize("path", ["/api/events/book", "/api/events/cancel"])
def test_malformed_json_is_400(client, path):
    response = client.post(path, data='{"userId": 1,', content_type="application/json")
    assert_problem(response, 400)


@pytest.mark.parametrize("body", ["[1, 2]", "5", '"text"', "null"])
def test_a_body_that_is_not_an_object_is_400(client, body):
    response = client.post("/api/events/book", data=body, content_type="application/json")
    assert_problem(response, 400)


@pytest.mark.parametrize(
    "path", ["/api/events/book", "/api/events/cancel", "/api/events/initialize"]
)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_is_415(client, admin, path, content_type):
    response = client.post(
        path, data="userId=1&eventId=1", content_type=content_type, headers=admin
    )
    assert_problem(response, 415)


# -- cancel -------------------------------------------------------------------


def test_cancel_hands_the_ticket_to_the_head_of_the_line(client, admin):
    event_id = create_event(client, admin, total=1)
    for user in (1, 2, 3):
        book(client, event_id, user)
    response = cancel(client, event_id, 1)
    assert response.status_code == 200
    assert response.json == {
        "status": "cancelled",
        "eventId": event_id,
        "userId": 1,
        "tickets": 1,
        "remainingTickets": 0,
        "promotedUserIds": [2],
        "offeredUserIds": [],
        "promotedUserId": 2,
        "offeredUserId": None,
    }
    assert client.get(f"/api/events/{event_id}/users/2").json["status"] == "booked"
    assert waiting_list(client, admin, event_id) == [3]
    assert status(client, event_id)["availableTickets"] == 0
    assert status(client, event_id)["waitingListCount"] == 1


def test_cancel_with_nobody_waiting_frees_the_ticket(client, admin):
    event_id = create_event(client, admin, total=1)
    book(client, event_id, 1)
    response = cancel(client, event_id, 1)
    assert response.json == {
        "status": "cancelled",
        "eventId": event_id,
        "userId": 1,
        "tickets": 1,
        "remainingTickets": 0,
        "promotedUserIds": [],
        "offeredUserIds": [],
        "promotedUserId": None,
        "offeredUserId": None,
    }
    assert status(client, event_id)["availableTickets"] == 1
    assert book(client, event_id, 1).json["status"] == "booked"


def test_a_waiting_user_who_cancels_leaves_the_line(client, admin):
    event_id = create_event(client, admin, total=1)
    for user in (1, 2, 3, 4):
        book(client, event_id, user)
    response = cancel(client, event_id, 3)
    assert response.status_code == 200
    assert response.json == {
        "status": "left_waiting_list",
        "eventId": event_id,
        "userId": 3,
        "tickets": 1,
        "remainingTickets": 0,
        "promotedUserIds": [],
        "offeredUserIds": [],
        "promotedUserId": None,
        "offeredUserId": None,
    }
    assert waiting_list(client, admin, event_id) == [2, 4]
    assert client.get(f"/api/events/{event_id}/users/4").json["position"] == 2
    assert cancel(client, event_id, 1).json["promotedUserId"] == 2
    assert waiting_list(client, admin, event_id) == [4]


def test_cancelling_what_you_do_not_hold_is_404(client, admin):
    event_id = create_event(client, admin, total=1)
    book(client, event_id, 1)
    problem = assert_problem(cancel(client, event_id, 2), 404)
    assert problem["type"].endswith("nothing-to-cancel")
    cancel(client, event_id, 1)
    assert_problem(cancel(client, event_id, 1), 404)


def test_cancel_on_an_unknown_event_is_404(client):
    problem = assert_problem(cancel(client, 424_242, 1), 404)
    assert problem["type"].endswith("event-not-found")


def test_the_line_survives_a_rejoin_at_the_back(client, admin):
    event_id = create_event(client, admin, total=0)
    for user in (1, 2, 3):
        book(client, event_id, user)
    cancel(client, event_id, 1)
    assert book(client, event_id, 1).json["position"] == 3
    assert waiting_list(client, admin, event_id) == [2, 3, 1]


# -- reads ----------------------------------------------------------------------


def test_status_of_an_unknown_event_is_404(client):
    assert_problem(client.get("/api/events/status/31337"), 404)


@pytest.mark.parametrize("path", ["/api/events/status/abc", "/api/events/status/0"])
def test_status_with_a_bad_id_is_404(client, path):
    assert_problem(client.get(path), 404)


def test_user_state_tells_booked_waiting_or_none(client, admin):
    event_id = create_event(client, admin, total=1)
    for user in (1, 2, 3):
        book(client, event_id, user)

    def state(user):
        response = client.get(f"/api/events/{event_id}/users/{user}")
        assert response.status_code == 200
        return response.json

    assert state(1) == {"eventId": event_id, "userId": 1, "status": "booked", "tickets": 1}
    assert state(3) == {
        "eventId": event_id,
        "userId": 3,
        "status": "waitlisted",
        "tickets": 1,
        "position": 2,
        "overtakes": 0,
    }
    assert state(7) == {"eventId": event_id, "userId": 7, "status": "none"}
    cancel(client, event_id, 1)
    assert state(2)["status"] == "booked"
    assert state(3)["position"] == 1
    assert state(1)["status"] == "none"


def test_user_state_of_an_unknown_event_is_404(client):
    assert_problem(client.get("/api/events/555/users/1"), 404)


def test_waiting_list_needs_admin(client, admin):
    event_id = create_event(client, admin, total=0)
    response = client.get(f"/api/events/{event_id}/waiting-list")
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert client.get(f"/api/events/{event_id}/waiting-list", headers=admin).json == {
        "eventId": event_id,
        "userIds": [],
        "entries": [],
    }


def test_waiting_list_of_an_unknown_event_is_404(client, admin):
    assert_problem(client.get("/api/events/8080/waiting-list", headers=admin), 404)


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_unknown_route_is_a_problem(client):
    assert_problem(client.get("/api/nope"), 404)


def test_wrong_method_is_a_problem(client):
    assert_problem(client.get("/api/events/book"), 405)


# -- the spec and its docs -----------------------------------------------------


def test_openapi_spec_describes_every_route_from_the_schemas(client):
    spec = client.get("/api/openapi.json").json
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path in (
        "/api/events/initialize",
        "/api/events/book",
        "/api/events/cancel",
        "/api/events/status/{eventId}",
        "/api/events/{eventId}/users/{userId}",
        "/api/events/{eventId}/waiting-list",
    ):
        assert path in paths
    book_schema = spec["components"]["schemas"]["BookingRequest"]
    assert sorted(book_schema["required"]) == ["eventId", "userId"]
    assert book_schema["properties"]["userId"]["minimum"] == 1
    assert paths["/api/events/initialize"]["post"]["security"] == [{"basicAuth": []}]


def test_docs_page_and_its_assets_are_served_locally(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/api/docs/assets/swagger-ui-bundle.js" in html
    linked = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert linked and all(url.startswith("/api/") for url in linked)
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert client.get(f"/api/docs/assets/{asset}").status_code == 200


# -- rate limit -----------------------------------------------------------------


def test_the_rate_limit_answers_429_problem_and_spares_health(settings, admin):
    from booking import create_app

    client = create_app({**settings, "RATE_LIMIT": "3 per minute"}).test_client()
    for _ in range(3):
        response = client.get("/api/events/status/1")
        assert response.status_code == 404
        assert "X-RateLimit-Remaining" in response.headers
    limited = client.get("/api/events/status/1")
    assert_problem(limited, 429)
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.headers["X-RateLimit-Limit"] == "3"
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/docs/assets/swagger-ui.css").status_code == 200
