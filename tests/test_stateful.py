"""A Hypothesis state machine drives the API against the reference model (tests/model.py).

Every answer is compared with what the model, run one change at a time in commit order,
says it must be; after every step each event's status, line (with tickets and
overtakes), journal (the admin history) and the invariants are checked against it.
Parties of 1-3 tickets, partial cancels, claims of fewer, capacity, maxOvertakes and
maxTicketsPerBooking changes, both waiting-list modes, keyed retries and group-commit
batches, checkout holds (claimed, released, lapsing). Time passes through the clock's
seam (booking/sales/clock.py), moved with the model's clock, never by sleeping: a step
moves both by whole thousands of seconds and expiries fall between them (holds last
1,500 s, offers 2,500 s), so the real seconds a run takes never decide a lapse. The next
change to an event must settle what lapsed first. Runs on SQLite and on MariaDB in both
lock modes, derandomized so CI replays the same programs.

Scheduled on-sales (issue 22) on the same clock: events created with a salesOpenAt
ahead (1,500 or 2,500 s) or passed (250 s ago), PATCH salesOpenAt ahead (alone or with
salesOpen) or passed (alone or with salesOpen), salesOpen true on a queueing event;
parties book (queue), cancel whole or part and claim while it queues; the clock passes
salesOpenAt and the next change, a refused one or the worker's empty change included,
opens it, while reads must still show it queueing. The opening's order is random: it is
read from the service's journal (the history route: the fromQueue facts after
sale.opened) and given to the model, which must then write exactly the facts the service
wrote. Model times are seconds from the service's clock at the start of the program: a
salesOpenAt sent is that instant plus its model time, a multiple of 250 s but never of
1,000 s as the clock's steps are (so the real seconds a run takes never decide whether
it is ahead), and the one the service stores from its own clock (salesOpen true) must
be within seconds of the model's. Only events a step changed have their journal
compared after it (all of them at the end).
"""

from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as run_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from booking import create_app
from booking.sales.domain import rfc3339

from .batches import send_as_batch
from .conftest import wipe
from .invariants import check_invariants
from .model import EventModel, ModelRefusal

USERS = st.integers(min_value=1, max_value=5)
TICKETS = st.one_of(st.none(), st.integers(min_value=1, max_value=3))
TOTALS = st.integers(min_value=0, max_value=4)
MODES = st.sampled_from(["auto", "offer"])
LIMITS = st.integers(min_value=0, max_value=2)
HOLD_TTLS = st.sampled_from([0, 1500])
OFFER_TTL = 2500
STEPS = st.sampled_from([1000, 2000, 3000])  # seconds the clock moves at once
EXPIRY_OF = {"offered": "offerExpiresAt", "held": "holdExpiresAt"}
EXPIRIES = tuple(EXPIRY_OF.values())
PATHS = st.sampled_from(["book", "cancel", "claim"])
UNKNOWN_EVENT = 9_000_000_000
# salesOpenAt, in seconds from the clock's now: ahead queues until then, passed is only
# noted (or opens a queueing event). Steps are whole thousands: none lands on one.
AHEAD = st.sampled_from([1500, 2500])
PASSED = -250
SCHEDULES = st.sampled_from([None, None, None, 1500, 2500, PASSED])  # at initialize
QUARTER = 250  # every salesOpenAt of a program is a whole number of these from its start
DRIFT = 120  # real seconds a program may take: the service's reading of its clock


def untimed(body: dict) -> dict:
    """The answer without its expiry times (the model counts seconds from 0)."""
    return {key: value for key, value in body.items() if key not in EXPIRIES}


@pytest.fixture
def app(settings):
    # A burst must commit as at most two batches in its order (tests/batches.py): on a
    # busy machine a batch could pass the 50 ms hold and leave the rest for a third.
    app = create_app({**settings, "BATCH_MAX_HOLD_MS": 60_000})
    yield app
    app.extensions["booking"].engine.dispose()


