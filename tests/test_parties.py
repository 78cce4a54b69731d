"""Parties: several tickets in one booking, and a waiting line that is fair to them.

The contract of issue 20 through the Flask test client, on SQLite and on MariaDB in
both lock modes: whole parties, the allocation's walk (serve who fits, count
overtakes, block at maxOvertakes), partial cancels, shrinking places, claims of
fewer, capacity and rule changes, the journal's facts and the invariants after each
test (tests/invariants.py replays the journal against the rule).
"""

import pytest

from .invariants import check_invariants
from .test_api import assert_problem, status
from .test_offers import claim, pass_time

TOO_MANY = "urn:booking:problem:too-many-tickets"


def create(client, admin, total, **settings):
    body = {"eventName": "Parties", "totalTickets": total, **settings}
    response = client.post("/api/events/initialize", json=body, headers=admin)
    assert response.status_code == 201, response.json
    return response.json["eventId"]


def book(client, event_id, user, tickets=None):
    body = {"userId": user, "eventId": event_id}
    if tickets is not None:
        body["tickets"] = tickets
    return client.post("/api/events/book", json=body)


def cancel(client, event_id, user, tickets=None):
    body = {"userId": user, "eventId": event_id}
    if tickets is not None:
        body["tickets"] = tickets
    return client.post("/api/events/cancel", json=body)


def line(client, admin, event_id):
    """The admin's waiting list as [(userId, tickets, overtakes)]."""
    page = client.get(f"/api/events/{event_id}/waiting-list", headers=admin).json
    assert page["userIds"] == [entry["userId"] for entry in page["entries"]]
    return [(e["userId"], e["tickets"], e["overtakes"]) for e in page["entries"]]


def facts(client, admin, event_id, *types):
    page = client.get(f"/api/events/{event_id}/history?limit=100", headers=admin).json
    return [(e["type"], e["userId"], e["data"]) for e in page["entries"] if e["type"] in types]


@pytest.fixture
def checked(settings):
    """Every test ends with the invariants and the journal's replay against the rule."""
    yield
    check_invariants(settings["SQLALCHEMY_DATABASE_URI"])


def test_a_party_books_whole_and_every_read_counts_its_tickets(client, admin, checked):
    event_id = create(client, admin, 5)
    response = book(client, event_id, 1, tickets=3)
    assert response.status_code == 201
    assert response.json == {"status": "booked", "eventId": event_id, "userId": 1, "tickets": 3}
    event = status(client, event_id)
    assert (event["availableTickets"], event["maxTicketsPerBooking"], event["maxOvertakes"]) == (
        2,
        10,
        3,
    )
    assert client.get(f"/api/events/{event_id}/users/1").json == {
        "eventId": event_id,
        "userId": 1,
        "status": "booked",
        "tickets": 3,
    }
    bookings = client.get("/api/users/1/bookings").json["bookings"]
    assert bookings == [
        {"eventId": event_id, "eventName": "Parties", "status": "booked", "tickets": 3}
    ]
    # Without `tickets` a booking is one ticket, as it always was.
    assert book(client, event_id, 2).json == {
        "status": "booked",
        "eventId": event_id,
        "userId": 2,
        "tickets": 1,
    }


def test_a_party_that_does_not_fit_waits_whole(client, admin, checked):
    event_id = create(client, admin, 4)
    book(client, event_id, 1, tickets=3)
    response = book(client, event_id, 2, tickets=2)
    assert response.json == {
        "status": "waitlisted",
        "eventId": event_id,
        "userId": 2,
        "tickets": 2,
        "position": 1,
    }
    event = status(client, event_id)
    assert (event["availableTickets"], event["waitingListCount"], event["waitingTickets"]) == (
        1,
        1,
        2,
    )
    assert client.get(f"/api/events/{event_id}/users/2").json == {
        "eventId": event_id,
        "userId": 2,
        "status": "waitlisted",
        "tickets": 2,
        "position": 1,
        "overtakes": 0,
    }


