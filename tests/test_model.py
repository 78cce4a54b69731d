"""The reference model of issues 20, 21 and 22 on its own (no server, no database): the
issues' worked examples, checkout holds on the model's clock, a scheduled on-sale's queue
and its opening in a given order, the refusals, and random programs (with holds, the clock
moving, on-sales scheduled, moved and opened in random orders) that must keep every
invariant, replay from the journal (here and through model_replay.py), and be plain FIFO
when every party is one ticket (derandomized, as the other Hypothesis tests, so CI replays
the same programs)."""

import contextlib
import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .model import Deadline, EventModel, ModelRefusal, Party
from .model_replay import model_violations

SERVED = ("booking.promoted", "offer.created")  # the facts of a waiting party served
EXPIRED = ("offer.expired", "hold.expired")


def line(event: EventModel) -> list[tuple]:
    return [(p.user, p.tickets, p.overtakes) for p in event.line]


def refused(call, *args, **kwargs) -> ModelRefusal:
    with pytest.raises(ModelRefusal) as caught:
        call(*args, **kwargs)
    return caught.value


def went(promoted, offered):
    """Where freed tickets went, as answers and facts say it."""
    return {
        "promotedUserIds": promoted,
        "offeredUserIds": offered,
        "promotedUserId": (promoted or [None])[0],
        "offeredUserId": (offered or [None])[0],
    }


def serving(tickets, overtook, cause, cause_user):
    """The data of booking.promoted / offer.created."""
    return {
        "tickets": tickets,
        "overtookUserIds": overtook,
        "cause": cause,
        "causeUserId": cause_user,
    }


def replay(journal: list[tuple]) -> EventModel:
    """Rebuild the tables from the journal alone: the facts must say everything that moved."""
    event = EventModel(total=0)
    opening: dict[int, int] = {}  # the parties the last sale.opened took from the queue
    for type_, user, data in journal:
        if data.get("fromQueue"):
            assert opening.pop(user) == data["tickets"]
        if type_ == "queue.joined":
            assert user not in event.queue
            event.queue[user] = data["tickets"]
        elif type_ in ("queue.left", "queue.reduced"):
            event.queue[user] -= data["tickets"]
            assert event.queue[user] == data["remainingTickets"]
            if type_ == "queue.left":
                assert event.queue.pop(user) == 0
        elif type_ == "sale.opened":
            assert not opening and data["queuedParties"] == len(event.queue)
            assert data["queuedTickets"] == sum(event.queue.values())
            opening, event.queue = event.queue, {}
        for passed in event.line:
            passed.overtakes += passed.user in data.get("overtookUserIds", ())
        if type_ in ("booking.promoted", "offer.created"):
            event.line.remove(event.party(user))
        if type_ in ("booking.booked", "booking.promoted"):
            event.booked[user] = data["tickets"]
        elif type_ == "offer.created":
            event.offered[user] = data["tickets"]
        elif type_ == "hold.created":
            event.holds[user] = data["tickets"]
        elif type_ == "waitlist.joined":
            assert data["position"] == len(event.line) + 1
            event.line.append(Party(user, data["tickets"]))
        elif type_ == "booking.cancelled":
            event.booked[user] -= data["tickets"]
            if not event.booked[user]:
                del event.booked[user]
        elif type_ in ("waitlist.left", "waitlist.reduced"):
            event.party(user).tickets -= data["tickets"]
            if type_ == "waitlist.left":
                event.line.remove(event.party(user))
        elif type_ == "offer.claimed":
            assert event.offered.pop(user) == data["tickets"] + data["releasedTickets"]
            event.booked[user] = data["tickets"]
        elif type_ in ("offer.declined", "offer.expired"):
            assert event.offered.pop(user) == data["tickets"]
        elif type_ == "hold.claimed":
            assert event.holds.pop(user) == data["tickets"] + data["releasedTickets"]
            event.booked[user] = data["tickets"]
        elif type_ in ("hold.released", "hold.expired"):
            assert event.holds.pop(user) == data["tickets"]
        elif type_ == "event.updated":
            event.total = data.get("totalTickets", event.total)
    return event


# --- the examples ---


def test_pretix_head_wants_5_with_3_free_a_later_party_of_3_is_served():
    event = EventModel(total=6, max_overtakes=3)
    assert event.book(1, 3) == {"status": "booked", "tickets": 3}
    assert event.book(2, 5) == {"status": "waitlisted", "position": 1, "tickets": 5}
    assert event.available == 3
    assert event.book(3, 3) == {"status": "booked", "tickets": 3}
    assert line(event) == [(2, 5, 1)]
    assert event.journal[-1] == ("booking.booked", 3, {"tickets": 3, "overtookUserIds": [2]})
    assert event.violations() == []


def test_pretix_with_max_overtakes_0_nobody_is_served_and_the_3_tickets_wait():
    event = EventModel(total=6, max_overtakes=0)
    event.book(1, 3)
    event.book(2, 5)
    assert event.book(3, 3) == {"status": "waitlisted", "position": 2, "tickets": 3}
    assert event.book(4, 1) == {"status": "waitlisted", "position": 3, "tickets": 1}
    assert event.available == 3
    assert line(event) == [(2, 5, 0), (3, 3, 0), (4, 1, 0)]
    assert event.violations() == []
    # Freed tickets wait for the head too, then serve it first.
    answer = event.cancel(1, 2)
    assert answer["promotedUserIds"] == [2]
    assert line(event) == [(3, 3, 0), (4, 1, 0)]


def test_freed_tickets_skip_a_head_that_does_not_fit():
    event = EventModel(total=6, mode="offer")
    event.book(1, 6)
    for user, tickets in ((2, 5), (3, 2), (4, 1)):
        event.book(user, tickets)
    answer = event.cancel(1, 3)
    assert answer == {
        "status": "cancelled",
        "tickets": 3,
        "remainingTickets": 3,
        "promotedUserIds": [],
        "offeredUserIds": [3, 4],
        "promotedUserId": None,
        "offeredUserId": 3,
    }
    assert event.offered == {3: 2, 4: 1}
    assert line(event) == [(2, 5, 2)]
    assert event.journal[-3:] == [
        ("booking.cancelled", 1, {"tickets": 3, "remainingTickets": 3, **went([], [3, 4])}),
        ("offer.created", 3, serving(2, [2], "booking.cancelled", 1)),
        ("offer.created", 4, serving(1, [2], "booking.cancelled", 1)),
    ]


