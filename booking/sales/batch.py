"""One batch's view of the database: read once, changed in memory, written once.

The group commit runs many changes in one transaction. Rather than a round trip
per step of every change, the batch reads what all its changes may touch with
one statement (the events and the bookings of its users; row mode locks the
events first), the rules change this in-memory view one change after another
(each sees what those before it did), and `write()` stores the net effect with a
statement or two per table before the COMMIT.

The rules decide every refusal before they change anything, so a refused change
leaves the view as it found it. An event's line is the process's copy
(waiting_lists.py), changed as the batch goes; if the batch does not commit, the
group commit drops the copies it touched (`touched_lines`).
"""

from datetime import datetime

from sqlalchemy import Connection

from ..storage import journal, tickets
from .batch_answers import BatchAnswers
from .batch_offers import HOLD, OFFER, Offer, Offers
from .batch_queue import Queue
from .clock import Clock
from .event_view import EventView, written
from .line_changes import LineChanges
from .waiting_lists import Party, WaitingLists

Pair = tuple[int, int]  # (event_id, user_id)


class Batch:
    def __init__(
        self, conn: Connection, waiting_lists: WaitingLists, lock_rows: bool, clock: Clock
    ):
        self.conn = conn
        self.clock = clock
        self.lock_rows = lock_rows
        self._waiting_lists = waiting_lists
        self._events: dict[int, EventView] = {}
        # Tickets booked by the pairs this batch knows (0: none): as loaded, and now.
        self._booked_before: dict[Pair, int] = {}
        self._booked: dict[Pair, int] = {}
        self.locked_at: float | None = None  # when the database's lock was had (monotonic)
        # Idempotency-Keys: the answers stored before, and those this batch adds.
        self.answers = BatchAnswers(conn)
        self._facts: list[dict] = []  # the journal's new entries, in order
        self._now: datetime | None = None

    def now(self) -> datetime:
        """The database's clock (clock.py), read once per batch when an offer needs it."""
        if self._now is None:
            self._now = self.clock.now(self.conn)
        return self._now

    @property
    def facts(self) -> list[dict]:
        """The journal's new entries, in order (counted once committed)."""
        return self._facts

    def events(self) -> list[EventView]:
        return list(self._events.values())

    def record(self, type_: str, event_id: int, user_id: int | None = None, **data) -> dict:
        """Journal a fact of a change; its data may be filled in until write()."""
        fact = journal.fact(type_, event_id, user_id, **data)
        self._facts.append(fact)
        return fact["data"]

    def load(self, pairs: list[tuple[int | None, int | None]]) -> None:
        """Read every event the changes name and their users' bookings."""
        event_ids = sorted({event_id for event_id, _ in pairs if event_id is not None})
        if not event_ids:
            return
        user_ids = sorted({user_id for _, user_id in pairs if user_id is not None})
        found, held = tickets.batch_view(self.conn, event_ids, user_ids, self.lock_rows)
        for row in found:
            self._events[row.id] = EventView(*row, loaded=row)
        for pair in pairs:
            if pair[0] in self._events and pair[1] is not None:
                self._booked_before[pair] = self._booked[pair] = 0
        for event_id, user_id, count in held:
            self._booked_before[(event_id, user_id)] = self._booked[(event_id, user_id)] = count

    # The event and its bookings.

    def event(self, event_id: int) -> EventView | None:
        return self._events.get(event_id)

    def create_event(self, values: dict) -> int:
        return tickets.create_event(self.conn, values)

    def change_event(self, event: EventView, **values) -> None:
        """Set any of the event's columns (counters and settings)."""
        for name, value in values.items():
            setattr(event, name, value)
        event.changed = True

    def booked(self, event: EventView, user_id: int) -> int:
        """The tickets the user has booked for the event (0: none)."""
        return self._booked[(event.id, user_id)]

    def book(self, event: EventView, user_id: int, count: int) -> None:
        """Book `count` more tickets for the user, out of the event's free ones."""
        if count > event.available_tickets:
            raise RuntimeError(f"event {event.id} has {event.available_tickets} free, not {count}")
        self.add_booking(event, user_id, count)
        self.change_event(event, available_tickets=event.available_tickets - count)

    def add_booking(self, event: EventView, user_id: int, count: int) -> None:
        """Book `count` tickets that are not counted as free (an offer's, a hold's)."""
        pair = (event.id, user_id)
        self._booked_before.setdefault(pair, 0)
        self._booked[pair] = self._booked.get(pair, 0) + count

    def unbook(self, event: EventView, user_id: int, count: int) -> None:
        """Give back `count` of the user's booked tickets (they become free)."""
        self._booked[(event.id, user_id)] -= count
        self.change_event(event, available_tickets=event.available_tickets + count)

    # The line (the copy in memory, changed at once; see line_changes.py).

    def line(self, event: EventView) -> LineChanges:
        if event.line is None:
            event.line = LineChanges(self._waiting_lists.sync(self.conn, event.loaded))
        return event.line

    def place(self, event: EventView, user_id: int) -> Party | None:
        """The user's party in line, or None."""
        return self.line(event).line.party(user_id) if event.waiting_count else None

    def join(self, event: EventView, user_id: int, count: int) -> Party:
        seq = event.next_waiting_seq
        changes = self.line(event)
        changes.join(seq, user_id, count)
        self.change_event(
            event,
            next_waiting_seq=seq + 1,
            waiting_count=event.waiting_count + 1,
            waiting_tickets=event.waiting_tickets + count,
        )
        return changes.line.parties[seq]

    def leave(self, event: EventView, party: Party) -> None:
        self.line(event).leave(party.seq)
        self.change_event(
            event,
            waiting_count=event.waiting_count - 1,
            waiting_tickets=event.waiting_tickets - party.tickets,
        )

    def shrink(self, event: EventView, party: Party, count: int) -> None:
        """The party waits for `count` fewer tickets, in the same place."""
        self.line(event).shrink(party.seq, party.tickets - count)
        self.change_event(event, waiting_tickets=event.waiting_tickets - count)

    def overtake(self, event: EventView, before_seq: int) -> list[int]:
        """One more overtake for every waiting party before `before_seq` (but those larger
        than the event); their user ids, in line order."""
        passed = self.line(event).overtake(before_seq, event.total_tickets)
        return [party.user_id for party in passed]

    def touched_lines(self) -> list[int]:
        """The events whose line copy this batch has changed."""
        return [e.id for e in self._events.values() if e.line is not None and e.line.ops]

    # Offers and holds: tickets held for a user until they lapse (batch_offers.py).

    def offers(self, event: EventView) -> Offers:
        """The event's live offers and holds this batch can touch: its users', and the
        lapsed ones."""
        if event.offers is None:
            users = [user for (event_id, user) in self._booked if event_id == event.id]
            event.offers = Offers.read(self.conn, event, users, self.now)
        return event.offers

    def offer_of(self, event: EventView, user_id: int) -> Offer | None:
        """The user's live offer or hold, or None."""
        if not (event.offered_tickets or event.held_tickets):
            return None
        return self.offers(event).of(user_id)

    def offer(self, event: EventView, party: Party) -> datetime:
        """Hold the party's tickets for them (out of the free ones) until the event's offer
        time is over; that time."""
        offer = self.offers(event).add(
            party.user_id, party.seq, party.tickets, event.offer_ttl_seconds, OFFER
        )
        self.change_event(
            event,
            available_tickets=event.available_tickets - party.tickets,
            offered_tickets=event.offered_tickets + party.tickets,
        )
        return offer.expires_at

    def hold(self, event: EventView, user_id: int, count: int) -> datetime:
        """Hold `count` free tickets for a buyer until the event's hold time is over (a
        checkout hold; it takes the next seq, its place in arrival order); that time."""
        seq = event.next_waiting_seq
        offer = self.offers(event).add(user_id, seq, count, event.hold_ttl_seconds, HOLD)
        self.change_event(
            event,
            next_waiting_seq=seq + 1,
            available_tickets=event.available_tickets - count,
            held_tickets=event.held_tickets + count,
        )
        return offer.expires_at

    def end_offer(self, event: EventView, user_id: int, lapsed: bool = False) -> Offer:
        """The user's offer or hold is claimed, given back or (`lapsed`) over: its tickets
        are no longer held (the caller books or frees them). It, as it was."""
        offer = self.offers(event).end(user_id, lapsed)
        if offer.kind == HOLD:
            self.change_event(event, held_tickets=event.held_tickets - offer.tickets)
        else:
            self.change_event(event, offered_tickets=event.offered_tickets - offer.tickets)
        return offer

    def free(self, event: EventView, count: int) -> None:
        """`count` tickets taken from an offer become free."""
        self.change_event(event, available_tickets=event.available_tickets + count)

    # A scheduled on-sale's pre-queue (batch_queue.py, opening.py).

    def queue(self, event: EventView) -> Queue:
        if event.queue is None:
            users = [user for (event_id, user) in self._booked if event_id == event.id]
            event.queue = Queue.read(self.conn, event.id, users)
        return event.queue

    def queued(self, event: EventView, user_id: int) -> int | None:
        """The tickets the user is queued with, or None."""
        return self.queue(event).of(user_id) if event.queued_count else None

    def enqueue(self, event: EventView, user_id: int, tickets: int) -> None:
        """Queue the user's party, or (queued already) set its tickets; 0: it leaves."""
        queue = self.queue(event)
        before = queue.of(user_id)
        queue.put(user_id, tickets or None)
        self.change_event(
            event,
            queued_count=event.queued_count + (before is None) - (not tickets),
            queued_tickets=event.queued_tickets - (before or 0) + tickets,
        )

    def take_queue(self, event: EventView) -> list[tuple[int, int]]:
        """Every queued party (user_id, tickets); the queue is empty afterwards."""
        parties = self.queue(event).take_all(self.conn, event.id)
        self.change_event(event, queued_count=0, queued_tickets=0)
        return parties

    # The end of the batch.

    def write(self) -> None:
        """Store the net effect of every change in this batch."""
        deleted: dict[int, list[int]] = {}
        changed, new = [], []
        for (event_id, user_id), count in self._booked.items():
            before = self._booked_before[(event_id, user_id)]
            if count == before:
                continue
            if count == 0:
                deleted.setdefault(event_id, []).append(user_id)
            elif before == 0:
                new.append({"event_id": event_id, "user_id": user_id, "tickets": count})
            else:
                changed.append({"e": event_id, "u": user_id, "t": count})
        tickets.write_bookings(self.conn, deleted, changed, new)
        for event in self._events.values():
            if event.line is not None and event.line.ops:
                self.change_event(event, waitlist_version=event.waitlist_version + 1)
                event.line.write(self.conn, event.id, event.waitlist_version)
            if event.offers is not None:
                event.offers.write(self.conn, event.id)
            if event.queue is not None:
                event.queue.write(self.conn, event.id)
        tickets.write_events(
            self.conn, [written(event) for event in self._events.values() if event.changed]
        )
        if self._facts:
            journal.append(self.conn, self._facts)
        self.answers.write()

    def committed(self) -> None:
        """After the COMMIT: the line copies this batch changed are current."""
        for event in self._events.values():
            if event.line is not None:
                self._waiting_lists.committed(event.id, event.waitlist_version)