@pytest.mark.parametrize("tickets", [0, -1, 1001, 2.0, "2", True, None])
def test_tickets_out_of_range_or_not_an_integer_is_400_and_changes_nothing(
    client, admin, tickets, checked
):
    event_id = create(client, admin, 5)
    body = {"userId": 1, "eventId": event_id, "tickets": tickets}
    for path in ("book", "cancel", "claim"):
        problem = assert_problem(client.post(f"/api/events/{path}", json=body), 400)
        assert "tickets" in problem["errors"]
    assert status(client, event_id)["availableTickets"] == 5


def test_more_than_max_tickets_per_booking_is_409_saying_the_limits(client, admin, checked):
    event_id = create(client, admin, 3, maxTicketsPerBooking=4)
    problem = assert_problem(book(client, event_id, 1, tickets=5), 409)
    assert problem["type"] == TOO_MANY
    assert (problem["maxTicketsPerBooking"], problem["totalTickets"]) == (4, 3)
    # More than the event has is allowed: the party waits until the capacity grows.
    assert book(client, event_id, 2, tickets=4).json["status"] == "waitlisted"
    assert status(client, event_id)["availableTickets"] == 3


def test_the_pretix_case_a_later_party_that_fits_is_served_and_the_head_counts_it(
    client, admin, checked
):
    """The head wants 5, only 3 are free: with maxOvertakes 3 a party of 3 behind it books
    the 3; the head has been passed over once."""
    event_id = create(client, admin, 10)
    book(client, event_id, 1, tickets=7)
    book(client, event_id, 2, tickets=5)  # waits: 3 free
    response = book(client, event_id, 3, tickets=3)
    assert response.json["status"] == "booked"
    assert line(client, admin, event_id) == [(2, 5, 1)]
    assert facts(client, admin, event_id, "booking.booked")[-1] == (
        "booking.booked",
        3,
        {"tickets": 3, "overtookUserIds": [2]},
    )


def test_with_max_overtakes_0_the_head_blocks_until_it_fits(client, admin, checked, rows):
    event_id = create(client, admin, 10, maxOvertakes=0)
    book(client, event_id, 1, tickets=7)
    book(client, event_id, 2, tickets=5)
    response = book(client, event_id, 3, tickets=1)  # 3 free, yet the head comes first
    assert response.json["status"] == "waitlisted"
    assert status(client, event_id)["availableTickets"] == 3
    assert line(client, admin, event_id) == [(2, 5, 0), (3, 1, 0)]
    # Two more freed: the head fits now and is served first, then the one behind it.
    cancel_answer = cancel(client, event_id, 1, tickets=3).json
    assert cancel_answer["promotedUserIds"] == [2, 3]
    assert cancel_answer["remainingTickets"] == 4
    assert line(client, admin, event_id) == []


def test_a_party_passed_over_max_overtakes_times_blocks_even_a_new_booker(client, admin, checked):
    event_id = create(client, admin, 10, maxOvertakes=2)
    book(client, event_id, 1, tickets=8)
    book(client, event_id, 2, tickets=4)  # waits, 2 free
    assert book(client, event_id, 3, tickets=1).json["status"] == "booked"  # passes 2 (1)
    assert book(client, event_id, 4, tickets=1).json["status"] == "booked"  # passes 2 (2)
    assert line(client, admin, event_id) == [(2, 4, 2)]
    cancel(client, event_id, 3)  # one ticket free: it waits for user 2, who blocks
    blocked = book(client, event_id, 5, tickets=1)
    assert blocked.json["status"] == "waitlisted"
    assert status(client, event_id)["availableTickets"] == 1
    # Three more free: user 2 fits and is served whole, then user 5.
    answer = cancel(client, event_id, 1, tickets=3).json
    assert answer["promotedUserIds"] == [2]
    assert line(client, admin, event_id) == [(5, 1, 0)]
    assert status(client, event_id)["availableTickets"] == 0