def test_a_party_bigger_than_the_event_never_blocks_until_capacity_grows():
    event = EventModel(total=4, max_overtakes=0, max_tickets_per_booking=20)
    assert event.book(1, 12) == {"status": "waitlisted", "position": 1, "tickets": 12}
    assert event.book(2, 2) == {"status": "booked", "tickets": 2}
    assert event.journal[-1] == ("booking.booked", 2, {"tickets": 2, "overtookUserIds": []})
    assert line(event) == [(1, 12, 0)]  # passed over, but not counted
    assert event.violations() == []
    assert event.change(total=14) == {"promotedUserIds": [1], "offeredUserIds": []}
    assert event.booked == {2: 2, 1: 12}


def test_with_parties_of_one_ticket_the_model_is_fifo():
    event = EventModel(total=2)
    answers = [event.book(user) for user in range(1, 6)]
    assert [a["status"] for a in answers] == ["booked"] * 2 + ["waitlisted"] * 3
    assert [a.get("position") for a in answers[2:]] == [1, 2, 3]
    assert event.cancel(1)["promotedUserIds"] == [3]
    assert event.cancel(2)["promotedUserId"] == 4
    assert event.change(total=3)["promotedUserIds"] == [5]
    assert all(data.get("overtookUserIds", []) == [] for _, _, data in event.journal)


def test_a_party_at_max_overtakes_blocks():
    event = EventModel(total=10, max_overtakes=2)
    event.book(1, 6)
    event.book(2, 5)
    assert event.book(3, 1)["status"] == "booked"
    assert event.book(4, 1)["status"] == "booked"
    assert line(event) == [(2, 5, 2)]
    assert event.book(5, 1) == {"status": "waitlisted", "position": 2, "tickets": 1}
    assert event.available == 2  # held for party 2
    assert event.violations() == []
    assert event.cancel(1, 4)["promotedUserIds"] == [2, 5]


def test_a_party_that_would_be_pushed_past_the_bound_blocks_within_one_walk():
    event = EventModel(total=10, max_overtakes=1)
    event.book(9, 10)
    for user, tickets in ((1, 4), (2, 1), (3, 1)):
        event.book(user, tickets)
    assert event.cancel(9, 2)["promotedUserIds"] == [2]
    assert line(event) == [(1, 4, 1), (3, 1, 0)]
    assert event.available == 1
    assert event.violations() == []


def test_a_shrinking_party_keeps_its_place_and_overtakes_and_may_now_be_served():
    event = EventModel(total=10)
    event.book(1, 6)
    event.book(2, 6)
    event.book(3, 1)
    event.book(4, 5)
    assert line(event) == [(2, 6, 1), (4, 5, 0)]
    answer = event.cancel(2, 2)
    assert answer == {
        "status": "left_waiting_list",
        "tickets": 2,
        "remainingTickets": 4,
        "position": 1,
        **went([], []),
    }
    assert line(event) == [(2, 4, 1), (4, 5, 0)]
    assert event.journal[-1] == (
        "waitlist.reduced",
        2,
        {"tickets": 2, "remainingTickets": 4, **went([], [])},
    )
    answer = event.cancel(2, 1)
    assert answer["position"] is None and answer["promotedUserIds"] == [2]
    assert event.booked[2] == 3
    assert line(event) == [(4, 5, 0)]


def test_a_blocker_that_leaves_lets_the_line_move():
    event = EventModel(total=4, max_overtakes=0)
    event.book(1, 2)
    event.book(2, 3)
    event.book(3, 2)
    answer = event.cancel(2)
    assert answer == {
        "status": "left_waiting_list",
        "tickets": 3,
        "remainingTickets": 0,
        **went([3], []),
    }


def test_a_partial_claim_books_some_and_frees_the_rest_to_the_line():
    event = EventModel(total=6, mode="offer")
    event.book(1, 6)
    event.book(2, 4)
    event.book(3, 2)
    assert event.cancel(1, 4)["offeredUserIds"] == [2]
    answer = event.claim(2, 2)
    assert answer == {
        "status": "booked",
        "tickets": 2,
        "releasedTickets": 2,
        "promotedUserIds": [],
        "offeredUserIds": [3],
    }
    assert event.booked == {1: 2, 2: 2} and event.offered == {3: 2}
    assert event.journal[-2:] == [
        ("offer.claimed", 2, {"tickets": 2, "releasedTickets": 2, **went([], [3])}),
        ("offer.created", 3, serving(2, [], "offer.claimed", 2)),
    ]
    assert refused(event.claim, 3, 3).problem == "too-many-tickets"
    assert event.claim(3) == {
        "status": "booked",
        "tickets": 2,
        "releasedTickets": 0,
        "promotedUserIds": [],
        "offeredUserIds": [],
    }


def test_offers_that_lapse_together_are_freed_together_then_allocated_once():
    event = EventModel(total=4, mode="offer")
    event.book(1, 4)
    for user, tickets in ((2, 2), (3, 2), (4, 4), (5, 2)):
        event.book(user, tickets)
    assert event.cancel(1)["offeredUserIds"] == [2, 3]
    event.time_passes()
    assert event.book(6, 1)["status"] == "waitlisted"  # settled first: 4 went to party 4
    assert event.offered == {4: 4}
    assert line(event) == [(5, 2, 0), (6, 1, 0)]
    assert event.journal[-4:] == [
        ("offer.expired", 2, {"tickets": 2, **went([], [4])}),
        ("offer.expired", 3, {"tickets": 2, **went([], [4])}),
        ("offer.created", 4, serving(4, [], "offer.expired", None)),
        ("waitlist.joined", 6, {"tickets": 1, "position": 2}),
    ]
    event.time_passes()
    assert refused(event.claim, 4).problem == "no-offer"  # lapsed before the claim
    assert event.offered == {5: 2, 6: 1}


def test_a_newcomer_books_even_in_offer_mode():
    event = EventModel(total=2, mode="offer")
    assert event.book(1, 2) == {"status": "booked", "tickets": 2}


