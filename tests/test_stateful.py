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
"""

from datetime import timedelta

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
    clock = app.extensions["booking"].clock
    database_url = settings["SQLALCHEMY_DATABASE_URI"]

    class BookingMachine(RuleBasedStateMachine):
        @initialize(
            events=st.lists(st.tuples(TOTALS, MODES, LIMITS, HOLD_TTLS), min_size=1, max_size=3)
        )
        def fresh_database(self, events):
            wipe(database_url)
            self.events: dict[int, EventModel] = {}
            self.names: dict[int, str] = {}
            self.keyed: list[tuple] = []  # (path, body, key, status, body bytes) answered
            for total, mode, limit, hold_ttl in events:
                self.create(total, mode, limit, hold_ttl)

        def pick(self, data) -> int:
            return data.draw(st.sampled_from(sorted(self.events)))

        def create(self, total, mode, limit, hold_ttl):
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
            response = client.post("/api/events/initialize", json=body, headers=admin)
            assert response.status_code == 201
            event_id = response.json["eventId"]
            model = self.events[event_id] = EventModel(
                total,
                mode,
                max_tickets_per_booking=3,
                max_overtakes=limit,
                hold_ttl=hold_ttl,
                offer_ttl=OFFER_TTL,
            )
            self.names[event_id] = name
            model.record("event.created", None, **body)

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
            model = self.events[event_id]
            try:
                answer = (
                    getattr(model, path)(user, tickets) if tickets else getattr(model, path)(user)
                )
            except ModelRefusal as refusal:
                assert response.status_code == refusal.status, (path, user, tickets, response.json)
                assert response.json["type"] == f"urn:booking:problem:{refusal.problem}"
                for name, value in untimed(refusal.extra).items():
                    assert response.json[name] == value, (name, response.json)
                return
            expected = {"eventId": event_id, "userId": user, **untimed(answer)}
            if expected.get("position") is None:
                expected.pop("position", None)
            assert response.status_code == (200 if path == "cancel" else 201), response.json
            assert untimed(response.json) == expected, (path, user, tickets)
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
            user = data.draw(st.sampled_from([*model.offered, *model.holds, user]))
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
            lambda self: any(e.offered or e.holds for e in getattr(self, "events", {}).values())
        )
        @rule(seconds=STEPS)
        def time_passes(self, seconds):
            """The database's clock, as the service reads it, and the model's move on."""
            clock.offset += timedelta(seconds=seconds)
            for model in self.events.values():
                model.advance(seconds)

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
            self.events[body["eventId"]].settle()
            assert (response.status_code, response.data) == (status, answer)
            assert response.headers["Idempotent-Replayed"] == "true"

        def patch(self, data, **change):
            """An admin's change; the answer must be the model's."""
            event_id = self.pick(data)
            names = {"total": "totalTickets", "max_overtakes": "maxOvertakes",
                     "max_tickets_per_booking": "maxTicketsPerBooking", "mode": "waitlistMode",
                     "sales_open": "salesOpen", "hold_ttl": "holdTtlSeconds"}  # fmt: skip
            body = {names[name]: value for name, value in change.items()}
            response = client.patch(f"/api/events/{event_id}", json=body, headers=admin)
            model = self.events[event_id]
            try:
                went = model.change(**change)
            except ModelRefusal as refusal:
                assert response.status_code == refusal.status
                assert response.json["type"].endswith(refusal.problem)
                assert response.json.get("held") == refusal.extra.get("held")
                return
            assert response.status_code == 200, response.json
            assert response.json["promotedUserIds"] == went["promotedUserIds"]
            assert response.json["offeredUserIds"] == went["offeredUserIds"]
            for name, value in body.items():
                assert response.json[name] == value

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
                told.append((e["type"], e["userId"], data))
            return told

        @invariant()
        def every_event_matches_the_model(self):
            for event_id, model in getattr(self, "events", {}).items():
                status = client.get(f"/api/events/status/{event_id}").json
                assert status == {
                    "eventId": event_id,
                    "eventName": self.names[event_id],
                    "offerTtlSeconds": OFFER_TTL,
                    **model.status(),
                }
                line = client.get(f"/api/events/{event_id}/waiting-list", headers=admin).json
                assert line["entries"] == model.entries()
                assert self.history(event_id) == model.journal
                # The model's own invariants, so a wrong model cannot pass silently.
                assert model.violations() == []

        def teardown(self):
            if getattr(self, "events", None):
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