def test_a_party_larger_than_the_event_never_blocks_and_is_served_when_it_grows(
    client, admin, checked
):
    event_id = create(client, admin, 3, maxOvertakes=0)
    assert book(client, event_id, 1, tickets=5).json["status"] == "waitlisted"
    # Strict order, yet the party of 5 cannot block a line it can never leave.
    assert book(client, event_id, 2, tickets=2).json["status"] == "booked"
    assert line(client, admin, event_id) == [(1, 5, 0)]  # no overtake counted
    response = client.patch(f"/api/events/{event_id}", json={"totalTickets": 7}, headers=admin)
    assert response.json["promotedUserIds"] == [1]
    assert response.json["availableTickets"] == 0


def test_a_partial_cancel_frees_some_and_serves_several_parties_in_line_order(
    client, admin, checked
):
    event_id = create(client, admin, 6)
    book(client, event_id, 1, tickets=6)
    for user, tickets in ((2, 2), (3, 1), (4, 2)):
        assert book(client, event_id, user, tickets=tickets).json["status"] == "waitlisted"
    response = cancel(client, event_id, 1, tickets=4)
    assert response.status_code == 200
    assert response.json == {
        "status": "cancelled",
        "eventId": event_id,
        "userId": 1,
        "tickets": 4,
        "remainingTickets": 2,
        "promotedUserIds": [2, 3],
        "offeredUserIds": [],
        "promotedUserId": 2,
        "offeredUserId": None,
    }
    assert line(client, admin, event_id) == [(4, 2, 0)]
    assert status(client, event_id)["availableTickets"] == 1
    problem = assert_problem(cancel(client, event_id, 1, tickets=3), 409)
    assert (problem["type"], problem["userTickets"]) == (TOO_MANY, 2)


def test_a_waiting_party_that_shrinks_keeps_its_place_and_may_then_fit(client, admin, checked):
    event_id = create(client, admin, 4, maxOvertakes=0)
    book(client, event_id, 1, tickets=3)
    book(client, event_id, 2, tickets=3)  # waits; 1 free
    book(client, event_id, 3, tickets=2)  # waits behind it
    response = cancel(client, event_id, 3, tickets=1)  # one friend drops out
    assert response.json == {
        "status": "left_waiting_list",
        "eventId": event_id,
        "userId": 3,
        "tickets": 1,
        "remainingTickets": 1,
        "position": 2,
        "promotedUserIds": [],
        "offeredUserIds": [],
        "promotedUserId": None,
        "offeredUserId": None,
    }
    answer = cancel(client, event_id, 2, tickets=2).json  # now 1 ticket: it fits, first
    assert answer["promotedUserIds"] == [2]
    assert "position" not in answer
    assert line(client, admin, event_id) == [(3, 1, 0)]
    assert facts(client, admin, event_id, "waitlist.reduced")[0][2]["remainingTickets"] == 1


def test_leaving_the_line_unblocks_it(client, admin, checked):
    event_id = create(client, admin, 4, maxOvertakes=0)
    book(client, event_id, 1, tickets=2)
    book(client, event_id, 2, tickets=3)  # blocks: 2 free
    book(client, event_id, 3, tickets=2)
    answer = cancel(client, event_id, 2).json
    assert answer["status"] == "left_waiting_list"
    assert answer["remainingTickets"] == 0 and answer["promotedUserIds"] == [3]