# --- checkout holds (issue 21), on the model's clock ---


def test_a_booking_is_held_while_the_buyer_pays_then_claimed():
    event = EventModel(total=4, hold_ttl=600)
    assert event.book(1, 3) == {"status": "held", "tickets": 3, "holdExpiresAt": 600}
    assert event.journal == [("hold.created", 1, {"tickets": 3, "overtookUserIds": []})]
    assert event.user_state(1) == {"status": "held", "tickets": 3}
    status = event.status()
    assert status["heldTickets"] == 3 and status["holdTtlSeconds"] == 600
    assert status["availableTickets"] == 1  # booked + offered + held + available = total
    assert event.violations() == []
    event.advance(599.5)
    assert event.claim(1) == {
        "status": "booked",
        "tickets": 3,
        "releasedTickets": 0,
        "promotedUserIds": [],
        "offeredUserIds": [],
    }
    assert event.booked == {1: 3} and event.holds == {} and event.deadlines == {}
    claimed = {"tickets": 3, "releasedTickets": 0, **went([], [])}
    assert event.journal[-1] == ("hold.claimed", 1, claimed)
    assert event.violations() == []


def test_without_a_hold_ttl_a_booking_books_at_once_as_before():
    event = EventModel(total=2, mode="offer")
    assert event.book(1) == {"status": "booked", "tickets": 1}
    assert event.status()["holdTtlSeconds"] == 0 and event.status()["heldTickets"] == 0


def test_a_claim_of_fewer_books_those_and_frees_the_rest_to_a_waiting_party():
    event = EventModel(total=4, hold_ttl=600)  # auto mode: the waiting party is booked
    event.book(1, 4)
    assert event.book(2, 2) == {"status": "waitlisted", "position": 1, "tickets": 2}
    assert refused(event.claim, 1, 5).extra == {"userTickets": 4}
    assert event.claim(1, 2) == {
        "status": "booked",
        "tickets": 2,
        "releasedTickets": 2,
        "promotedUserIds": [2],
        "offeredUserIds": [],
    }
    assert event.booked == {1: 2, 2: 2} and event.holds == {}
    assert event.journal[-2:] == [
        ("hold.claimed", 1, {"tickets": 2, "releasedTickets": 2, **went([2], [])}),
        ("booking.promoted", 2, serving(2, [], "hold.claimed", 1)),
    ]
    assert event.violations() == []


def test_a_released_hold_goes_to_the_line_as_the_mode_says():
    event = EventModel(total=3, mode="offer", hold_ttl=600)
    event.book(1, 3)  # a buyer present holds in offer mode too
    event.book(2, 2)
    event.book(3, 1)
    assert refused(event.cancel, 1, 2).extra == {"userTickets": 3}  # released whole
    event.advance(10)
    assert event.cancel(1) == {
        "status": "released_hold",
        "tickets": 3,
        "remainingTickets": 0,
        **went([], [2, 3]),
    }
    assert event.holds == {} and event.offered == {2: 2, 3: 1}
    assert event.expires_at(2) == event.expires_at(3) == 3610  # offers, not holds
    assert event.journal[-3:] == [
        ("hold.released", 1, {"tickets": 3, "remainingTickets": 0, **went([], [2, 3])}),
        ("offer.created", 2, serving(2, [], "hold.released", 1)),
        ("offer.created", 3, serving(1, [], "hold.released", 1)),
    ]
    assert event.violations() == []


def test_a_hold_lapses_at_its_expiry_and_the_next_change_settles_it_first():
    event = EventModel(total=2, hold_ttl=60)
    event.book(1, 2)
    event.book(2, 1)
    event.advance(59)
    assert event.settle() == went([], []) and event.holds == {1: 2}
    event.advance(1)  # at its expiry: lapsed, but nothing happens until a change
    assert event.holds == {1: 2} and event.violations() == []
    assert refused(event.claim, 1).problem == "no-offer"  # settled first: gone
    assert event.journal[-2:] == [
        ("hold.expired", 1, {"tickets": 2, **went([2], [])}),
        ("booking.promoted", 2, serving(1, [], "hold.expired", 1)),
    ]
    assert event.booked == {2: 1} and event.available == 1 and event.violations() == []
    assert event.book(1, 1) == {"status": "held", "tickets": 1, "holdExpiresAt": 120}


def test_a_hold_and_an_offer_that_lapse_together_are_freed_together_then_allocated_once():
    event = EventModel(total=4, mode="offer", hold_ttl=60, offer_ttl=60)
    event.book(1, 2)  # held until 60
    event.book(2, 2)
    event.claim(2)
    for user, tickets in ((3, 2), (4, 3), (5, 1)):
        event.book(user, tickets)
    assert event.cancel(2)["offeredUserIds"] == [3]  # offered until 60
    event.advance(60)
    assert event.book(6, 1) == {"status": "waitlisted", "position": 1, "tickets": 1}
    assert event.offered == {4: 3, 5: 1} and event.holds == {}
    assert event.journal[-5:] == [
        ("hold.expired", 1, {"tickets": 2, **went([], [4, 5])}),  # line order: 1 before 3
        ("offer.expired", 3, {"tickets": 2, **went([], [4, 5])}),
        ("offer.created", 4, serving(3, [], "hold.expired", None)),  # the group's first
        ("offer.created", 5, serving(1, [], "hold.expired", None)),
        ("waitlist.joined", 6, {"tickets": 1, "position": 1}),
    ]
    assert event.violations() == []


def test_lapses_go_soonest_first_then_in_line_order():
    event = EventModel(total=3, mode="offer", offer_ttl=60)
    event.book(1, 3)
    event.book(2, 2)
    event.book(3, 1)
    assert event.cancel(1, 1)["offeredUserIds"] == [3]  # 2 does not fit, is passed over
    assert event.cancel(1, 2)["offeredUserIds"] == [2]  # made later, same expiry
    assert event.expires_at(2) == event.expires_at(3) == 60
    real_clock = copy.deepcopy(event)
    event.advance(60)
    event.settle()
    assert [user for _, user, _ in event.journal[-2:]] == [2, 3]  # line order breaks the tie
    # time_passes (the service's real clock: every change a later instant): order made.
    real_clock.time_passes()
    real_clock.settle()
    assert [user for _, user, _ in real_clock.journal[-2:]] == [3, 2]
    # Sooner first, whatever the line order.
    event = EventModel(total=3, mode="offer", offer_ttl=60)
    event.book(1, 3)
    event.book(2, 2)
    event.book(3, 1)
    event.cancel(1, 1)  # 3 offered until 60
    event.advance(10)
    event.cancel(1, 2)  # 2 offered until 70
    event.advance(60)  # both lapsed
    event.settle()
    assert [user for _, user, _ in event.journal[-2:]] == [3, 2]


