"""A Hypothesis state machine drives the API against a plain Python model of the rules.

Every response is compared with what the model says it must be, and after every
step each event's status, line, journal (the admin history) and the invariants
are checked. Runs on SQLite and
on MariaDB, derandomized so CI replays the same programs.
"""

from dataclasses import dataclass, field

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

from .batches import send_as_batch
from .conftest import wipe

USERS = st.integers(min_value=1, max_value=4)
TOTALS = st.integers(min_value=0, max_value=2)
PATHS = st.sampled_from(["book", "cancel"])
UNKNOWN_EVENT = 9_000_000_000
AUTO_MODE = {"waitlistMode": "auto", "offerTtlSeconds": 3600}


@dataclass
class ModelEvent:
    name: str
    total: int
    booked: set[int] = field(default_factory=set)
    line: list[int] = field(default_factory=list)
    sales_open: bool = True
    # What the journal must say, in commit order: (type, userId, data).
    journal: list[tuple] = field(default_factory=list)

    @property
    def available(self) -> int:
        return self.total - len(self.booked)


def test_the_api_follows_the_model(app, admin, settings):
    client = app.test_client()
    database_url = settings["SQLALCHEMY_DATABASE_URI"]

    class BookingMachine(RuleBasedStateMachine):
        @initialize(totals=st.lists(TOTALS, min_size=1, max_size=3))
        def fresh_database(self, totals):
            wipe(database_url)
            self.events: dict[int, ModelEvent] = {}
            self.keyed: list[tuple] = []  # (path, body, key, status, body bytes) answered
            for total in totals:
                self.create(total)

        def pick(self, data) -> int:
            return data.draw(st.sampled_from(sorted(self.events)))

        def create(self, total):
            name = f"event {len(self.events)}"
            response = client.post(
                "/api/events/initialize",
                json={"eventName": name, "totalTickets": total},
                headers=admin,
            )
            assert response.status_code == 201
            event = self.events[response.json["eventId"]] = ModelEvent(name, total)
            event.journal.append(
                ("event.created", None, {"eventName": name, "totalTickets": total, **AUTO_MODE})
            )

        @rule(data=st.data(), users=st.lists(USERS, min_size=1, max_size=3))
        def book(self, data, users):
            # Several at a time, so lines form and cancellations promote someone.
            event_id = self.pick(data)
            for user in users:
                self.book_one(event_id, user)

        def book_one(self, event_id, user):
            response = client.post("/api/events/book", json={"userId": user, "eventId": event_id})
            self.expect_book(event_id, user, response)

        def expect_book(self, event_id, user, response):
            event = self.events[event_id]
            if not event.sales_open:
                assert response.status_code == 409
                assert response.json["type"].endswith("sales-closed")
            elif user in event.booked:
                assert response.status_code == 409
                assert response.json["type"].endswith("already-booked")
            elif user in event.line:
                assert response.status_code == 409
                assert response.json["position"] == event.line.index(user) + 1
            elif event.available > 0:
                assert response.status_code == 201
                assert response.json == {"status": "booked", "eventId": event_id, "userId": user}
                event.booked.add(user)
                event.journal.append(("booking.booked", user, {}))
            else:
                event.line.append(user)
                event.journal.append(("waitlist.joined", user, {"position": len(event.line)}))
                assert response.status_code == 201
                assert response.json == {
                    "status": "waitlisted",
                    "eventId": event_id,
                    "userId": user,
                    "position": len(event.line),
                }

        @rule(data=st.data(), user=USERS)
        def cancel(self, data, user):
            event_id = self.pick(data)
            response = client.post("/api/events/cancel", json={"userId": user, "eventId": event_id})
            self.expect_cancel(event_id, user, response)

        def expect_cancel(self, event_id, user, response):
            event = self.events[event_id]
            if user not in event.booked and user not in event.line:
                assert response.status_code == 404
            elif user in event.booked:
                event.booked.remove(user)
                promoted = event.line.pop(0) if event.line else None
                cancelled = {"promotedUserId": promoted, "offeredUserId": None}
                event.journal.append(("booking.cancelled", user, cancelled))
                if promoted is not None:
                    event.booked.add(promoted)
                    cause = {"cause": "booking.cancelled", "causeUserId": user}
                    event.journal.append(("booking.promoted", promoted, cause))
                assert response.status_code == 200
                assert response.json == {
                    "status": "cancelled",
                    "eventId": event_id,
                    "userId": user,
                    "promotedUserId": promoted,
                    "offeredUserId": None,
                }
            else:
                event.line.remove(user)
                event.journal.append(("waitlist.left", user, {}))
                assert response.status_code == 200
                assert response.json["status"] == "left_waiting_list"

        @rule(data=st.data(), calls=st.lists(st.tuples(PATHS, USERS), min_size=2, max_size=6))
        def burst(self, data, calls):
            """Changes sent at once commit as group-commit batches; each answer must be
            what running them one at a time in their queue order gives."""
            events = st.sampled_from([*sorted(self.events), UNKNOWN_EVENT])
            calls = [(path, data.draw(events), user) for path, user in calls]
            for (path, event_id, user), response in zip(
                calls, send_as_batch(app, calls), strict=True
            ):
                if event_id == UNKNOWN_EVENT:
                    assert response.status_code == 404
                elif path == "book":
                    self.expect_book(event_id, user, response)
                else:
                    self.expect_cancel(event_id, user, response)

        @rule(data=st.data(), user=USERS, path=PATHS)
        def keyed_change(self, data, user, path):
            event_id = self.pick(data)
            body = {"userId": user, "eventId": event_id}
            key = f"key-{len(self.keyed)}"
            response = client.post(
                f"/api/events/{path}", json=body, headers={"Idempotency-Key": key}
            )
            expect = self.expect_book if path == "book" else self.expect_cancel
            expect(event_id, user, response)
            self.keyed.append((path, body, key, response.status_code, response.data))

        @precondition(lambda self: getattr(self, "keyed", None))
        @rule(data=st.data())
        def retry_a_keyed_change(self, data):
            """A retry gets the first answer again, byte for byte, and changes nothing."""
            path, body, key, status, answer = data.draw(st.sampled_from(self.keyed))
            response = client.post(
                f"/api/events/{path}", json=body, headers={"Idempotency-Key": key}
            )
            assert (response.status_code, response.data) == (status, answer)
            assert response.headers["Idempotent-Replayed"] == "true"

        @rule(data=st.data(), total=st.integers(min_value=0, max_value=5))
        def change_capacity(self, data, total):
            event_id = self.pick(data)
            response = client.patch(
                f"/api/events/{event_id}", json={"totalTickets": total}, headers=admin
            )
            event = self.events[event_id]
            if total < len(event.booked):
                assert response.status_code == 409
                assert response.json["type"].endswith("capacity-below-held")
                assert response.json["held"] == len(event.booked)
                return
            promoted = event.line[: max(0, total - event.total)]
            event.line = event.line[len(promoted) :]
            event.booked |= set(promoted)
            event.total = total
            updated = {"totalTickets": total, "promotedUserIds": promoted, "offeredUserIds": []}
            event.journal.append(("event.updated", None, updated))
            cause = {"cause": "event.updated", "causeUserId": None}
            event.journal.extend(("booking.promoted", user, cause) for user in promoted)
            assert response.status_code == 200
            assert response.json["promotedUserIds"] == promoted
            assert response.json["totalTickets"] == total

        @rule(data=st.data(), sales_open=st.booleans())
        def open_or_close_sales(self, data, sales_open):
            event_id = self.pick(data)
            response = client.patch(
                f"/api/events/{event_id}", json={"salesOpen": sales_open}, headers=admin
            )
            assert response.status_code == 200
            assert response.json["salesOpen"] is sales_open
            self.events[event_id].sales_open = sales_open
            updated = {"salesOpen": sales_open, "promotedUserIds": [], "offeredUserIds": []}
            self.events[event_id].journal.append(("event.updated", None, updated))

        @rule(user=USERS)
        def a_user_sees_their_bookings(self, user):
            expected = []
            for event_id in sorted(self.events):
                event = self.events[event_id]
                entry = {"eventId": event_id, "eventName": event.name}
                if user in event.booked:
                    expected.append({**entry, "status": "booked"})
                elif user in event.line:
                    position = event.line.index(user) + 1
                    expected.append({**entry, "status": "waitlisted", "position": position})
            found, cursor = [], None
            while True:
                query = "?limit=1" + (f"&cursor={cursor}" if cursor else "")
                page = client.get(f"/api/users/{user}/bookings{query}").json
                found += page["bookings"]
                cursor = page["nextCursor"]
                if cursor is None:
                    break
            assert found == expected

        @rule(user=USERS, path=st.sampled_from(["book", "cancel"]))
        def an_unknown_event_is_404(self, user, path):
            body = {"userId": user, "eventId": UNKNOWN_EVENT}
            assert client.post(f"/api/events/{path}", json=body).status_code == 404
            assert client.get(f"/api/events/{UNKNOWN_EVENT}/users/{user}").status_code == 404

        @rule(data=st.data(), user=USERS)
        def ask_about_a_user(self, data, user):
            event_id = self.pick(data)
            response = client.get(f"/api/events/{event_id}/users/{user}")
            event = self.events[event_id]
            expected = {"eventId": event_id, "userId": user, "status": "none"}
            if user in event.booked:
                expected["status"] = "booked"
            elif user in event.line:
                expected.update(status="waitlisted", position=event.line.index(user) + 1)
            assert response.json == expected

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
            return [(e["type"], e["userId"], e["data"]) for e in entries]

        @invariant()
        def every_event_matches_the_model(self):
            for event_id, event in getattr(self, "events", {}).items():
                status = client.get(f"/api/events/status/{event_id}").json
                assert status == {
                    "eventId": event_id,
                    "eventName": event.name,
                    "totalTickets": event.total,
                    "availableTickets": event.available,
                    "waitingListCount": len(event.line),
                    "salesOpen": event.sales_open,
                    **AUTO_MODE,
                    "offeredTickets": 0,
                }
                line = client.get(f"/api/events/{event_id}/waiting-list", headers=admin)
                assert line.json["userIds"] == event.line
                assert self.history(event_id) == event.journal
                # The model's own rules, so a wrong model cannot pass silently.
                assert 0 <= event.available <= event.total
                assert not (event.line and event.available > 0)
                assert not (event.booked & set(event.line))

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