def test_offers_hold_a_party_whole_and_a_claim_of_fewer_frees_the_rest(
    client, admin, settings, checked
):
    event_id = create(client, admin, 4, waitlistMode="offer")
    book(client, event_id, 1, tickets=4)
    book(client, event_id, 2, tickets=3)
    book(client, event_id, 3, tickets=1)
    answer = cancel(client, event_id, 1).json
    assert answer["offeredUserIds"] == [2, 3] and answer["offeredUserId"] == 2
    assert status(client, event_id)["offeredTickets"] == 4
    user_state = client.get(f"/api/events/{event_id}/users/2").json
    assert user_state["status"] == "offered" and user_state["tickets"] == 3
    problem = assert_problem(cancel(client, event_id, 2, tickets=2), 409)
    assert (problem["type"], problem["userTickets"]) == (TOO_MANY, 3)
    problem = assert_problem(claim_some(client, event_id, 2, 4), 409)
    assert problem["type"] == TOO_MANY
    book(client, event_id, 4, tickets=2)  # waits for what user 2 will not take
    response = claim_some(client, event_id, 2, 1)
    assert response.status_code == 201
    assert response.json == {
        "status": "booked",
        "eventId": event_id,
        "userId": 2,
        "tickets": 1,
        "releasedTickets": 2,
        "promotedUserIds": [],
        "offeredUserIds": [4],
    }
    assert claim(client, event_id, 3).json["tickets"] == 1
    assert status(client, event_id)["offeredTickets"] == 2


def claim_some(client, event_id, user, tickets):
    return client.post(
        "/api/events/claim", json={"userId": user, "eventId": event_id, "tickets": tickets}
    )


def test_offers_that_lapse_together_are_freed_together_then_allocated_once(
    client, admin, settings, checked
):
    event_id = create(client, admin, 4, waitlistMode="offer", maxOvertakes=0)
    book(client, event_id, 1, tickets=4)
    book(client, event_id, 2, tickets=2)
    book(client, event_id, 3, tickets=2)
    book(client, event_id, 4, tickets=4)
    cancel(client, event_id, 1)  # 2 and 3 hold offers of 2 each
    pass_time(settings["SQLALCHEMY_DATABASE_URI"])
    # The next change settles both lapses first: 4 free at once, so the party of 4 is
    # offered them (one at a time, neither lapse alone would have served it).
    assert book(client, event_id, 5).json["status"] == "waitlisted"
    expired = facts(client, admin, event_id, "offer.expired")
    went = [(user, data["promotedUserIds"], data["offeredUserIds"]) for _, user, data in expired]
    assert went == [(2, [], [4]), (3, [], [4])]  # the one allocation after both
    assert client.get(f"/api/events/{event_id}/users/4").json["status"] == "offered"


def test_raising_max_overtakes_runs_the_allocation(client, admin, checked):
    event_id = create(client, admin, 4, maxOvertakes=0)
    book(client, event_id, 1, tickets=2)
    book(client, event_id, 2, tickets=3)  # blocks: 2 free
    book(client, event_id, 3, tickets=2)
    response = client.patch(f"/api/events/{event_id}", json={"maxOvertakes": 1}, headers=admin)
    assert response.status_code == 200
    assert response.json["promotedUserIds"] == [3]
    assert response.json["maxOvertakes"] == 1
    assert line(client, admin, event_id) == [(2, 3, 1)]


def test_capacity_cannot_go_below_booked_and_offered_tickets(client, admin, checked):
    event_id = create(client, admin, 6, waitlistMode="offer")
    book(client, event_id, 1, tickets=4)
    book(client, event_id, 2, tickets=4)
    cancel(client, event_id, 1, tickets=2)  # 2 booked, 4 offered to user 2
    response = client.patch(f"/api/events/{event_id}", json={"totalTickets": 5}, headers=admin)
    problem = assert_problem(response, 409)
    assert problem["type"].endswith("capacity-below-held") and problem["held"] == 6
    assert status(client, event_id)["totalTickets"] == 6


def test_promotions_in_the_journal_say_whom_they_passed_over(client, admin, checked):
    event_id = create(client, admin, 5)
    book(client, event_id, 1, tickets=5)
    book(client, event_id, 2, tickets=4)
    book(client, event_id, 3, tickets=2)
    cancel(client, event_id, 1, tickets=2)
    assert facts(client, admin, event_id, "booking.promoted") == [
        (
            "booking.promoted",
            3,
            {
                "tickets": 2,
                "cause": "booking.cancelled",
                "causeUserId": 1,
                "overtookUserIds": [2],
            },
        )
    ]