def test_already_held_and_a_claim_with_sales_closed():
    event = EventModel(total=2, hold_ttl=300)
    event.book(1)
    event.advance(100)
    found = refused(event.book, 1, 2)
    assert (found.problem, found.extra) == ("already-held", {"holdExpiresAt": 300})
    assert refused(event.book, 1, 20).problem == "already-held"  # before too-many-tickets
    event.change(sales_open=False)
    assert refused(event.book, 1).problem == "sales-closed"  # first, as today
    assert event.claim(1)["status"] == "booked"  # a claim is no new booking


def test_capacity_cannot_go_below_booked_offered_and_held():
    event = EventModel(total=6, mode="offer", hold_ttl=60)
    event.book(1, 2)
    event.claim(1)
    event.book(2, 3)  # held
    event.book(3, 2)  # waits: 1 free
    assert event.cancel(1, 1)["offeredUserIds"] == [3]
    assert (sum(event.booked.values()), sum(event.offered.values()), event.available) == (1, 2, 0)
    found = refused(event.change, total=5)
    assert (found.problem, found.extra) == ("capacity-below-held", {"held": 6})
    event.cancel(2)
    assert event.change(total=3) == {"promotedUserIds": [], "offeredUserIds": []}
    assert event.status()["availableTickets"] == 0 and event.violations() == []


def test_changing_the_ttls_moves_no_expiry():
    event = EventModel(total=3, hold_ttl=60)
    event.book(1)
    assert event.change(hold_ttl=0, offer_ttl=30) == {"promotedUserIds": [], "offeredUserIds": []}
    updated = {"holdTtlSeconds": 0, "offerTtlSeconds": 30, "promotedUserIds": [],
               "offeredUserIds": []}  # fmt: skip
    assert event.journal[-1] == ("event.updated", None, updated)
    assert event.book(2) == {"status": "booked", "tickets": 1}  # holds off: booked at once
    assert event.expires_at(1) == 60 and event.holds == {1: 1}
    assert refused(event.change, hold_ttl=86_401).status == 400
    assert refused(event.change, offer_ttl=0).status == 400


def test_the_replay_takes_lapses_settled_apart_apart():
    """Two groups side by side in the journal (the first settled by a change that wrote no
    fact of its own): the replay tells them apart by their outcome."""
    event = EventModel(total=3, hold_ttl=30)
    first = created(event)
    event.book(1, 1)  # held until 30
    event.advance(10)
    event.book(2, 2)  # held until 40
    event.book(3, 2)  # waits
    event.advance(20)
    event.settle()  # 1 lapses: 1 free, 3 does not fit
    event.advance(10)
    event.settle()  # 2 lapses: 3 free, 3 is served
    assert event.journal[-3:] == [
        ("hold.expired", 1, {"tickets": 1, **went([], [])}),
        ("hold.expired", 2, {"tickets": 2, **went([3], [])}),
        ("booking.promoted", 3, serving(2, [], "hold.expired", 2)),
    ]
    assert model_violations({7: [first, *event.journal]}) == []
    told = copy.deepcopy(event.journal)
    told[-1][2]["causeUserId"] = None  # as if they had lapsed together
    assert model_violations({7: [first, *told]})[0].startswith("event 7: facts ")
    timed = [(t, u, {**d, "expiresAt": "2030-01-01T00:00:00Z"}) for t, u, d in event.journal]
    assert model_violations({7: [first, *timed]}) == []  # the service's times are not compared


# --- a scheduled on-sale (issue 22), on the model's clock ---


def opened(at, parties, tickets, booked=0, held=0, waitlisted=0) -> tuple:
    """A sale.opened fact."""
    return ("sale.opened", None, {
        "salesOpenAt": at, "queuedParties": parties, "queuedTickets": tickets,
        "booked": booked, "held": held, "waitlisted": waitlisted})  # fmt: skip


def test_bookings_queue_until_the_opening_which_serves_them_in_the_order_given():
    event = EventModel.initialize(3, sales_open_at=100)
    first = created(event)
    assert (event.queueing, event.sales_open) == (True, False)
    assert event.book(1, 2) == {"status": "queued", "tickets": 2, "salesOpenAt": 100}
    event.book(2, 2)
    event.book(3, 1)
    found = refused(event.book, 1, 3)
    assert found.problem == "already-queued"
    assert found.extra == {"userTickets": 2, "salesOpenAt": 100}
    assert event.journal[0] == ("queue.joined", 1, {"tickets": 2, "salesOpenAt": 100})
    status = event.status()
    assert (status["salesOpen"], status["queueing"], status["queuedCount"]) == (False, True, 3)
    assert (status["queuedTickets"], status["availableTickets"]) == (5, 3)
    assert event.user_state(2) == {"status": "queued", "tickets": 2}
    event.advance(100)  # its hour: reads still show it queueing, until a change
    assert event.status()["queueing"] and event.user_state(2)["status"] == "queued"
    assert event.violations() == []
    event.next_order = [2, 1, 3]  # the service's is random: the tests give the model its own
    assert event.book(4) == {"status": "waitlisted", "position": 2, "tickets": 1}
    assert event.journal[-5:] == [
        opened(100, 3, 5, booked=2, waitlisted=1),
        ("booking.booked", 2, {"tickets": 2, "overtookUserIds": [], "fromQueue": True}),
        ("waitlist.joined", 1, {"tickets": 2, "position": 1, "fromQueue": True}),
        ("booking.booked", 3, {"tickets": 1, "overtookUserIds": [1], "fromQueue": True}),
        ("waitlist.joined", 4, {"tickets": 1, "position": 2}),  # after every queued party
    ]
    assert event.booked == {2: 2, 3: 1} and line(event) == [(1, 2, 1), (4, 1, 0)]
    assert (event.sales_open, event.queueing, event.queue, event.next_order) == (
        True, False, {}, None)  # fmt: skip
    assert event.violations() == []
    assert model_violations({1: [first, *event.journal]}) == []
    # Another order gives other facts: the replay takes the order from the journal.
    other = EventModel.initialize(3, sales_open_at=100)
    for user, tickets in ((1, 2), (2, 2), (3, 1)):
        other.book(user, tickets)
    other.advance(100)
    other.settle()
    assert [user for _, user, data in other.journal if data.get("fromQueue")] == [1, 2, 3]
    assert other.booked == {1: 2, 3: 1}
    assert model_violations({1: [first, *other.journal]}) == []


