"""A Hypothesis state machine drives the API against a plain Python model of the rules.

Every response is compared with what the model says it must be, and after every
step each event's status, line, offers, journal (the admin history) and the
invariants are checked. Events run in either waiting-list mode; time passes by
moving an event's offers past their expiry in the database (no sleeping), and
the next change to the event must pass the lapsed offers on first. Runs on
SQLite and on MariaDB, derandomized so CI replays the same programs.
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
from .test_offers import pass_time

USERS = st.integers(min_value=1, max_value=4)
TOTALS = st.integers(min_value=0, max_value=2)
MODES = st.sampled_from(["auto", "offer"])
PATHS = st.sampled_from(["book", "cancel", "claim"])
UNKNOWN_EVENT = 9_000_000_000
TTL = 3600


@dataclass
class ModelEvent:
    name: str
    total: int
    mode: str = "auto"
    booked: set[int] = field(default_factory=set)
    line: list[int] = field(default_factory=list)
    offered: list[int] = field(default_factory=list)  # in the order they were offered
    lapsed: set[int] = field(default_factory=set)  # offers past their time, not yet settled
    sales_open: bool = True
    # What the journal must say, in commit order: (type, userId, data without expiresAt).
    journal: list[tuple] = field(default_factory=list)

    @property
    def available(self) -> int:
        return self.total - len(self.booked) - len(self.offered)

    def record(self, type_, user, **data) -> dict:
        self.journal.append((type_, user, data))
        return data

    def pass_on(self, cause, cause_user) -> tuple[int | None, int | None]:
        """A freed ticket: (promoted, offered)."""
        if not self.line:
            return None, None
        head = self.line.pop(0)
        why = {"cause": cause, "causeUserId": cause_user}
        if self.mode == "offer":
            self.offered.append(head)
            self.record("offer.created", head, **why)
            return None, head
        self.booked.add(head)
        self.record("booking.promoted", head, **why)
        return head, None

    def settle(self) -> None:
        """What every change to the event does first: lapsed offers pass on, in order."""
        for user in [u for u in self.offered if u in self.lapsed]:
            self.offered.remove(user)
            self.lapsed.discard(user)
            lapsed = self.record("offer.expired", user)
            promoted, offered = self.pass_on("offer.expired", user)
            lapsed.update(promotedUserId=promoted, offeredUserId=offered)


def test_the_api_follows_the_model(app, admin, settings):
    client = app.test_client()
    database_url = settings["SQLALCHEMY_DATABASE_URI"]

    class BookingMachine(RuleBasedStateMachine):
        @initialize(events=st.lists(st.tuples(TOTALS, MODES), min_size=1, max_size=3))
        def fresh_database(self, events):
            wipe(database_url)
            self.events: dict[int, ModelEvent] = {}
            self.keyed: list[tuple] = []  # (path, body, key, status, body bytes) answered
            for total, mode in events:
                self.create(total, mode)

        def pick(self, data) -> int:
            return data.draw(st.sampled_from(sorted(self.events)))

        def create(self, total, mode):
            name = f"event {len(self.events)}"
            body = {"eventName": name, "totalTickets": total, "waitlistMode": mode}
            response = client.post("/api/events/initialize", json=body, headers=admin)
            assert response.status_code == 201
            event = self.events[response.json["eventId"]] = ModelEvent(name, total, mode)
            event.record("event.created", None, **body, offerTtlSeconds=TTL)

        def expect(self, path, event_id, user, response):
            if event_id == UNKNOWN_EVENT:
                assert response.status_code == 404
                return
            self.events[event_id].settle()
            {"book": self.expect_book, "cancel": self.expect_cancel, "claim": self.expect_claim}[
                path
            ](event_id, user, response)

        def send(self, path, event_id, user, headers=None):
            body = {"userId": user, "eventId": event_id}
            return client.post(f"/api/events/{path}", json=body, headers=headers)

        @rule(data=st.data(), users=st.lists(USERS, min_size=1, max_size=3))
        def book(self, data, users):
            # Several at a time, so lines form and cancellations free tickets for them.
            event_id = self.pick(data)
            for user in users:
                self.expect("book", event_id, user, self.send("book", event_id, user))

        def expect_book(self, event_id, user, response):
            event = self.events[event_id]
            if not event.sales_open:
                assert response.status_code == 409
                assert response.json["type"].endswith("sales-closed")
            elif user in event.booked:
                assert response.status_code == 409
                assert response.json["type"].endswith("already-booked")
            elif user in event.offered:
                assert response.status_code == 409
                assert response.json["type"].endswith("already-offered")
            elif user in event.line:
                assert response.status_code == 409
                assert response.json["position"] == event.line.index(user) + 1
            elif event.available > 0:
                assert response.status_code == 201
                assert response.json == {"status": "booked", "eventId": event_id, "userId": user}
                event.booked.add(user)
                event.record("booking.booked", user)
            else:
                event.line.append(user)
                event.record("waitlist.joined", user, position=len(event.line))
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
            self.expect("cancel", event_id, user, self.send("cancel", event_id, user))

        def expect_cancel(self, event_id, user, response):
            event = self.events[event_id]
            shaped = {"eventId": event_id, "userId": user}
            if user in event.booked or user in event.offered:
                status, cause = "cancelled", "booking.cancelled"
                if user in event.booked:
                    event.booked.remove(user)
                else:
                    event.offered.remove(user)
                    status, cause = "declined_offer", "offer.declined"
                ended = event.record(cause, user)
                promoted, offered = event.pass_on(cause, user)
                ended.update(promotedUserId=promoted, offeredUserId=offered)
                assert response.status_code == 200
                assert response.json == {"status": status, **shaped, **ended}
            elif user in event.line:
                event.line.remove(user)
                event.record("waitlist.left", user)
                assert response.status_code == 200
                assert response.json == {"status": "left_waiting_list", **shaped}
            else:
                assert response.status_code == 404

        @rule(data=st.data(), user=USERS)
        def claim(self, data, user):
            event_id = self.pick(data)
            # Mostly someone who holds an offer, else anyone.
            user = data.draw(st.sampled_from([*self.events[event_id].offered, user]))
            self.expect("claim", event_id, user, self.send("claim", event_id, user))

        @rule(data=st.data())
        def a_sold_out_event_frees_a_ticket(self, data):
            """Everyone books, then the first booked cancels: with a line, the ticket is
            offered or booked for its head (random programs rarely get this far alone)."""
            event_id = self.pick(data)
            for user in (1, 2, 3, 4):
                self.expect("book", event_id, user, self.send("book", event_id, user))
            event = self.events[event_id]
            if event.booked:
                user = min(event.booked)
                self.expect("cancel", event_id, user, self.send("cancel", event_id, user))

        def expect_claim(self, event_id, user, response):
            event = self.events[event_id]
            if user in event.offered:
                event.offered.remove(user)
                event.booked.add(user)
                event.record("offer.claimed", user)
                assert response.status_code == 201
                assert response.json == {"status": "booked", "eventId": event_id, "userId": user}
            else:
                assert response.status_code == 409
                assert response.json["type"].endswith("no-offer")

        @precondition(lambda self: any(e.offered for e in getattr(self, "events", {}).values()))
        @rule(data=st.data())
        def time_passes(self, data):
            """An event's offers reach their expiry (moved there in the database)."""
            event_id = data.draw(
                st.sampled_from([e for e, ev in self.events.items() if ev.offered])
            )
            pass_time(database_url, event_id=event_id)
            self.events[event_id].lapsed |= set(self.events[event_id].offered)

        @rule(data=st.data(), calls=st.lists(st.tuples(PATHS, USERS), min_size=2, max_size=6))
        def burst(self, data, calls):
            """Changes sent at once commit as group-commit batches; each answer must be
            what running them one at a time in their queue order gives."""
            events = st.sampled_from([*sorted(self.events), UNKNOWN_EVENT])
            calls = [(path, data.draw(events), user) for path, user in calls]
            for (path, event_id, user), response in zip(
                calls, send_as_batch(app, calls), strict=True
            ):
                self.expect(path, event_id, user, response)

        @rule(data=st.data(), user=USERS, path=PATHS)
        def keyed_change(self, data, user, path):
            event_id = self.pick(data)
            key = f"key-{len(self.keyed)}"
            response = self.send(path, event_id, user, {"Idempotency-Key": key})
            self.expect(path, event_id, user, response)
            body = {"userId": user, "eventId": event_id}
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

        def patch(self, event_id, body):
            response = client.patch(f"/api/events/{event_id}", json=body, headers=admin)
            self.events[event_id].settle()
            return response

        @rule(data=st.data(), total=st.integers(min_value=0, max_value=5))
        def change_capacity(self, data, total):
            event_id = self.pick(data)
            response = self.patch(event_id, {"totalTickets": total})
            event = self.events[event_id]
            held = len(event.booked) + len(event.offered)
            if total < held:
                assert response.status_code == 409
                assert response.json["type"].endswith("capacity-below-held")
                assert response.json["held"] == held
                return
            promoted, offered = [], []
            updated = event.record(
                "event.updated", None, totalTickets=total, promotedUserIds=promoted,
                offeredUserIds=offered,
            )  # fmt: skip
            added, event.total = total - event.total, total
            for _ in range(max(0, added)):
                to_booked, to_offered = event.pass_on("event.updated", None)
                if to_booked is None and to_offered is None:
                    break
                (promoted if to_booked else offered).append(to_booked or to_offered)
            assert response.status_code == 200
            assert response.json["promotedUserIds"] == updated["promotedUserIds"]
            assert response.json["offeredUserIds"] == updated["offeredUserIds"]
            assert response.json["totalTickets"] == total

        @rule(data=st.data(), sales_open=st.booleans())
        def open_or_close_sales(self, data, sales_open):
            event_id = self.pick(data)
            response = self.patch(event_id, {"salesOpen": sales_open})
            assert response.status_code == 200
            assert response.json["salesOpen"] is sales_open
            self.events[event_id].sales_open = sales_open
            self.events[event_id].record(
                "event.updated", None, salesOpen=sales_open, promotedUserIds=[], offeredUserIds=[]
            )

        @rule(data=st.data(), mode=MODES)
        def switch_mode(self, data, mode):
            """Tickets freed from now on follow the new mode; offers out stay valid."""
            event_id = self.pick(data)
            response = self.patch(event_id, {"waitlistMode": mode})
            assert response.status_code == 200
            assert response.json["waitlistMode"] == mode
            self.events[event_id].mode = mode
            self.events[event_id].record(
                "event.updated", None, waitlistMode=mode, promotedUserIds=[], offeredUserIds=[]
            )

        @rule(user=USERS)
        def a_user_sees_their_bookings(self, user):
            expected = []
            for event_id in sorted(self.events):
                event = self.events[event_id]
                entry = {"eventId": event_id, "eventName": event.name}
                if user in event.booked:
                    expected.append({**entry, "status": "booked"})
                elif user in event.offered:
                    expected.append({**entry, "status": "offered"})
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
            for booking in found:
                if booking["status"] == "offered":
                    assert booking.pop("offerExpiresAt").endswith("Z")
            assert found == expected

        @rule(user=USERS, path=PATHS)
        def an_unknown_event_is_404(self, user, path):
            assert self.send(path, UNKNOWN_EVENT, user).status_code == 404
            assert client.get(f"/api/events/{UNKNOWN_EVENT}/users/{user}").status_code == 404

        @rule(data=st.data(), user=USERS)
        def ask_about_a_user(self, data, user):
            event_id = self.pick(data)
            response = client.get(f"/api/events/{event_id}/users/{user}")
            event = self.events[event_id]
            expected = {"eventId": event_id, "userId": user, "status": "none"}
            if user in event.booked:
                expected["status"] = "booked"
            elif user in event.offered:
                expected["status"] = "offered"
                assert response.json.pop("offerExpiresAt").endswith("Z")
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
            told = []
            for e in entries:
                data = dict(e["data"])
                if e["type"] in ("offer.created", "offer.expired"):
                    assert data.pop("expiresAt").endswith("Z")
                told.append((e["type"], e["userId"], data))
            return told

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
                    "waitlistMode": event.mode,
                    "offerTtlSeconds": TTL,
                    "offeredTickets": len(event.offered),
                }
                line = client.get(f"/api/events/{event_id}/waiting-list", headers=admin)
                assert line.json["userIds"] == event.line
                assert self.history(event_id) == event.journal
                # The model's own rules, so a wrong model cannot pass silently.
                assert 0 <= event.available <= event.total
                assert not (event.line and event.available > 0)
                held = [*event.booked, *event.offered, *event.line]
                assert len(held) == len(set(held)), "a user holds two of ticket, offer, place"

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
