"""Hostile and odd input: each a clear 4xx problem, and nothing stored."""

import pytest

from .test_api import assert_problem, create_event, status


@pytest.mark.parametrize(
    "body, reason",
    [
        ('{"userId": 1, "userId": 2, "eventId": 1}', "repeats a key"),
        ('{"userId": NaN, "eventId": 1}', "NaN"),
        ('{"userId": Infinity, "eventId": 1}', "Infinity"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"userId": ' + "9" * 5000 + ', "eventId": 1}', "too many digits"),
        (b'{"userId": "\xff\xfe", "eventId": 1}', "utf-8"),
        ('{"userId": 1, "eventId": 1', "not valid JSON"),
    ],
    ids=["duplicate-keys", "nan", "infinity", "deep", "huge-int", "bad-utf8", "truncated"],
)
def test_bodies_that_are_not_strict_json_are_400(client, admin, rows, body, reason):
    event_id = create_event(client, admin, total=1)
    if isinstance(body, str):
        body = body.replace('"eventId": 1', f'"eventId": {event_id}')
    response = client.post("/api/events/book", data=body, content_type="application/json")
    problem = assert_problem(response, 400)
    assert reason in problem["detail"]
    assert rows("bookings") == 0
    assert status(client, event_id)["availableTickets"] == 1


@pytest.mark.parametrize("value", [2**63, 2**64 + 1, 10**30, -(2**63) - 1])
def test_integers_beyond_64_bits_are_400(client, admin, rows, value):
    event_id = create_event(client, admin, total=1)
    response = client.post("/api/events/book", json={"userId": value, "eventId": event_id})
    assert "userId" in assert_problem(response, 400)["errors"]
    assert rows("bookings") == 0


def test_a_body_over_max_content_length_is_413(client, admin, rows, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    name = "x" * (limit + 1)
    response = client.post(
        "/api/events/initialize",
        data='{"eventName": "' + name + '", "totalTickets": 1}',
        content_type="application/json",
        headers=admin,
    )
    assert_problem(response, 413)
    assert rows("events") == 0


@pytest.mark.parametrize(
    "name",
    [
        "\u200b",  # zero-width space alone is not blank to str.strip: stored as is
        "Caf\u00e9 \U0001f3b6 \u4e2d\u6587 \u0645\u0631\u062d\u0628\u0627",
        "\U0001f600" * 255,
    ],
    ids=["zero-width", "mixed-scripts", "255-emoji"],
)
def test_unicode_names_round_trip(client, admin, name):
    event_id = create_event(client, admin, name=name)
    assert status(client, event_id)["eventName"] == name


@pytest.mark.parametrize(
    "name",
    ["", " \t\n ", "a\x00b", "line\nbreak", "esc\x1b", "del\x7f", "c1\x85c1", "x" * 256],
    ids=["empty", "blank", "nul", "newline", "escape", "delete", "c1", "too-long"],
)
def test_bad_names_are_400(client, admin, rows, name):
    response = client.post(
        "/api/events/initialize", json={"eventName": name, "totalTickets": 1}, headers=admin
    )
    assert "eventName" in assert_problem(response, 400)["errors"]
    assert rows("events") == 0


def test_a_name_with_a_lone_surrogate_is_400(client, admin, rows):
    body = '{"eventName": "ok \\ud800", "totalTickets": 1}'
    response = client.post(
        "/api/events/initialize", data=body, content_type="application/json", headers=admin
    )
    assert "eventName" in assert_problem(response, 400)["errors"]
    assert rows("events") == 0


def test_a_name_too_long_only_in_4_byte_characters_is_400(client, admin, rows):
    response = client.post(
        "/api/events/initialize",
        json={"eventName": "\U0001f600" * 256, "totalTickets": 1},
        headers=admin,
    )
    assert_problem(response, 400)
    assert rows("events") == 0


@pytest.mark.parametrize("path", ["/api/events/status/1", "/api/events/book", "/healthz"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Server" not in response.headers or "/" not in response.headers["Server"]