def test_a_queued_party_leaves_or_shrinks_and_cannot_claim():
    event = EventModel.initialize(2, sales_open_at=60, max_tickets_per_booking=4)
    event.book(1, 3)
    event.book(2, 1)
    assert refused(event.book, 3, 5).problem == "too-many-tickets"
    assert refused(event.claim, 1).problem == "no-offer"
    assert refused(event.cancel, 1, 4).extra == {"userTickets": 3}
    assert event.cancel(1, 2) == {"status": "left_queue", "tickets": 2, "remainingTickets": 1,
                                  **went([], [])}  # fmt: skip
    assert event.cancel(2) == {"status": "left_queue", "tickets": 1, "remainingTickets": 0,
                               **went([], [])}  # fmt: skip
    assert event.journal[-2:] == [
        ("queue.reduced", 1, {"tickets": 2, "remainingTickets": 1}),
        ("queue.left", 2, {"tickets": 1, "remainingTickets": 0}),
    ]
    assert event.queue == {1: 1} and refused(event.cancel, 2).status == 404
    assert event.book(2, 2)["status"] == "queued"  # it may queue again
    event.advance(60)
    found = refused(event.book, 1)  # a refused change opens the sale first
    assert (found.problem, event.booked) == ("already-booked", {1: 1})
    assert event.journal[-3][0] == "sale.opened" and event.violations() == []


def test_the_opening_serves_each_as_a_booking_now_held_when_the_event_holds():
    event = EventModel.initialize(3, sales_open_at=50, hold_ttl=30, mode="offer")
    for user in (1, 2, 3, 4):
        event.book(user)
    event.advance(60)
    event.next_order = [4, 2, 1, 3]
    event.settle()  # the worker's empty change
    assert list(event.holds) == [4, 2, 1] and line(event) == [(3, 1, 0)]
    assert event.expires_at(1) == 90  # held from the opening on, by the clock
    assert event.journal[-5:] == [
        opened(50, 4, 4, held=3, waitlisted=1),
        *[
            ("hold.created", user, {"tickets": 1, "overtookUserIds": [], "fromQueue": True})
            for user in (4, 2, 1)
        ],
        ("waitlist.joined", 3, {"tickets": 1, "position": 1, "fromQueue": True}),
    ]
    event.advance(30)  # the holds lapse; in offer mode the line is offered what they free
    event.settle()
    assert event.offered == {3: 1} and event.holds == {} and event.violations() == []


def test_patch_schedules_opens_refuses_or_notes_sales_open_at():
    event = EventModel(total=2)
    event.book(1)
    # Ahead, on an open event: from then on bookings queue.
    assert event.change(sales_open_at=100) == {"promotedUserIds": [], "offeredUserIds": []}
    assert event.journal[-1] == ("event.updated", None, {
        "salesOpenAt": 100, "queueing": True, "salesOpen": False, "promotedUserIds": [],
        "offeredUserIds": []})  # fmt: skip
    assert event.book(2)["status"] == "queued"
    found = refused(event.change, sales_open=True, sales_open_at=150)  # open now and later?
    assert (found.problem, found.extra) == ("queueing", {"salesOpenAt": 150})
    for closing in ({}, {"sales_open_at": 0}):  # closing while queueing, passed or not
        found = refused(event.change, sales_open=False, **closing)
        assert (found.problem, found.extra) == ("queueing", {"salesOpenAt": 100})
    event.change(sales_open=False, sales_open_at=150)  # closed until then: a schedule
    assert event.journal[-1][2] == {"salesOpen": False, "salesOpenAt": 150, "queueing": True,
                                    "promotedUserIds": [], "offeredUserIds": []}  # fmt: skip
    event.change(sales_open_at=200)  # moved: still queueing
    assert event.queueing and event.sales_open_at == 200
    assert event.change(max_overtakes=1)["promotedUserIds"] == []  # other settings as usual
    assert event.queueing
    # salesOpen true opens now; salesOpenAt becomes the clock's reading.
    event.advance(10)
    event.change(sales_open=True)
    updated = {"salesOpen": True, "queueing": False, "salesOpenAt": 10, "promotedUserIds": [],
               "offeredUserIds": []}  # fmt: skip
    assert event.journal[-3:] == [
        ("event.updated", None, updated),
        opened(10, 1, 1, booked=1),
        ("booking.booked", 2, {"tickets": 1, "overtookUserIds": [], "fromQueue": True}),
    ]
    # A time passed on a queueing event opens it, stored as given; with salesOpen true too.
    event.change(sales_open_at=50)
    event.book(3)
    event.change(sales_open_at=5)
    assert event.journal[-2] == opened(5, 1, 1, waitlisted=1) and event.sales_open
    event.change(sales_open_at=50)
    event.change(sales_open_at=7, sales_open=True)
    assert event.journal[-1] == opened(7, 0, 0) and event.sales_open
    # Passed on an event not queueing: only noted; salesOpen false closes as before.
    event.change(sales_open=False, sales_open_at=2)
    event.change(sales_open_at=1)
    assert event.journal[-1] == ("event.updated", None, {
        "salesOpenAt": 1, "promotedUserIds": [], "offeredUserIds": []})  # fmt: skip
    assert (event.sales_open, event.queueing, event.sales_open_at) == (False, False, 1)
    assert refused(event.book, 4).problem == "sales-closed"
    assert event.violations() == []


