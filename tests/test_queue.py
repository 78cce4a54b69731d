"""A scheduled on-sale with a random pre-queue (issue 22): the contract, example by example,
through the Flask test client on SQLite and on MariaDB in both lock modes.

While salesOpenAt is ahead an event queues its bookings (202 queued) and nothing orders
them. The opening (the first change to the event after salesOpenAt by the database's
clock, the worker's empty change, or an admin's PATCH) serves every queued party once, in
a random order, exactly as a booking at that moment (booked, held for checkout, or at the
back of the line, by the parties' allocation rule); then sales are open and whatever
comes next comes after every queued party. The journal says so: sale.opened, then one
fact per queued party with fromQueue.

Time is moved, not waited for: `later()` moves the clock the service reads (the
database's, through booking/sales/clock.py); only the worker's test, the worker being a
process of its own, waits 2 s for the hour by the database's clock. Every test ends with the
pre-queue's own invariants (`check_queue`, straight from the tables) and
tests/invariants.py's check_invariants (the journal replayed against the rule).
"""

import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from booking.storage import journal

from .invariants import check_invariants
from .receivers import WorkerProcess
from .test_api import assert_problem, status
from .test_holds import claim, later
from .test_parties import book, cancel, line

HOUR = 3600
PROBLEM = "urn:booking:problem:"


# Times, as the API writes them: RFC 3339, milliseconds, Z.


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def from_now(seconds: float) -> str:
    """Now + `seconds` by this host's clock, which the database (on this host) shares."""
    return rfc3339(datetime.now(UTC) + timedelta(seconds=seconds))


