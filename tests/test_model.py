"""The reference model of issue 20 on its own (no server, no database): the issue's worked
examples, the refusals, and random programs that must keep every invariant, replay from the
journal, and be plain FIFO when every party is one ticket (derandomized, as the other
Hypothesis tests, so CI replays the same programs)."""

import contextlib
import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .model import EventModel, ModelRefusal, Party

SERVED = ("booking.promoted", "offer.created")  # the facts of a waiting party served


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
    for type_, user, data in journal:
        for passed in event.line:
            passed.overtakes += passed.user in data.get("overtookUserIds", ())
        if type_ in ("booking.promoted", "offer.created"):
            event.line.remove(event.party(user))
        if type_ in ("booking.booked", "booking.promoted"):
            event.booked[user] = data["tickets"]
        elif type_ == "offer.created":
            event.offered[user] = data["tickets"]
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


# --- random programs ---

USERS = st.integers(1, 12)
SIZES = st.sampled_from([1, 1, 1, 1, 2, 2, 3, 4, 5, 6])  # many small parties, some large
KINDS = ["book"] * 10 + ["cancel"] * 4 + ["claim"] * 3 + ["biggest_cancels"] * 2 + ["time_passes"]
KINDS += ["total", "max_overtakes", "max_tickets_per_booking", "mode", "sales_open"]
CHANGES = {
    "total": st.integers(0, 10),
    "max_overtakes": st.integers(0, 3),
    "max_tickets_per_booking": st.integers(1, 6),
    "mode": st.sampled_from(["auto", "offer"]),
    "sales_open": st.sampled_from([True, True, False]),
}
EVENTS = st.builds(
    EventModel,
    total=st.integers(0, 8),
    mode=st.sampled_from(["auto", "offer"]),
    max_tickets_per_booking=st.integers(3, 6),
    max_overtakes=st.integers(0, 3),
)


def steps(data, event: EventModel, sizes=SIZES):
    """A random program, drawn a step at a time: mostly books, then cancels and claims by
    users who hold something there, of all or part of it (or one ticket too many)."""
    for _ in range(data.draw(st.integers(1, 60))):
        event.settle()  # what a change does first, so that a refusal then changes nothing
        kind = data.draw(st.sampled_from(KINDS))
        if kind == "time_passes":  # all the offers (None) or some, so that some lapse together
            yield kind, None, data.draw(st.none() | st.lists(st.sampled_from([*event.offered, 0])))
            continue
        if kind in CHANGES:
            yield kind, None, data.draw(CHANGES[kind])
            continue
        if kind == "biggest_cancels" and event.booked:  # walks that serve several at once
            user = max(event.booked, key=event.booked.get)
            yield "cancel", user, data.draw(st.integers(1, event.booked[user]))
            continue
        if (kind == "claim" and not event.offered) or kind == "biggest_cancels":
            kind = "cancel"
        if kind == "book":
            yield kind, data.draw(USERS), data.draw(sizes)
            continue
        holders = [*event.offered] if kind == "claim" else event_users(event)
        known = holders and data.draw(st.integers(0, 4))  # mostly someone who holds something
        user = data.draw(st.sampled_from(holders) if known else USERS)
        have = event.user_state(user).get("tickets", 1)
        yield kind, user, data.draw(st.none() | st.integers(1, have + 1))


def event_users(event: EventModel) -> list[int]:
    return [*event.booked, *event.offered, *(p.user for p in event.line)]


def run(event: EventModel, kind, user, number) -> None:
    if kind in ("book", "cancel", "claim"):
        getattr(event, kind)(user, number)
    elif kind == "time_passes":
        event.time_passes(number)
    else:
        event.change(**{kind: number})


def check_passes(before: EventModel, after: EventModel, facts: list[tuple]) -> None:
    """Line order and bounded overtakes across one step: each party served passed over
    exactly the parties still waiting ahead of it (but those larger than the event), none
    of them at the bound, and the counts grew by exactly that."""
    facts = [(user, data) for type_, user, data in facts if type_ in (*SERVED, "booking.booked")]
    ahead = [p.user for p in before.line if after.party(p.user) or p.user in dict(facts)]
    counts = {p.user: p.overtakes for p in before.line}
    for user, data in facts:
        place = ahead.index(user) if user in ahead else len(ahead)  # else: a newcomer
        passed = [u for u in ahead[:place] if after.party(u).tickets <= after.total]
        assert data["overtookUserIds"] == passed, user
        for u in passed:
            assert counts[u] < after.max_overtakes, f"{u} passed over at the bound"
            counts[u] += 1
        if user in ahead:
            ahead.remove(user)
    assert [counts.get(p.user, 0) for p in after.line] == [p.overtakes for p in after.line]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(event=EVENTS, data=st.data())
def test_random_programs_keep_every_invariant_and_replay(event, data):
    for step in steps(data, event):
        before = copy.deepcopy(event)
        try:
            run(event, *step)
        except ModelRefusal:
            assert event == before, "a refusal changed something"
        assert event.violations() == [], step
        check_passes(before, event, event.journal[len(before.journal) :])
        rebuilt = replay(event.journal)
        assert list(rebuilt.booked.items()) == list(event.booked.items())
        assert list(rebuilt.offered.items()) == list(event.offered.items())
        assert rebuilt.entries() == event.entries()


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
@given(event=EVENTS, data=st.data())
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

    assert broken(total=4, booked={1: 5}) == ["booked + offered + available = total"]
    assert broken(total=4, booked={1: 4}, line=[Party(1, 1)]) == ["whole parties"]
    assert broken(total=4, booked={1: 4}, line=[Party(2, 1, overtakes=4)]) == ["bounded overtakes"]
    assert broken(total=4, booked={1: 2}, line=[Party(2, 1)]) == ["no idle fit"]
    giant = Party(2, 9, overtakes=3)
    assert broken(total=4, line=[giant, Party(3, 1)]) == ["no live-lock"]
    assert broken(total=4, booked={1: 2}, line=[Party(2, 3, overtakes=3), Party(3, 1)]) == []