def test_a_patch_that_opens_allocates_its_own_change_first():
    """PATCH {totalTickets, salesOpen: true}: the new tickets go to those waiting (the
    PATCH's answer says so), then the queued parties meet a settled event."""
    event = EventModel(total=1, max_overtakes=0)
    event.book(1)
    event.book(2, 2)  # waits
    event.change(sales_open_at=100)
    event.book(3)
    assert event.change(total=4, sales_open=True) == {"promotedUserIds": [2],
                                                      "offeredUserIds": []}  # fmt: skip
    assert [fact[:2] for fact in event.journal[-4:]] == [
        ("event.updated", None), ("booking.promoted", 2), ("sale.opened", None),
        ("booking.booked", 3)]  # fmt: skip
    assert event.journal[-3][2]["cause"] == "event.updated"
    assert event.violations() == []


def test_the_opening_order_must_be_the_queued_parties():
    event = EventModel.initialize(2, sales_open_at=10)
    event.book(1)
    event.book(2)
    event.advance(10)
    for order in ([1], [1, 2, 3], [1, 1]):
        with pytest.raises(ValueError):
            copy.deepcopy(event).open(order)
    event.next_order = [2, 1]
    event.settle()
    journal = [created(EventModel.initialize(2, sales_open_at=10)), *event.journal]
    assert model_violations({3: journal}) == []
    swapped = copy.deepcopy(journal)
    swapped[-1], swapped[-2] = swapped[-2], swapped[-1]  # the facts follow the order given
    assert model_violations({3: swapped}) == []
    swapped[-1][2]["tickets"] = 2  # a party served with other tickets than it queued
    assert model_violations({3: swapped})[0].startswith("event 3: facts ")
    served = [fact for fact in journal if fact[2].get("fromQueue")]
    # Served from the queue without an opening: no change of its own.
    assert model_violations({3: [*journal[:3], *served]})[0].startswith("event 3: fact 3 ")


def test_violations_name_a_broken_queue():
    def broken(**state) -> list[str]:
        return [found.split(":")[0] for found in EventModel(**state).violations()]

    assert broken(total=2, queue={1: 1}) == ["a queue only while queueing"]
    assert broken(total=2, queueing=True, sales_open_at=5, queue={1: 1}) == [
        "queueing, so sales closed until salesOpenAt"
    ]
    fine = {"queueing": True, "sales_open": False, "sales_open_at": 5}
    assert broken(total=2, queue={1: 1}, **fine) == []
    assert broken(total=2, queue={1: 1}, booked={1: 1}, **fine) == [
        "one state per user, whole parties"
    ]
    assert broken(total=2, queue={1: 0}, **fine) == ["one state per user, whole parties"]
    assert broken(total=2, now=5, queue={1: 1}, **fine) == ["no opening left due after a change"]
    assert broken(total=2, now=5, settled=False, **fine) == []


# --- refusals ---


def test_book_refusals_in_order():
    event = EventModel(total=2, max_tickets_per_booking=3)
    event.book(1, 2)
    event.book(2, 1)
    assert refused(event.book, 3, 4).extra == {"maxTicketsPerBooking": 3, "totalTickets": 2}
    assert refused(event.book, 1).problem == "already-booked"
    found = refused(event.book, 2, 5)
    assert (found.problem, found.extra) == ("already-waiting", {"position": 1})
    event.change(sales_open=False)
    assert refused(event.book, 1).problem == "sales-closed"  # first, as today
    assert refused(event.book, 3, 0).status == 400


def test_cancel_and_claim_refusals():
    event = EventModel(total=3, mode="offer")
    event.book(1, 2)
    event.book(2, 2)
    assert refused(event.cancel, 1, 3).extra == {"userTickets": 2}
    assert refused(event.cancel, 2, 3).problem == "too-many-tickets"
    assert refused(event.cancel, 9).status == 404
    assert refused(event.claim, 2).problem == "no-offer"
    event.cancel(1, 1)
    assert refused(event.book, 2).problem == "already-offered"
    assert refused(event.cancel, 2, 1).problem == "too-many-tickets"  # declined whole
    assert event.cancel(2)["status"] == "declined_offer"
    found = refused(event.change, total=0)
    assert (found.problem, found.extra) == ("capacity-below-held", {"held": 1})


def test_a_lowered_bound_keeps_counts_and_blocks():
    event = EventModel(total=4)
    event.book(1, 2)
    event.book(2, 3)
    event.book(3, 1)
    event.change(max_overtakes=0)
    assert line(event) == [(2, 3, 1)] and event.violations() == []
    assert event.book(4, 1)["status"] == "waitlisted"
    updated = {"maxOvertakes": 0, "promotedUserIds": [], "offeredUserIds": []}
    assert event.journal[-2] == ("event.updated", None, updated)


def test_a_refused_change_still_settles_what_lapsed():
    event = EventModel(total=2, hold_ttl=30)
    event.book(1, 2)
    event.book(2, 2)
    event.book(3, 1)
    event.advance(30)
    assert refused(event.book, 3).problem == "already-waiting"  # after the settle
    assert event.journal[-2:] == [
        ("hold.expired", 1, {"tickets": 2, **went([2], [])}),
        ("booking.promoted", 2, serving(2, [], "hold.expired", 1)),
    ]
    event.advance(1000)
    assert refused(event.book, 3, 0).status == 400  # nothing settles before a 400
    assert event.settled is False and event.violations() == []


# --- random programs ---

USERS = st.integers(1, 12)
SIZES = st.sampled_from([1, 1, 1, 1, 2, 2, 3, 4, 5, 6])  # many small parties, some large
KINDS = ["book"] * 10 + ["cancel"] * 4 + ["claim"] * 4 + ["biggest_cancels"] * 2
KINDS += ["advance"] * 3 + ["time_passes", "settle"]
KINDS += ["total", "max_overtakes", "max_tickets_per_booking", "mode", "sales_open"]
KINDS += ["hold_ttl", "offer_ttl"]
CHANGES = {
    "total": st.integers(0, 10),
    "max_overtakes": st.integers(0, 3),
    "max_tickets_per_booking": st.integers(1, 6),
    "mode": st.sampled_from(["auto", "offer"]),
    "sales_open": st.sampled_from([True, True, False]),
    "hold_ttl": st.sampled_from([0, 30, 60]),
    "offer_ttl": st.sampled_from([30, 60]),
}
KINDS += ["schedule"] * 2  # salesOpenAt: ahead (re)schedules, not ahead opens or is noted
KINDS += ["schedule_and_sales_open"]  # both sent: refused, scheduled, opened or noted
CHANGING = ("book", "cancel", "claim", "settle", "sales_open_at", "schedule_and_sales_open",
            *CHANGES)  # fmt: skip