def parsed(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# The service, through the test client.


def scheduled(client, admin, total, opens_in=HOUR, **settings) -> tuple[int, str]:
    """An event whose sales open `opens_in` seconds from now: its id and salesOpenAt."""
    sales_open_at = from_now(opens_in)
    body = {"eventName": "On sale", "totalTickets": total, "salesOpenAt": sales_open_at}
    response = client.post("/api/events/initialize", json={**body, **settings}, headers=admin)
    assert response.status_code == 201, response.json
    assert (response.json["queueing"], response.json["salesOpen"]) == (True, False)
    return response.json["eventId"], sales_open_at


def opened(client, admin, total, **settings) -> int:
    """An ordinary event, open now."""
    body = {"eventName": "On sale", "totalTickets": total, **settings}
    response = client.post("/api/events/initialize", json=body, headers=admin)
    assert response.status_code == 201, response.json
    return response.json["eventId"]


def patch(client, admin, event_id, **changes):
    return client.patch(f"/api/events/{event_id}", json=changes, headers=admin)


def queue(client, event_id, user, tickets=None) -> dict:
    """A booking while the event queues: 202 queued; its answer."""
    response = book(client, event_id, user, tickets)
    assert response.status_code == 202, response.json
    assert response.json["status"] == "queued", response.json
    return response.json


def user_state(client, event_id, user) -> dict:
    response = client.get(f"/api/events/{event_id}/users/{user}")
    assert response.status_code == 200, response.json
    return response.json


def refusal(response, status_code=409) -> str:
    """The problem's type, after the last colon."""
    return assert_problem(response, status_code)["type"].removeprefix(PROBLEM)


def history(client, admin, event_id) -> list[tuple[int, str, int | None, dict]]:
    """The event's whole journal in commit order: (entryId, type, userId, data)."""
    found, cursor = [], "0"
    while cursor is not None:
        response = client.get(
            f"/api/events/{event_id}/history?limit=100&cursor={cursor}", headers=admin
        )
        assert response.status_code == 200, response.json
        page = response.json
        found += [(e["entryId"], e["type"], e["userId"], e["data"]) for e in page["entries"]]
        cursor = page["nextCursor"]
    return found


def facts(client, admin, event_id, *types) -> list[tuple[str, int | None, dict]]:
    return [(t, u, d) for _, t, u, d in history(client, admin, event_id) if t in types]


def opening(entries) -> tuple[dict, list[tuple[int, str, int, dict]]]:
    """The one sale.opened fact's data and the facts of the queued parties it served: they
    follow it, one per party, each with fromQueue true (and no other fact has it), and its
    counts are theirs."""
    at = [i for i, entry in enumerate(entries) if entry[1] == "sale.opened"]
    assert len(at) == 1, [entry[1] for entry in entries]
    data = entries[at[0]][3]
    served = entries[at[0] + 1 : at[0] + 1 + data["queuedParties"]]
    assert len(served) == data["queuedParties"], (data, served)
    assert all(entry[3].get("fromQueue") is True for entry in served), served
    assert not [e for e in entries if "fromQueue" in e[3] and e not in served], entries
    users = [entry[2] for entry in served]
    assert len(set(users)) == len(users), users
    # One transaction wrote them: their entry ids follow one another.
    ids = [entries[at[0]][0]] + [entry[0] for entry in served]
    assert ids == list(range(ids[0], ids[0] + len(ids))), ids
    kinds = Counter(entry[1] for entry in served)
    assert kinds.keys() <= {"booking.booked", "hold.created", "waitlist.joined"}, kinds
    assert (data["booked"], data["held"], data["waitlisted"]) == (
        kinds["booking.booked"],
        kinds["hold.created"],
        kinds["waitlist.joined"],
    ), data
    assert data["queuedTickets"] == sum(entry[3]["tickets"] for entry in served), data
    return data, served


def by_the_rule(order, total, max_overtakes=3, hold=False, free=None, line_before=()):
    """What the opening must write for queued parties served in `order` [(user, tickets)],
    each exactly as a booking then: it is served (booked, or held when the event holds
    for checkout) if it fits and no waiting party blocks (one that does not fit and may
    not be passed over again: overtakes >= max_overtakes, not larger than the event),
    passing every waiting party not larger than the event (each counts an overtake);
    else it waits at the back of the line. The facts (type, user, data without
    expiresAt) and the line after, [(user, tickets, overtakes)]."""
    free = total if free is None else free
    waiting = [list(party) for party in line_before]
    written = []
    for user, tickets in order:
        blocked = any(o >= max_overtakes and t <= total for _, t, o in waiting)
        if not blocked and tickets <= free:
            passed = [party for party in waiting if party[1] <= total]
            for party in passed:
                party[2] += 1
            free -= tickets
            data = {"tickets": tickets, "overtookUserIds": [p[0] for p in passed]}
            written.append(("hold.created" if hold else "booking.booked", user, data))
        else:
            waiting.append([user, tickets, 0])
            data = {"tickets": tickets, "position": len(waiting)}
            written.append(("waitlist.joined", user, data))
    for _, _, data in written:
        data["fromQueue"] = True
    return written, [tuple(party) for party in waiting]


def untimed(served) -> list[tuple[str, int, dict]]:
    return [
        (kind, user, {k: v for k, v in data.items() if k != "expiresAt"})
        for _, kind, user, data in served
    ]


# The database, read straight.


def check_queue(database_url: str) -> dict[int, dict[int, int]]:
    """The pre-queue's invariants, from the tables in one snapshot: an event's queued_count
    and queued_tickets are its queue_entries rows and their tickets; a queueing event does
    not sell (sales_open false); an event that does not queue has no queued rows; a queued
    user has no booking, offer, hold or place in line for the event. {event: {user: tickets}}."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT id, sales_open, queueing, queued_count, queued_tickets FROM events")
            )
            told = {row[0]: tuple(row[1:]) for row in rows}
            queues: dict[int, dict[int, int]] = {}
            for event_id, user, tickets in conn.execute(
                sa.text("SELECT event_id, user_id, tickets FROM queue_entries")
            ):
                queues.setdefault(event_id, {})[user] = tickets
            holding = {
                tuple(row)
                for row in conn.execute(
                    sa.text(
                        "SELECT event_id, user_id FROM bookings UNION ALL"
                        " SELECT event_id, user_id FROM offers UNION ALL"
                        " SELECT event_id, user_id FROM waiting_list_entries"
                    )
                )
            }
    finally:
        engine.dispose()
    found = [f"queue rows for missing event {e}" for e in queues.keys() - told.keys()]
    for event_id, (sales_open, queueing, count, tickets) in told.items():
        queued = queues.get(event_id, {})
        where = f"event {event_id}"
        if (count, tickets) != (len(queued), sum(queued.values())):
            found.append(f"{where}: queued {count}/{tickets}, rows {len(queued)}/{queued}")
        if queueing and sales_open:
            found.append(f"{where}: queueing and selling")
        if not queueing and queued:
            found.append(f"{where}: not queueing, yet {len(queued)} queued")
        if both := {(event_id, user) for user in queued} & holding:
            found.append(f"{where}: queued and also booked, offered, held or waiting: {both}")
    assert not found, "\n".join(found)
    return queues


@pytest.fixture
def checked(settings):
    """Every test ends with the pre-queue's invariants, then the invariants and the
    journal's replay against the rule (tests/invariants.py)."""
    yield
    check_queue(settings["SQLALCHEMY_DATABASE_URI"])
    check_invariants(settings["SQLALCHEMY_DATABASE_URI"])


# Initialize.


def test_an_event_scheduled_ahead_queues_and_every_read_says_so(client, admin, checked):
    moment = datetime.now(UTC).replace(microsecond=123_000) + timedelta(hours=1)
    sent = moment.astimezone(timezone(timedelta(hours=2))).isoformat(timespec="milliseconds")
    assert sent.endswith("+02:00")
    body = {"eventName": "Opening night", "totalTickets": 5, "salesOpenAt": sent}
    response = client.post("/api/events/initialize", json=body, headers=admin)
    assert response.status_code == 201
    event = response.json
    assert event == {
        "eventId": event["eventId"],
        "eventName": "Opening night",
        "totalTickets": 5,
        "availableTickets": 5,
        "waitingListCount": 0,
        "salesOpen": False,
        "waitlistMode": "auto",
        "offerTtlSeconds": 3600,
        "offeredTickets": 0,
        "maxTicketsPerBooking": 10,
        "maxOvertakes": 3,
        "waitingTickets": 0,
        "holdTtlSeconds": 0,
        "heldTickets": 0,
        "salesOpenAt": rfc3339(moment),  # kept in UTC, written with a Z
        "queueing": True,
        "queuedCount": 0,
        "queuedTickets": 0,
    }
    event_id = event["eventId"]
    assert client.get(response.headers["Location"]).json == event
    assert client.get(f"/api/events/{event_id}").json == event
    assert client.get("/api/events").json["events"] == [event]
    [(_, _, created)] = facts(client, admin, event_id, "event.created")
    assert (created["salesOpenAt"], created["queueing"]) == (rfc3339(moment), True)


def test_salesOpenAt_in_the_past_is_an_ordinary_open_event(client, admin, checked):
    sales_open_at = from_now(-60)
    event_id = opened(client, admin, 2, salesOpenAt=sales_open_at)
    event = status(client, event_id)
    assert (event["salesOpen"], event["queueing"], event["salesOpenAt"]) == (
        True,
        False,
        sales_open_at,
    )
    response = book(client, event_id, 1)
    assert (response.status_code, response.json["status"]) == (201, "booked")
    types = [t for _, t, _, _ in history(client, admin, event_id)]
    assert types == ["event.created", "booking.booked"]  # no opening: it was never queueing


@pytest.mark.parametrize(
    "sales_open_at",
    [
        "2099-01-01T10:00:00",  # no offset: whose 10:00?
        "2099-01-01T10:00:00.000",
        "2099-01-01",
        "soon",
        4102444800,
        "2099-13-01T10:00:00Z",
    ],
)
def test_salesOpenAt_without_an_offset_or_not_a_time_is_400_and_stores_nothing(
    client, admin, rows, sales_open_at, checked
):
    body = {"eventName": "On sale", "totalTickets": 5, "salesOpenAt": sales_open_at}
    problem = assert_problem(client.post("/api/events/initialize", json=body, headers=admin), 400)
    assert "salesOpenAt" in problem["errors"], problem
    assert rows("events") == 0 and rows("journal_entries") == 0
    event_id = opened(client, admin, 5)
    problem = assert_problem(patch(client, admin, event_id, salesOpenAt=sales_open_at), 400)
    assert "salesOpenAt" in problem["errors"], problem
    event = status(client, event_id)
    assert (event["salesOpenAt"], event["queueing"], event["salesOpen"]) == (None, False, True)


# Booking while queueing.


def test_a_booking_while_queueing_is_202_queued_and_takes_no_ticket(client, admin, rows, checked):
    event_id, sales_open_at = scheduled(client, admin, 5)
    response = book(client, event_id, 1, tickets=3)
    assert response.status_code == 202
    assert response.json == {
        "eventId": event_id,
        "userId": 1,
        "status": "queued",
        "tickets": 3,
        "salesOpenAt": sales_open_at,
    }
    assert queue(client, event_id, 2)["tickets"] == 1  # one ticket unless asked
    event = status(client, event_id)
    assert (event["queuedCount"], event["queuedTickets"]) == (2, 4)
    assert (event["availableTickets"], event["waitingListCount"], event["salesOpen"]) == (
        5,
        0,
        False,
    )
    assert rows("bookings") == rows("waiting_list_entries") == rows("offers") == 0
    assert facts(client, admin, event_id, "queue.joined") == [
        ("queue.joined", 1, {"tickets": 3, "salesOpenAt": sales_open_at}),
        ("queue.joined", 2, {"tickets": 1, "salesOpenAt": sales_open_at}),
    ]


def test_booking_again_while_queued_is_409_already_queued_saying_what_and_when(
    client, admin, checked
):
    event_id, sales_open_at = scheduled(client, admin, 5)
    queue(client, event_id, 1, tickets=2)
    for tickets in (None, 2, 4, 11):  # already-queued comes before too-many-tickets
        problem = assert_problem(book(client, event_id, 1, tickets), 409)
        assert problem["type"] == PROBLEM + "already-queued"
        assert (problem["userTickets"], problem["salesOpenAt"]) == (2, sales_open_at)
    event = status(client, event_id)
    assert (event["queuedCount"], event["queuedTickets"]) == (1, 2)
    assert len(facts(client, admin, event_id, "queue.joined")) == 1


def test_too_many_tickets_while_queueing_is_refused_and_queues_nothing(client, admin, checked):
    event_id, _ = scheduled(client, admin, 5, maxTicketsPerBooking=4)
    problem = assert_problem(book(client, event_id, 1, tickets=5), 409)
    assert problem["type"] == PROBLEM + "too-many-tickets"
    assert (problem["maxTicketsPerBooking"], problem["totalTickets"]) == (4, 5)
    assert refusal(book(client, event_id, 1, tickets=1001), 400) == "about:blank"
    assert status(client, event_id)["queuedCount"] == 0
    # A party larger than the event (but within the limit) queues: the opening puts it in line.
    event_id, _ = scheduled(client, admin, 2)
    assert queue(client, event_id, 1, tickets=7)["tickets"] == 7


def test_refusals_keep_their_order_on_an_event_rescheduled_after_it_sold(client, admin, checked):
    event_id = opened(client, admin, 3, holdTtlSeconds=600, waitlistMode="offer")
    book(client, event_id, 1)  # held
    assert claim(client, event_id, 1).status_code == 201  # booked
    book(client, event_id, 2)  # held
    book(client, event_id, 3)  # held
    book(client, event_id, 4)  # waits
    book(client, event_id, 5)  # waits
    assert cancel(client, event_id, 3).json["offeredUserIds"] == [4]  # released, offered to 4
    sales_open_at = from_now(HOUR)
    assert patch(client, admin, event_id, salesOpenAt=sales_open_at).json["queueing"] is True

    expected = {1: "already-booked", 2: "already-held", 4: "already-offered", 5: "already-waiting"}
    for user, problem in expected.items():
        for tickets in (None, 11):  # before too-many-tickets, whatever the party
            assert refusal(book(client, event_id, user, tickets)) == problem, (user, tickets)
    assert assert_problem(book(client, event_id, 5), 409)["position"] == 1
    assert queue(client, event_id, 6)["salesOpenAt"] == sales_open_at
    assert refusal(book(client, event_id, 6, tickets=11)) == "already-queued"
    assert refusal(book(client, event_id, 7, tickets=11)) == "too-many-tickets"
    assert [user_state(client, event_id, u)["status"] for u in range(1, 8)] == [
        "booked", "held", "none", "offered", "waitlisted", "queued", "none",
    ]  # fmt: skip

    # Opened: user 6 is served as a booking would be now, behind the line.
    assert patch(client, admin, event_id, salesOpen=True).json["queueing"] is False
    _, served = opening(history(client, admin, event_id))
    assert untimed(served) == [
        ("waitlist.joined", 6, {"tickets": 1, "position": 2, "fromQueue": True})
    ]
    assert line(client, admin, event_id) == [(5, 1, 0), (6, 1, 0)]


def test_sales_closed_refuses_a_booking_only_when_the_event_is_not_queueing(client, admin, checked):
    event_id = opened(client, admin, 2)
    patch(client, admin, event_id, salesOpen=False)
    assert refusal(book(client, event_id, 1)) == "sales-closed"
    # A schedule ahead on a closed event queues bookings for the opening.
    event = patch(client, admin, event_id, salesOpenAt=from_now(HOUR)).json
    assert (event["salesOpen"], event["queueing"]) == (False, True)
    queue(client, event_id, 1)
    assert patch(client, admin, event_id, salesOpen=True).json["availableTickets"] == 1
    assert user_state(client, event_id, 1) == {
        "eventId": event_id,
        "userId": 1,
        "status": "booked",
        "tickets": 1,
    }


# Cancel and claim while queued.


def test_cancelling_the_whole_party_leaves_the_queue(client, admin, checked):
    event_id, _ = scheduled(client, admin, 5)
    queue(client, event_id, 1, tickets=3)
    queue(client, event_id, 2)
    response = cancel(client, event_id, 1)
    assert response.status_code == 200
    assert response.json == {
        "status": "left_queue",
        "eventId": event_id,
        "userId": 1,
        "tickets": 3,
        "remainingTickets": 0,
        "promotedUserIds": [],
        "offeredUserIds": [],
        "promotedUserId": None,
        "offeredUserId": None,
    }
    assert user_state(client, event_id, 1)["status"] == "none"
    event = status(client, event_id)
    assert (event["queuedCount"], event["queuedTickets"], event["availableTickets"]) == (1, 1, 5)
    assert refusal(cancel(client, event_id, 1), 404) == "nothing-to-cancel"
    assert facts(client, admin, event_id, "queue.left") == [
        ("queue.left", 1, {"tickets": 3, "remainingTickets": 0})
    ]
    # Gone from the queue, the user may queue again.
    assert queue(client, event_id, 1, tickets=2)["tickets"] == 2


def test_cancelling_fewer_shrinks_the_party_in_place_and_more_is_refused(client, admin, checked):
    event_id, _ = scheduled(client, admin, 5)
    queue(client, event_id, 1, tickets=4)
    response = cancel(client, event_id, 1, tickets=1)
    assert response.status_code == 200
    assert response.json == {
        "status": "left_queue",
        "eventId": event_id,
        "userId": 1,
        "tickets": 1,
        "remainingTickets": 3,
        "promotedUserIds": [],
        "offeredUserIds": [],
        "promotedUserId": None,
        "offeredUserId": None,
    }
    assert user_state(client, event_id, 1) == {
        "eventId": event_id,
        "userId": 1,
        "status": "queued",
        "tickets": 3,
    }
    problem = assert_problem(cancel(client, event_id, 1, tickets=4), 409)
    assert (problem["type"], problem["userTickets"]) == (PROBLEM + "too-many-tickets", 3)
    problem = assert_problem(book(client, event_id, 1), 409)
    assert (problem["type"], problem["userTickets"]) == (PROBLEM + "already-queued", 3)
    event = status(client, event_id)
    assert (event["queuedCount"], event["queuedTickets"]) == (1, 3)
    assert facts(client, admin, event_id, "queue.reduced") == [
        ("queue.reduced", 1, {"tickets": 1, "remainingTickets": 3})
    ]
    assert cancel(client, event_id, 1, tickets=3).json["remainingTickets"] == 0
    assert status(client, event_id)["queuedCount"] == 0


def test_a_queued_user_has_no_offer_to_claim(client, admin, checked):
    event_id, _ = scheduled(client, admin, 5, holdTtlSeconds=600)
    queue(client, event_id, 1, tickets=2)
    assert refusal(claim(client, event_id, 1)) == "no-offer"
    assert user_state(client, event_id, 1)["status"] == "queued"


def test_user_state_and_bookings_list_say_queued(client, admin, checked):
    event_id, _ = scheduled(client, admin, 5)
    other = opened(client, admin, 5)
    queue(client, event_id, 1, tickets=2)
    book(client, other, 1, tickets=1)
    assert user_state(client, event_id, 1) == {
        "eventId": event_id,
        "userId": 1,
        "status": "queued",
        "tickets": 2,
    }
    assert sorted(client.get("/api/users/1/bookings").json["bookings"], key=str) == sorted(
        [
            {"eventId": event_id, "eventName": "On sale", "status": "queued", "tickets": 2},
            {"eventId": other, "eventName": "On sale", "status": "booked", "tickets": 1},
        ],
        key=str,
    )
    assert user_state(client, event_id, 2)["status"] == "none"


# The opening.


def test_reads_show_queueing_after_the_hour_until_a_change_opens_it(client, admin, app, checked):
    event_id, sales_open_at = scheduled(client, admin, 2)
    for user in (1, 2, 3):
        queue(client, event_id, user)
    later(app, HOUR + 1)  # the hour has come, by the database's clock as the service reads it
    before = status(client, event_id)
    assert (before["queueing"], before["salesOpen"], before["queuedCount"]) == (True, False, 3)
    assert client.get(f"/api/events/{event_id}").json == before
    assert client.get("/api/events").json["events"] == [before]
    assert user_state(client, event_id, 1)["status"] == "queued"
    assert client.get("/api/users/2/bookings").json["bookings"][0]["status"] == "queued"
    assert line(client, admin, event_id) == []
    assert not facts(client, admin, event_id, "sale.opened")

    # The next change opens it first: the newcomer comes after every queued party.
    response = book(client, event_id, 4)
    assert response.status_code == 201
    assert response.json == {
        "status": "waitlisted",
        "eventId": event_id,
        "userId": 4,
        "tickets": 1,
        "position": 2,
    }
    entries = history(client, admin, event_id)
    data, served = opening(entries)
    assert data == {
        "salesOpenAt": sales_open_at,
        "queuedParties": 3,
        "queuedTickets": 3,
        "booked": 2,
        "held": 0,
        "waitlisted": 1,
    }
    assert {user for _, _, user, _ in served} == {1, 2, 3}
    last_waiting = served[-1][2]
    assert served[-1][1] == "waitlist.joined"  # the third in the shuffle finds none left
    assert entries[-1][:3] == (entries[-1][0], "waitlist.joined", 4)
    assert "fromQueue" not in entries[-1][3] and entries[-1][0] > served[-1][0]
    assert [u for u, _, _ in line(client, admin, event_id)] == [last_waiting, 4]
    after = status(client, event_id)
    assert (after["queueing"], after["salesOpen"], after["salesOpenAt"]) == (
        False,
        True,
        sales_open_at,
    )
    assert (after["queuedCount"], after["queuedTickets"], after["availableTickets"]) == (0, 0, 0)


def test_any_change_after_the_hour_opens_it_first_even_a_refused_one(client, admin, app, checked):
    first, _ = scheduled(client, admin, 3)
    second, _ = scheduled(client, admin, 3)
    for event_id in (first, second):
        queue(client, event_id, 1, tickets=2)
        queue(client, event_id, 2)
    later(app, HOUR + 1)
    # A cancel refused for a user who holds nothing: the opening commits all the same.
    assert refusal(cancel(client, first, 99), 404) == "nothing-to-cancel"
    assert status(client, first)["salesOpen"] is True
    assert {user_state(client, first, u)["status"] for u in (1, 2)} == {"booked"}
    assert status(client, second)["queueing"] is True  # the other event was not touched
    # A queued user's cancel after the hour cancels what the opening gave them.
    response = cancel(client, second, 1)
    assert (response.status_code, response.json["status"], response.json["tickets"]) == (
        200,
        "cancelled",
        2,
    )
    types = [t for _, t, _, _ in history(client, admin, second)]
    assert types[-4:-3] == ["sale.opened"] and types[-1] == "booking.cancelled"
    assert status(client, second)["availableTickets"] == 2


def test_a_postponement_sent_after_the_hour_comes_too_late_it_opens_first(
    client, admin, app, checked
):
    event_id, _ = scheduled(client, admin, 1)
    queue(client, event_id, 1)
    queue(client, event_id, 2)
    later(app, HOUR + 1)
    postponed = from_now(3 * HOUR)  # 2 hours ahead of the service's clock
    event = patch(client, admin, event_id, salesOpenAt=postponed).json
    # The change found the hour come: the opening first, then the change, a new schedule.
    types = [t for _, t, _, _ in history(client, admin, event_id)]
    assert types[3:] == ["sale.opened", "booking.booked", "waitlist.joined", "event.updated"]
    assert (event["queueing"], event["salesOpenAt"], event["availableTickets"]) == (
        True,
        postponed,
        0,
    )
    assert (event["queuedCount"], event["waitingListCount"]) == (0, 1)
    assert {user_state(client, event_id, u)["status"] for u in (1, 2)} == {"booked", "waitlisted"}
    assert queue(client, event_id, 3)["salesOpenAt"] == postponed  # the next on-sale's queue


def test_patch_salesOpen_true_opens_now_after_its_own_fact(client, admin, checked):
    event_id, sales_open_at = scheduled(client, admin, 2)
    for user in (1, 2, 3):
        queue(client, event_id, user)
    response = patch(client, admin, event_id, salesOpen=True)
    assert response.status_code == 200
    event = response.json
    assert (event["salesOpen"], event["queueing"], event["queuedCount"]) == (True, False, 0)
    assert (event["availableTickets"], event["waitingListCount"]) == (0, 1)
    opened_at = event["salesOpenAt"]  # now, by the database's clock: before the hour it had
    assert parsed(opened_at) < parsed(sales_open_at) - timedelta(minutes=59)
    entries = history(client, admin, event_id)
    updated = [e for e in entries if e[1] == "event.updated"]
    assert [e[3] for e in updated] == [
        {
            "salesOpen": True,
            "salesOpenAt": opened_at,
            "queueing": False,
            "promotedUserIds": [],
            "offeredUserIds": [],
        }
    ]
    data, _ = opening(entries)
    assert entries.index(updated[0]) + 1 == entries.index(
        next(e for e in entries if e[1] == "sale.opened")
    )
    assert (data["salesOpenAt"], data["booked"], data["waitlisted"]) == (opened_at, 2, 1)
    outcome = ("promotedUserIds", "offeredUserIds")
    assert status(client, event_id) == {k: v for k, v in event.items() if k not in outcome}
    # Opening again is no opening: salesOpen true on an open event changes nothing.
    assert patch(client, admin, event_id, salesOpen=True).json["salesOpenAt"] == opened_at
    assert len(facts(client, admin, event_id, "sale.opened")) == 1


def test_patch_salesOpenAt_in_the_past_opens_now_and_keeps_the_time_given(client, admin, checked):
    event_id, _ = scheduled(client, admin, 1)
    queue(client, event_id, 1)
    queue(client, event_id, 2)
    past = from_now(-5)
    event = patch(client, admin, event_id, salesOpenAt=past).json
    assert (event["salesOpen"], event["queueing"], event["salesOpenAt"]) == (True, False, past)
    data, served = opening(history(client, admin, event_id))
    assert (data["salesOpenAt"], data["queuedParties"], data["booked"]) == (past, 2, 1)
    assert sorted(kind for _, kind, _, _ in served) == ["booking.booked", "waitlist.joined"]


def test_salesOpen_false_while_queueing_is_409_queueing_and_closing_after_works(
    client, admin, checked
):
    event_id, sales_open_at = scheduled(client, admin, 2)
    queue(client, event_id, 1)
    problem = assert_problem(patch(client, admin, event_id, salesOpen=False), 409)
    assert (problem["type"], problem["salesOpenAt"]) == (PROBLEM + "queueing", sales_open_at)
    event = status(client, event_id)
    assert (event["queueing"], event["salesOpenAt"], event["queuedCount"]) == (
        True,
        sales_open_at,
        1,
    )
    # Other settings work as usual while queueing.
    assert patch(client, admin, event_id, totalTickets=4).json["availableTickets"] == 4
    assert not facts(client, admin, event_id, "sale.opened")
    patch(client, admin, event_id, salesOpen=True)
    closed = patch(client, admin, event_id, salesOpen=False).json
    assert (closed["salesOpen"], closed["queueing"]) == (False, False)
    assert refusal(book(client, event_id, 2)) == "sales-closed"


def test_salesOpen_and_salesOpenAt_together_must_agree_else_409_queueing(client, admin, checked):
    # salesOpen true with a time ahead: sales cannot open now and at that time.
    for event_id in (scheduled(client, admin, 2)[0], opened(client, admin, 2)):
        before = status(client, event_id)
        response = patch(client, admin, event_id, salesOpen=True, salesOpenAt=from_now(60))
        assert refusal(response) == "queueing"
        assert status(client, event_id) == before
    # salesOpen false with a time ahead: a schedule, as the time alone.
    event_id, _ = scheduled(client, admin, 2)
    queue(client, event_id, 1)
    moved = from_now(2 * HOUR)
    event = patch(client, admin, event_id, salesOpen=False, salesOpenAt=moved).json
    assert (event["queueing"], event["salesOpen"], event["salesOpenAt"]) == (True, False, moved)
    # salesOpen false with a time passed, while queueing: it would close, so 409.
    response = patch(client, admin, event_id, salesOpen=False, salesOpenAt=from_now(-5))
    assert assert_problem(response, 409)["salesOpenAt"] == moved
    # salesOpen true with a time passed: the opening now, the time kept as sent.
    past = from_now(-5)
    event = patch(client, admin, event_id, salesOpen=True, salesOpenAt=past).json
    assert (event["queueing"], event["salesOpen"], event["salesOpenAt"]) == (False, True, past)
    assert opening(history(client, admin, event_id))[0]["salesOpenAt"] == past


def test_salesOpenAt_null_is_no_schedule_at_initialize_and_400_in_a_patch(client, admin, checked):
    event_id = opened(client, admin, 2, salesOpenAt=None)
    event = status(client, event_id)
    assert (event["salesOpenAt"], event["queueing"], event["salesOpen"]) == (None, False, True)
    scheduled_id, sales_open_at = scheduled(client, admin, 2)
    for target in (event_id, scheduled_id):
        problem = assert_problem(patch(client, admin, target, salesOpenAt=None), 400)
        assert "salesOpenAt" in problem["errors"], problem
    assert status(client, scheduled_id)["salesOpenAt"] == sales_open_at


def test_salesOpenAt_ahead_on_an_open_event_starts_queueing(client, admin, app, checked):
    event_id = opened(client, admin, 2)
    book(client, event_id, 1)
    sales_open_at = from_now(HOUR)
    event = patch(client, admin, event_id, salesOpenAt=sales_open_at).json
    assert (event["salesOpen"], event["queueing"], event["salesOpenAt"]) == (
        False,
        True,
        sales_open_at,
    )
    [(_, _, updated)] = facts(client, admin, event_id, "event.updated")
    assert updated == {
        "salesOpenAt": sales_open_at,
        "queueing": True,
        "salesOpen": False,
        "promotedUserIds": [],
        "offeredUserIds": [],
    }
    assert queue(client, event_id, 2)["salesOpenAt"] == sales_open_at
    assert refusal(book(client, event_id, 1)) == "already-booked"
    # Who holds a booking may still cancel it while the event queues.
    assert cancel(client, event_id, 1).json["status"] == "cancelled"
    # Moved later while queueing: the queue stays, every answer says the new hour.
    moved = from_now(2 * HOUR)
    assert patch(client, admin, event_id, salesOpenAt=moved).json["queuedCount"] == 1
    assert assert_problem(book(client, event_id, 2), 409)["salesOpenAt"] == moved
    later(app, HOUR + 1)
    patch(client, admin, event_id, eventName="Still waiting")  # a change, before the hour
    assert status(client, event_id)["queueing"] is True
    later(app, HOUR)
    patch(client, admin, event_id, eventName="Open")  # a change after it: the opening
    event = status(client, event_id)
    assert (event["queueing"], event["salesOpen"], event["availableTickets"]) == (False, True, 1)
    data, _ = opening(history(client, admin, event_id))
    assert (data["salesOpenAt"], data["booked"]) == (moved, 1)


# Holds and parties in the queue.


def test_queued_parties_are_held_at_the_opening_when_the_event_holds_then_claim(
    client, admin, checked
):
    parties = {1: 2, 2: 2, 3: 3, 4: 1, 5: 1}
    event_id, _ = scheduled(client, admin, 4, holdTtlSeconds=600)
    for user, tickets in parties.items():
        queue(client, event_id, user, tickets)
    patch(client, admin, event_id, salesOpen=True)
    data, served = opening(history(client, admin, event_id))
    order = [(user, parties[user]) for _, _, user, _ in served]
    expected, waiting = by_the_rule(order, total=4, hold=True)
    assert untimed(served) == expected
    held = [user for kind, user, _ in expected if kind == "hold.created"]
    assert data["held"] == len(held) >= 2 and data["booked"] == 0
    for _, kind, user, fact in served:
        if kind == "hold.created":
            state = user_state(client, event_id, user)
            assert (state["status"], state["holdExpiresAt"]) == ("held", fact["expiresAt"])
    event = status(client, event_id)
    assert event["heldTickets"] == sum(parties[u] for u in held)
    assert line(client, admin, event_id) == waiting
    for user in held:
        response = claim(client, event_id, user)
        assert (response.status_code, response.json["tickets"]) == (201, parties[user])
    event = status(client, event_id)
    assert (event["heldTickets"], event["availableTickets"]) == (
        0,
        4 - sum(parties[u] for u in held),
    )
    claimed = facts(client, admin, event_id, "hold.claimed")
    assert sorted(user for _, user, _ in claimed) == sorted(held)


def test_parties_in_the_queue_are_served_by_the_rule_in_the_shuffled_order(client, admin, checked):
    # maxOvertakes 1 and a party larger than the event (never blocks, never counted).
    parties = {1: 4, 2: 3, 3: 2, 4: 2, 5: 1, 6: 7}
    orders = set()
    for _ in range(6):
        event_id, _ = scheduled(client, admin, 6, maxOvertakes=1)
        for user, tickets in random.sample(list(parties.items()), len(parties)):
            queue(client, event_id, user, tickets)
        assert status(client, event_id)["queuedTickets"] == sum(parties.values())
        patch(client, admin, event_id, salesOpen=True)
        _, served = opening(history(client, admin, event_id))
        order = tuple((user, parties[user]) for _, _, user, _ in served)
        expected, waiting = by_the_rule(order, total=6, max_overtakes=1)
        assert untimed(served) == expected, order
        assert line(client, admin, event_id) == waiting
        booked = [user for kind, user, _ in expected if kind == "booking.booked"]
        event = status(client, event_id)
        assert event["availableTickets"] == 6 - sum(parties[u] for u in booked)
        assert event["waitingTickets"] == sum(t for _, t, _ in waiting)
        orders.add(order)
    assert len(orders) > 1, "six openings served the queue in one order"


def test_the_opening_serves_queued_parties_behind_the_line_there_was_and_its_overtakes(
    client, admin, checked
):
    event_id = opened(client, admin, 3, maxOvertakes=1)
    book(client, event_id, 1, tickets=3)  # booked
    book(client, event_id, 2, tickets=2)  # waits at the head
    patch(client, admin, event_id, salesOpenAt=from_now(HOUR))
    for user in (3, 4, 5):
        queue(client, event_id, user)
    # 1 ticket freed while queueing: the head (2) does not fit it.
    assert cancel(client, event_id, 1, tickets=1).json["promotedUserIds"] == []
    patch(client, admin, event_id, salesOpen=True)
    data, served = opening(history(client, admin, event_id))
    first, second, third = (user for _, _, user, _ in served)
    # The first served passes the head, which may be passed only once: then it blocks.
    assert untimed(served) == [
        ("booking.booked", first, {"tickets": 1, "overtookUserIds": [2], "fromQueue": True}),
        ("waitlist.joined", second, {"tickets": 1, "position": 2, "fromQueue": True}),
        ("waitlist.joined", third, {"tickets": 1, "position": 3, "fromQueue": True}),
    ]
    assert (data["booked"], data["waitlisted"]) == (1, 2)
    assert line(client, admin, event_id) == [(2, 2, 1), (second, 1, 0), (third, 1, 0)]


# The journal of a queue and its opening.


def test_the_journal_tells_the_queue_then_the_opening_in_the_shuffled_order(client, admin, checked):
    event_id, sales_open_at = scheduled(client, admin, 5)
    queue(client, event_id, 1, tickets=3)
    queue(client, event_id, 2)
    cancel(client, event_id, 1, tickets=1)
    cancel(client, event_id, 2)
    for user, tickets in ((3, 2), (4, 1), (5, 4)):
        queue(client, event_id, user, tickets)
    joined = {"salesOpenAt": sales_open_at}
    assert [(t, u, d) for _, t, u, d in history(client, admin, event_id)[1:]] == [
        ("queue.joined", 1, {"tickets": 3, **joined}),
        ("queue.joined", 2, {"tickets": 1, **joined}),
        ("queue.reduced", 1, {"tickets": 1, "remainingTickets": 2}),
        ("queue.left", 2, {"tickets": 1, "remainingTickets": 0}),
        ("queue.joined", 3, {"tickets": 2, **joined}),
        ("queue.joined", 4, {"tickets": 1, **joined}),
        ("queue.joined", 5, {"tickets": 4, **joined}),
    ]
    opened_at = patch(client, admin, event_id, salesOpen=True).json["salesOpenAt"]
    book(client, event_id, 6)  # after the opening: after every queued party
    entries = history(client, admin, event_id)
    data, served = opening(entries)
    assert data["salesOpenAt"] == opened_at
    assert (data["queuedParties"], data["queuedTickets"]) == (4, 9)
    parties = {1: 2, 3: 2, 4: 1, 5: 4}
    order = [(user, parties[user]) for _, _, user, _ in served]
    assert sorted(order) == sorted(parties.items())
    expected, waiting = by_the_rule(order, total=5)
    assert untimed(served) == expected
    # The line is the shuffled order of those who waited, then the newcomer.
    newcomer = entries[-1]
    assert (newcomer[1], newcomer[2]) in (("booking.booked", 6), ("waitlist.joined", 6))
    assert newcomer[0] > served[-1][0] and "fromQueue" not in newcomer[3]
    after = [(6, 1, 0)] if newcomer[1] == "waitlist.joined" else []
    if newcomer[1] == "booking.booked":  # booked past the line: it passed every party
        assert newcomer[3]["overtookUserIds"] == [u for u, t, _ in waiting if t <= 5]
        waiting = [(u, t, o + 1) for u, t, o in waiting]
    assert line(client, admin, event_id) == waiting + after


# The worker, and a retried booking.


def test_the_worker_opens_a_due_event_nobody_changes(client, admin, settings, tmp_path, checked):
    event_id, _ = scheduled(client, admin, 2)
    not_yet, _ = scheduled(client, admin, 2)
    for user in (1, 2, 3):
        queue(client, event_id, user)
        queue(client, not_yet, user)
    # The worker is a process of its own, on the database's clock: the hour is moved to 2 s
    # from now (by that clock), and passes; nobody changes the event meanwhile.
    engine = sa.create_engine(settings["SQLALCHEMY_DATABASE_URI"])

    def database_now() -> datetime:
        with engine.connect() as conn:
            return journal.database_now(conn)

    hour = database_now() + timedelta(seconds=2)
    assert patch(client, admin, event_id, salesOpenAt=rfc3339(hour)).json["queueing"] is True
    while database_now() <= hour:
        time.sleep(0.05)
    engine.dispose()
    assert status(client, event_id)["queueing"] is True  # reads do not open it
    WorkerProcess(
        settings["SQLALCHEMY_DATABASE_URI"],
        tmp_path / "worker.log",
        BOOKING_LOCK=settings["BOOKING_LOCK"],
        LOG_LEVEL="WARNING",
    ).once()
    event = status(client, event_id)
    assert (event["queueing"], event["salesOpen"], event["queuedCount"]) == (False, True, 0)
    assert (event["availableTickets"], event["waitingListCount"]) == (0, 1)
    data, served = opening(history(client, admin, event_id))
    assert (data["salesOpenAt"], data["queuedParties"], data["booked"]) == (rfc3339(hour), 3, 2)
    assert [u for u, _, _ in line(client, admin, event_id)] == [served[-1][2]]
    assert status(client, not_yet)["queueing"] is True  # its hour has not come


def test_a_keyed_queued_booking_retried_replays_the_same_202(client, admin, checked):
    event_id, _ = scheduled(client, admin, 2)
    body, key = {"userId": 1, "eventId": event_id, "tickets": 2}, {"Idempotency-Key": "queue-1"}
    first = client.post("/api/events/book", json=body, headers=key)
    again = client.post("/api/events/book", json=body, headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json["status"] == "queued"
    assert again.data == first.data and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    event = status(client, event_id)
    assert (event["queuedCount"], event["queuedTickets"]) == (1, 2)
    assert len(facts(client, admin, event_id, "queue.joined")) == 1
    # After the opening the key still answers what it answered: nothing is booked twice.
    patch(client, admin, event_id, salesOpen=True)
    third = client.post("/api/events/book", json=body, headers=key)
    assert (third.status_code, third.data) == (202, first.data)
    assert status(client, event_id)["availableTickets"] == 0
    assert user_state(client, event_id, 1)["status"] == "booked"