def test_the_api_follows_the_model(app, admin, settings):
    client = app.test_client()
    service = app.extensions["booking"]
    clock = service.clock
    used: set[int] = set()  # the event ids the programs created
    database_url = settings["SQLALCHEMY_DATABASE_URI"]

    class BookingMachine(RuleBasedStateMachine):
        @initialize(
            events=st.lists(
                st.tuples(TOTALS, MODES, LIMITS, HOLD_TTLS, SCHEDULES), min_size=1, max_size=3
            )
        )
        def fresh_database(self, events):
            wipe(database_url)
            # The rows went behind the service's back, and SQLite gives their ids out again:
            # this process's copies of those events' lines are of events that are gone.
            for event_id in used:
                service.waiting_lists.drop(event_id)
            self.events: dict[int, EventModel] = {}
            self.names: dict[int, str] = {}
            self.keyed: list[tuple] = []  # (path, body, key, status, body bytes) answered
            self.now = 0.0  # the models' clock
            self.touched: set[int] = set()  # events changed since the last check
            with service.engine.connect() as conn:  # model time 0, by the service's clock
                self.start = clock.now(conn).replace(microsecond=0)
            for total, mode, limit, hold_ttl, schedule in events:
                self.create(total, mode, limit, hold_ttl, schedule)

        def pick(self, data) -> int:
            return data.draw(st.sampled_from(sorted(self.events)))

        def stamp(self, seconds: float) -> str:
            """A model time as the salesOpenAt sent for it."""
            return rfc3339(self.start + timedelta(seconds=seconds))

        def when(self, sales_open_at: str) -> float:
            """A salesOpenAt the service answered, as the model's time: one sent (exactly
            its stamp) or the service's clock at an opening now (within DRIFT of the
            model's now, a whole thousand)."""
            at = datetime.fromisoformat(sales_open_at.replace("Z", "+00:00"))
            since = (at.replace(tzinfo=None) - self.start).total_seconds()
            seconds = round(since / QUARTER) * QUARTER
            if seconds % 1000:
                assert sales_open_at == self.stamp(seconds), (sales_open_at, seconds)
            else:
                assert -1 <= since - seconds < DRIFT, (sales_open_at, since, self.now)
            return seconds

        def timed(self, data: dict) -> dict:
            """An answer or fact with its salesOpenAt as the model's time."""
            if data.get("salesOpenAt") is None:
                return data
            return {**data, "salesOpenAt": self.when(data["salesOpenAt"])}

        def create(self, total, mode, limit, hold_ttl, schedule):
            name = f"event {len(self.events)}"
            body = {
                "eventName": name,
                "totalTickets": total,
                "waitlistMode": mode,
                "maxOvertakes": limit,
                "maxTicketsPerBooking": 3,
                "holdTtlSeconds": hold_ttl,
                "offerTtlSeconds": OFFER_TTL,
            }
            if schedule is not None:
                body["salesOpenAt"] = self.stamp(self.now + schedule)
            response = client.post("/api/events/initialize", json=body, headers=admin)
            assert response.status_code == 201
            event_id = response.json["eventId"]
            used.add(event_id)
            model = self.events[event_id] = EventModel.initialize(
                total,
                mode=mode,
                max_tickets_per_booking=3,
                max_overtakes=limit,
                hold_ttl=hold_ttl,
                offer_ttl=OFFER_TTL,
                sales_open_at=None if schedule is None else self.now + schedule,
                now=self.now,
            )
            self.names[event_id] = name
            if schedule is not None:
                body.update(salesOpenAt=model.sales_open_at, queueing=model.queueing)
            model.record("event.created", None, **body)
            assert self.timed(response.json) == {"eventId": event_id, "eventName": name,
                                                 "offerTtlSeconds": OFFER_TTL,
                                                 **model.status()}  # fmt: skip

        def model(self, event_id, opens=False) -> EventModel:
            """The event's model, about to take the change the service just answered: if
            that change may open the on-sale (it is due, or the change `opens` it), given
            the order the service's opening served the queue in (its journal's fromQueue
            facts after sale.opened)."""
            model = self.events[event_id]
            model.next_order = None
            self.touched.add(event_id)
            if model.queueing and (opens or model.opening_due()):
                told = self.history(event_id)
                start = next(
                    (i for i in range(len(model.journal), len(told))
                     if told[i][0] == "sale.opened"),
                    None,
                )  # fmt: skip
                if start is not None:
                    parties = told[start][2]["queuedParties"]
                    served = [user for _, user, data in told[start:] if data.get("fromQueue")]
                    model.next_order = served[:parties]
            return model

        def send(self, path, event_id, user, tickets=None, headers=None):
            body = {"userId": user, "eventId": event_id}
            if tickets is not None:
                body["tickets"] = tickets
            return client.post(f"/api/events/{path}", json=body, headers=headers)

        def expect(self, path, event_id, user, tickets, response):
            """The answer must be what the model answers to the same change."""
            if event_id == UNKNOWN_EVENT:
                assert response.status_code == 404
                return
            model = self.model(event_id)
            try:
                answer = (
                    getattr(model, path)(user, tickets) if tickets else getattr(model, path)(user)
                )
            except ModelRefusal as refusal:
                assert response.status_code == refusal.status, (path, user, tickets, response.json)
                assert response.json["type"] == f"urn:booking:problem:{refusal.problem}"
                for name, value in untimed(refusal.extra).items():
                    assert self.timed(response.json)[name] == value, (name, response.json)
                return
            expected = {"eventId": event_id, "userId": user, **untimed(answer)}
            if expected.get("position") is None:
                expected.pop("position", None)
            code = 200 if path == "cancel" else 202 if answer["status"] == "queued" else 201
            assert response.status_code == code, response.json
            assert self.timed(untimed(response.json)) == expected, (path, user, tickets)
            if "holdExpiresAt" in answer:
                assert response.json["holdExpiresAt"].endswith("Z")

        @rule(data=st.data(), parties=st.lists(st.tuples(USERS, TICKETS), min_size=1, max_size=3))
        def book(self, data, parties):
            # Several at a time, so lines form and cancellations free tickets for them.
            event_id = self.pick(data)
            for user, tickets in parties:
                response = self.send("book", event_id, user, tickets)
                self.expect("book", event_id, user, tickets, response)

        @rule(data=st.data(), user=USERS, tickets=TICKETS)
        def cancel(self, data, user, tickets):
            event_id = self.pick(data)
            response = self.send("cancel", event_id, user, tickets)
            self.expect("cancel", event_id, user, tickets, response)

        @rule(data=st.data(), user=USERS, tickets=TICKETS)
        def claim(self, data, user, tickets):
            event_id = self.pick(data)
            # Mostly someone who holds an offer or a hold, else anyone.
            model = self.events[event_id]
            user = data.draw(st.sampled_from([*model.offered, *model.holds, user, *model.queue]))
            response = self.send("claim", event_id, user, tickets)
            self.expect("claim", event_id, user, tickets, response)

        @rule(data=st.data(), sizes=st.lists(st.integers(1, 3), min_size=4, max_size=4))
        def a_sold_out_event_frees_tickets(self, data, sizes):
            """Parties book until a line forms, then the first booked gives some back: the
            freed tickets go to whoever of the line they fit (random programs rarely get
            this far alone)."""
            event_id = self.pick(data)
            for user, tickets in zip((1, 2, 3, 4), sizes, strict=True):
                self.expect(
                    "book", event_id, user, tickets, self.send("book", event_id, user, tickets)
                )
            model = self.events[event_id]
            if model.booked:
                user = min(model.booked)
                tickets = data.draw(st.integers(1, model.booked[user]))
                self.expect(
                    "cancel", event_id, user, tickets, self.send("cancel", event_id, user, tickets)
                )

        @precondition(
            lambda self: any(
                e.offered or e.holds or e.queueing for e in getattr(self, "events", {}).values()
            )
        )
        @rule(seconds=STEPS)
        def time_passes(self, seconds):
            """The database's clock, as the service reads it, and the model's move on."""
            clock.offset += timedelta(seconds=seconds)
            self.now += seconds
            for model in self.events.values():
                model.advance(seconds)

        @rule(data=st.data())
        def the_worker_settles_an_event(self, data):
            """The worker's empty change: lapses settle, a due on-sale opens."""
            event_id = self.pick(data)
            service.settle(event_id)
            self.model(event_id).settle()

        @rule(
            data=st.data(),
            calls=st.lists(st.tuples(PATHS, USERS, TICKETS), min_size=2, max_size=6),
        )
        def burst(self, data, calls):
            """Changes sent at once commit as group-commit batches; each answer must be
            what running them one at a time in their queue order gives."""
            events = st.sampled_from([*sorted(self.events), UNKNOWN_EVENT])
            calls = [(path, data.draw(events), user, tickets) for path, user, tickets in calls]
            for (path, event_id, user, tickets), response in zip(
                calls, send_as_batch(app, calls), strict=True
            ):
                self.expect(path, event_id, user, tickets, response)

        @rule(data=st.data(), user=USERS, path=PATHS, tickets=TICKETS)
        def keyed_change(self, data, user, path, tickets):
            event_id = self.pick(data)
            key = f"key-{len(self.keyed)}"
            response = self.send(path, event_id, user, tickets, {"Idempotency-Key": key})
            self.expect(path, event_id, user, tickets, response)
            body = {"userId": user, "eventId": event_id}
            if tickets is not None:
                body["tickets"] = tickets
            self.keyed.append((path, body, key, response.status_code, response.data))

        @precondition(lambda self: getattr(self, "keyed", None))
        @rule(data=st.data())
        def retry_a_keyed_change(self, data):
            """A retry gets the first answer again, byte for byte, and changes nothing
            (but it is a change that reaches its event: lapsed offers settle)."""
            path, body, key, status, answer = data.draw(st.sampled_from(self.keyed))
            response = client.post(
                f"/api/events/{path}", json=body, headers={"Idempotency-Key": key}
            )
            self.model(body["eventId"]).settle()
            assert (response.status_code, response.data) == (status, answer)
            assert response.headers["Idempotent-Replayed"] == "true"

        def patch(self, data, event_id=None, **change):
            """An admin's change; the answer must be the model's."""
            event_id = self.pick(data) if event_id is None else event_id
            change = {name: value for name, value in change.items() if value is not None}
            names = {"total": "totalTickets", "max_overtakes": "maxOvertakes",
                     "max_tickets_per_booking": "maxTicketsPerBooking", "mode": "waitlistMode",
                     "sales_open": "salesOpen", "hold_ttl": "holdTtlSeconds",
                     "sales_open_at": "salesOpenAt"}  # fmt: skip
            body = {names[name]: value for name, value in change.items()}
            if "sales_open_at" in change:
                body["salesOpenAt"] = self.stamp(change["sales_open_at"])
            response = client.patch(f"/api/events/{event_id}", json=body, headers=admin)
            at = change.get("sales_open_at")
            opens = change.get("sales_open") is True or (
                at is not None and not self.events[event_id].ahead(at)
            )
            model = self.model(event_id, opens=opens)
            try:
                went = model.change(**change)
            except ModelRefusal as refusal:
                assert response.status_code == refusal.status, (change, response.json)
                assert response.json["type"].endswith(refusal.problem)
                assert response.json.get("held") == refusal.extra.get("held")
                if "salesOpenAt" in refusal.extra:
                    assert self.when(response.json["salesOpenAt"]) == refusal.extra["salesOpenAt"]
                return
            assert response.status_code == 200, (change, response.json)
            assert response.json["promotedUserIds"] == went["promotedUserIds"]
            assert response.json["offeredUserIds"] == went["offeredUserIds"]
            for name, value in body.items():
                assert response.json[name] == value
            answered = {k: v for k, v in response.json.items() if not k.endswith("UserIds")}
            assert self.timed(answered) == {"eventId": event_id, "eventName": self.names[event_id],
                                            "offerTtlSeconds": OFFER_TTL,
                                            **model.status()}  # fmt: skip

        @rule(data=st.data(), total=st.integers(min_value=0, max_value=6))
        def change_capacity(self, data, total):
            self.patch(data, total=total)

        @rule(data=st.data(), limit=st.integers(min_value=0, max_value=3))
        def change_max_overtakes(self, data, limit):
            self.patch(data, max_overtakes=limit)

        @rule(data=st.data(), most=st.integers(min_value=1, max_value=3))
        def change_max_tickets_per_booking(self, data, most):
            self.patch(data, max_tickets_per_booking=most)

        @rule(data=st.data(), hold_ttl=HOLD_TTLS)
        def change_hold_ttl(self, data, hold_ttl):
            self.patch(data, hold_ttl=hold_ttl)

        @rule(data=st.data(), sales_open=st.booleans())
        def open_or_close_sales(self, data, sales_open):
            self.patch(data, sales_open=sales_open)

        @rule(data=st.data(), ahead=AHEAD, sales_open=st.sampled_from([None, None, False, True]))
        def schedule_an_on_sale(self, data, ahead, sales_open):
            """salesOpenAt ahead: bookings queue until then (an open event too); sent with
            salesOpen false the same, with salesOpen true 409 queueing."""
            self.patch(data, sales_open_at=self.now + ahead, sales_open=sales_open)

        @rule(data=st.data(), sales_open=st.sampled_from([None, None, False, True]))
        def a_passed_sales_open_at(self, data, sales_open):
            """salesOpenAt passed: a queueing event opens now (with salesOpen false: 409
            queueing), another only notes it."""
            self.patch(data, sales_open_at=self.now + PASSED, sales_open=sales_open)

        @precondition(lambda self: any(e.queueing for e in getattr(self, "events", {}).values()))
        @rule(data=st.data())
        def open_a_queueing_event_now(self, data):
            """PATCH salesOpen true on a queueing event: the opening, now."""
            queueing = sorted(event_id for event_id, e in self.events.items() if e.queueing)
            self.patch(data, event_id=data.draw(st.sampled_from(queueing)), sales_open=True)

        @rule(
            data=st.data(),
            parties=st.lists(st.tuples(USERS, TICKETS), min_size=2, max_size=5),
            opening=st.sampled_from(["change", "worker", "salesOpen", "salesOpenAt"]),
        )
        def an_on_sale_opens(self, data, parties, opening):
            """An on-sale scheduled, parties queued (one may leave or shrink), then opened:
            by the next change once the clock passed it (a booking: it comes after them
            all), by the worker's empty change, or early by PATCH (random programs rarely
            get this far alone)."""
            event_id = self.pick(data)
            self.patch(data, event_id=event_id, sales_open_at=self.now + 1500)
            for user, tickets in parties:
                self.expect(
                    "book", event_id, user, tickets, self.send("book", event_id, user, tickets)
                )
            model = self.events[event_id]
            if model.queue and data.draw(st.booleans()):
                user = data.draw(st.sampled_from(sorted(model.queue)))
                tickets = data.draw(st.none() | st.integers(1, model.queue[user]))
                self.expect(
                    "cancel", event_id, user, tickets, self.send("cancel", event_id, user, tickets)
                )
            if opening == "salesOpen":
                self.patch(data, event_id=event_id, sales_open=True)
            elif opening == "salesOpenAt":
                self.patch(data, event_id=event_id, sales_open_at=self.now + PASSED)
            else:
                self.time_passes(2000)
                assert self.timed(client.get(f"/api/events/status/{event_id}").json)["queueing"], (
                    "a read opened it"
                )
                if opening == "worker":
                    service.settle(event_id)
                    self.model(event_id).settle()
                else:
                    user = data.draw(USERS)
                    self.expect("book", event_id, user, 1, self.send("book", event_id, user, 1))

        @rule(data=st.data(), mode=MODES)
        def switch_mode(self, data, mode):
            """Tickets freed from now on follow the new mode; offers out stay valid."""
            self.patch(data, mode=mode)

        @rule(user=USERS)
        def a_user_sees_their_bookings(self, user):
            expected = []
            for event_id in sorted(self.events):
                state = self.events[event_id].user_state(user)
                if state["status"] != "none":
                    expected.append(
                        {"eventId": event_id, "eventName": self.names[event_id], **state}
                    )
            found, cursor = [], None
            while True:
                query = "?limit=1" + (f"&cursor={cursor}" if cursor else "")
                page = client.get(f"/api/users/{user}/bookings{query}").json
                found += page["bookings"]
                cursor = page["nextCursor"]
                if cursor is None:
                    break
            for booking in found:
                if booking["status"] in ("offered", "held"):
                    assert booking.pop(EXPIRY_OF[booking["status"]]).endswith("Z")
            assert found == expected

        @rule(user=USERS, path=PATHS)
        def an_unknown_event_is_404(self, user, path):
            assert self.send(path, UNKNOWN_EVENT, user).status_code == 404
            assert client.get(f"/api/events/{UNKNOWN_EVENT}/users/{user}").status_code == 404

        @rule(data=st.data(), user=USERS)
        def ask_about_a_user(self, data, user):
            event_id = self.pick(data)
            response = client.get(f"/api/events/{event_id}/users/{user}").json
            if response["status"] in ("offered", "held"):
                assert response.pop(EXPIRY_OF[response["status"]]).endswith("Z")
            state = self.events[event_id].user_state(user)
            assert response == {"eventId": event_id, "userId": user, **state}

        def history(self, event_id) -> list[tuple]:
            """The event's journal as the admin history route pages through it."""
            entries, cursor = [], None
            while True:
                query = "?limit=100" + (f"&cursor={cursor}" if cursor else "")
                page = client.get(f"/api/events/{event_id}/history{query}", headers=admin).json
                entries += page["entries"]
                if (cursor := page["nextCursor"]) is None:
                    break
            ids = [entry["entryId"] for entry in entries]
            assert ids == sorted(set(ids)), "entry ids must grow in commit order"
            told = []
            for e in entries:
                data = dict(e["data"])
                if e["type"] in ("offer.created", "offer.expired", "hold.created", "hold.expired"):
                    assert data.pop("expiresAt").endswith("Z")
                told.append((e["type"], e["userId"], self.timed(data)))
            return told

        @invariant()
        def every_event_matches_the_model(self):
            for event_id, model in getattr(self, "events", {}).items():
                status = self.timed(client.get(f"/api/events/status/{event_id}").json)
                assert status == {
                    "eventId": event_id,
                    "eventName": self.names[event_id],
                    "offerTtlSeconds": OFFER_TTL,
                    **model.status(),
                }
                line = client.get(f"/api/events/{event_id}/waiting-list", headers=admin).json
                assert line["entries"] == model.entries()
                if event_id in self.touched:  # the others' journals cannot have grown
                    assert self.history(event_id) == model.journal
                # The model's own invariants, so a wrong model cannot pass silently.
                assert model.violations() == []
            if hasattr(self, "touched"):
                self.touched.clear()

        def teardown(self):
            if getattr(self, "events", None):
                for event_id, model in self.events.items():  # nothing a read wrote either
                    assert self.history(event_id) == model.journal
                check_invariants(database_url)

    run_state_machine_as_test(
        BookingMachine,
        settings=run_settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