# A salesOpenAt sent, in seconds from the clock's now: passed, now (not ahead), or ahead.
FROM_NOW = st.sampled_from([-1, 0, 10, 30, 45, 60])
# Seconds the clock moves: often to an expiry exactly (TTLs of 30 and 60), so lapses tie.
SECONDS = st.sampled_from([0, 0.5, 10, 29.5, 30, 30, 60])
EVENTS = st.builds(
    EventModel,
    total=st.integers(0, 8),
    mode=st.sampled_from(["auto", "offer"]),
    max_tickets_per_booking=st.integers(3, 6),
    max_overtakes=st.integers(0, 3),
    hold_ttl=st.sampled_from([0, 30, 60, 60]),
    offer_ttl=st.sampled_from([30, 60, 60, 3600]),
)
# Events of all those settings, a third created with an on-sale ahead (queueing).
SCHEDULED = st.builds(
    EventModel.initialize,
    total=st.integers(0, 8),
    mode=st.sampled_from(["auto", "offer"]),
    max_tickets_per_booking=st.integers(3, 6),
    max_overtakes=st.integers(0, 3),
    hold_ttl=st.sampled_from([0, 30, 60, 60]),
    offer_ttl=st.sampled_from([30, 60, 60, 3600]),
    sales_open_at=st.sampled_from([None, None, None, None, 10, 30, 60]),
)


def steps(data, event: EventModel, sizes=SIZES):
    """A random program, drawn a step at a time: mostly books, then cancels and claims by
    users who hold something there, of all or part of it (or one ticket too many), and the
    clock moving. What lapsed is not settled between steps: the next step's change does it
    (so its user may have lost what they held)."""
    for _ in range(data.draw(st.integers(1, 60))):
        kind = data.draw(st.sampled_from(KINDS))
        out = [*event.offered, *event.holds]
        if kind == "time_passes":  # all (None) or some, so that some lapse together
            yield kind, None, data.draw(st.none() | st.lists(st.sampled_from([*out, 0])))
            continue
        if kind in ("advance", "settle"):
            yield kind, None, data.draw(SECONDS) if kind == "advance" else None
            continue
        if kind in CHANGES:
            yield kind, None, data.draw(CHANGES[kind])
            continue
        if kind == "schedule":
            yield "sales_open_at", None, event.now + data.draw(FROM_NOW)
            continue
        if kind == "schedule_and_sales_open":
            yield kind, None, (event.now + data.draw(FROM_NOW), data.draw(st.booleans()))
            continue
        if kind == "biggest_cancels" and event.booked:  # walks that serve several at once
            user = max(event.booked, key=event.booked.get)
            yield "cancel", user, data.draw(st.integers(1, event.booked[user]))
            continue
        if (kind == "claim" and not out) or kind == "biggest_cancels":
            kind = "cancel"
        if kind == "book":
            yield kind, data.draw(USERS), data.draw(sizes)
            continue
        holders = out if kind == "claim" else event_users(event)
        known = holders and data.draw(st.integers(0, 4))  # mostly someone who holds something
        user = data.draw(st.sampled_from(holders) if known else USERS)
        have = event.user_state(user).get("tickets", 1)
        yield kind, user, data.draw(st.none() | st.integers(1, have + 1))


def event_users(event: EventModel) -> list[int]:
    return [*event.booked, *event.offered, *event.holds, *(p.user for p in event.line),
            *event.queue]  # fmt: skip


def run(event: EventModel, kind, user, number) -> None:
    if kind in ("book", "cancel", "claim"):
        getattr(event, kind)(user, number)
    elif kind == "time_passes":
        event.time_passes(number)
    elif kind == "advance":
        event.advance(number)
    elif kind == "settle":
        event.settle()
    elif kind == "schedule_and_sales_open":
        event.change(sales_open_at=number[0], sales_open=number[1])
    else:
        event.change(**{kind: number})


def created(event: EventModel) -> tuple:
    """The event.created fact of a new event, as the service writes it (less its name)."""
    return ("event.created", None, {
        "totalTickets": event.total, "waitlistMode": event.mode,
        "maxTicketsPerBooking": event.max_tickets_per_booking,
        "maxOvertakes": event.max_overtakes, "offerTtlSeconds": event.offer_ttl,
        "holdTtlSeconds": event.hold_ttl, **({} if event.sales_open_at is None else {
            "salesOpenAt": event.sales_open_at, "queueing": event.queueing})})  # fmt: skip


def check_passes(before: EventModel, after: EventModel, facts: list[tuple]) -> None:
    """Line order and bounded overtakes across one walk: each party served passed over
    exactly the parties still waiting ahead of it (but those larger than the event), none
    of them at the bound, and the counts grew by exactly that."""
    own = (*SERVED, "booking.booked", "hold.created")
    served = {user for type_, user, _ in facts if type_ in own}
    ahead = [p.user for p in before.line if after.party(p.user) or p.user in served]
    counts = {p.user: p.overtakes for p in before.line}
    for type_, user, data in facts:
        if type_ == "waitlist.joined":  # an opening's party in line: later ones pass it
            ahead.append(user)
            counts[user] = 0
        if type_ not in own:
            continue
        place = ahead.index(user) if user in ahead else len(ahead)  # else: a newcomer
        passed = [u for u in ahead[:place] if after.party(u).tickets <= after.total]
        assert data["overtookUserIds"] == passed, user
        for u in passed:
            assert counts[u] < after.max_overtakes, f"{u} passed over at the bound"
            counts[u] += 1
        if user in ahead:
            ahead.remove(user)
    assert [counts.get(p.user, 0) for p in after.line] == [p.overtakes for p in after.line]


def check_lapses(before: EventModel, facts: list[tuple]) -> None:
    """A settle frees what lapsed, and only that: each once, soonest first (the clock's;
    ties go by line order), after those time_passes marked."""
    expired = [user for type_, user, _ in facts if type_ in EXPIRED]
    clock = {u: before.deadlines[u] for u in [*before.offered, *before.holds]}
    marked = [u for u in expired if u in before.lapsed]
    timed = expired[len(marked) :]
    assert set(expired) == before.lapsed | {u for u, c in clock.items() if c.expires <= before.now}
    assert len(expired) == len(set(expired)) and not set(timed) & before.lapsed
    keys = [(clock[u].expires, clock[u].seq) for u in timed]
    assert keys == sorted(keys)
    for type_, user, _ in facts:
        if type_ in EXPIRED:
            assert type_ == ("offer.expired" if user in before.offered else "hold.expired")


@settings(max_examples=200, deadline=None, derandomize=True)
@given(event=SCHEDULED, data=st.data())
def test_random_programs_keep_every_invariant_and_replay(event, data):
    first = created(event)
    for step in steps(data, event):
        if event.queueing:  # should this step open the on-sale: a random order, as drawn
            event.next_order = data.draw(st.permutations(list(event.queue)))
        before = copy.deepcopy(event)
        settled = copy.deepcopy(event)  # what the step's change does first
        if step[0] in CHANGING:
            settled.settle()
            check_lapses(before, settled.journal[len(before.journal) :])
        try:
            run(event, *step)
        except ModelRefusal as refusal:
            assert event == (before if refusal.status == 400 else settled), "a refusal changed"
        assert event.violations() == [], step
        assert event.journal[: len(settled.journal)] == settled.journal
        check_passes(before, settled, settled.journal[len(before.journal) :])
        check_passes(settled, event, event.journal[len(settled.journal) :])
        rebuilt = replay(event.journal)
        assert list(rebuilt.booked.items()) == list(event.booked.items())
        assert list(rebuilt.offered.items()) == list(event.offered.items())
        assert list(rebuilt.holds.items()) == list(event.holds.items())
        assert rebuilt.entries() == event.entries()
        assert list(rebuilt.queue.items()) == list(event.queue.items())
        event.next_order = None
    # The journal, change by change through model_replay.py, is this model's journal.
    assert model_violations({1: [first, *event.journal]}) == []


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    event=EVENTS,
    parties=st.lists(SIZES, max_size=10),
    frees=st.lists(st.tuples(st.integers(1, 8), SIZES), min_size=1, max_size=4),
)
def test_freeing_tickets_before_a_random_line_keeps_every_invariant(event, parties, frees):
    """The walk, worked hard: a sold-out event, a line of parties of all sizes, then user 0
    gives back some tickets and a newcomer books, a few times."""
    event.max_tickets_per_booking = 10
    if event.total:
        event.book(0, event.total)
        if 0 in event.holds:  # a hold: user 0 pays, then gives tickets back bit by bit
            event.claim(0)
    for user, tickets in enumerate(parties, 1):
        event.book(user, tickets)
    for user, (given_back, tickets) in enumerate(frees, 100):
        given_back = min(given_back, event.booked.get(0, 1))
        for step in (("cancel", 0, given_back), ("book", user, tickets)):
            before = copy.deepcopy(event)
            with contextlib.suppress(ModelRefusal):
                run(event, *step)
            assert event.violations() == [], step
            check_passes(before, event, event.journal[len(before.journal) :])


@settings(max_examples=200, deadline=None, derandomize=True)
@given(event=SCHEDULED, data=st.data())
def test_with_one_ticket_parties_every_walk_serves_the_head_of_the_line(event, data):
    for step in steps(data, event, sizes=st.just(1)):
        waiting, seen = [p.user for p in event.line], len(event.journal)
        try:
            run(event, *step)
        except ModelRefusal:
            continue
        served = [user for type_, user, _ in event.journal[seen:] if type_ in SERVED]
        assert served == waiting[: len(served)]
        assert all(p.overtakes == 0 for p in event.line)
        assert not (event.line and event.available > 0)


def test_violations_name_what_is_broken():
    def broken(**state) -> list[str]:
        return [found.split(":")[0] for found in EventModel(**state).violations()]

    held = {"holds": {1: 2}, "deadlines": {1: Deadline(0, 60, 1, 1)}}
    assert broken(total=4, booked={1: 5}) == ["booked + offered + held + available = total"]
    assert broken(total=4, booked={2: 3}, **held) == ["booked + offered + held + available = total"]
    assert broken(total=4, booked={1: 4}, line=[Party(1, 1)]) == [
        "one state per user, whole parties"
    ]
    assert broken(total=4, booked={1: 1}, **held) == ["one state per user, whole parties"]
    assert broken(total=4, booked={1: 4}, line=[Party(2, 1, overtakes=4)]) == ["bounded overtakes"]
    assert broken(total=4, booked={1: 2}, line=[Party(2, 1)]) == ["no idle fit"]
    giant = Party(2, 9, overtakes=3)
    assert broken(total=4, line=[giant, Party(3, 1)]) == ["no live-lock"]
    assert broken(total=4, booked={1: 2}, line=[Party(2, 3, overtakes=3), Party(3, 1)]) == []
    assert broken(total=4, **held) == []
    assert broken(total=4, holds={1: 2}) == ["expiry after creation"]  # no expiry at all
    stale = {1: Deadline(0, 60, 1, 1), 2: Deadline(0, 60, 2, 2)}
    assert broken(total=4, holds={1: 2}, deadlines=stale) == ["expiry after creation"]
    at_once = {1: Deadline(60, 60, 1, 1)}
    assert broken(total=4, now=60, holds={1: 2}, deadlines=at_once, settled=False) == [
        "expiry after creation"
    ]
    assert broken(total=4, now=60, **held) == ["nothing lapsed unsettled after a change"]
    assert broken(total=4, now=60, settled=False, **held) == []  # the clock moved: not yet
    assert broken(total=4, offered={1: 2}, lapsed={1}) == [
        "expiry after creation",
        "nothing lapsed unsettled after a change",
    ]
