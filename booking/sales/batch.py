"""One batch's view of the database: read once, changed in memory, written once.

The group commit runs many changes in one transaction. Rather than a round trip
per step of every change, the batch reads what all its changes may touch with
two statements (the events, and who of its users holds a ticket or a place),
the rules change this in-memory view one change after another (each sees what
those before it did), and `write()` stores the net effect with one statement
per table before the COMMIT.

The rules decide every refusal before they change anything, so a refused change
leaves the view as it found it. The waiting-list copies of the process
(waiting_lists.py) are read here but only changed after the COMMIT.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection

from ..storage import journal, tickets
from ..storage import offers as offer_store
from .batch_answers import BatchAnswers
from .waiting_lists import WaitingList, WaitingLists

Pair = tuple[int, int]  # (event_id, user_id)


@dataclass(slots=True, eq=False)
class EventView:
    """An event's row as this batch sees it; `loaded` is the row as read (committed)."""

    id: int
    name: str
    total_tickets: int
    available_tickets: int
    waiting_count: int
    waitlist_version: int
    next_waiting_seq: int
    sales_open: bool
    waitlist_mode: str
    offer_ttl_seconds: int
    offered_tickets: int
    loaded: object = None
    changed: bool = False
    joined: list[Pair] = field(default_factory=list)  # (user_id, seq) in this batch
    line: WaitingList | None = None  # the committed line, fetched on first need
    line_index: int = 0  # how far into `line` the head has moved in this batch
    left: list[int] = field(default_factory=list)  # seqs of committed places taken away
    # Live offers, {user_id: (seq, expires_at)}, read on first need; and changes to them.
    offers: dict[int, tuple[int, datetime]] | None = None
    offers_ended: list[int] = field(default_factory=list)  # committed offers gone
    offers_new: dict[int, tuple[int, datetime]] = field(default_factory=dict)


class Batch:
    def __init__(self, conn: Connection, waiting_lists: WaitingLists, lock_rows: bool):
        self.conn = conn
        self.lock_rows = lock_rows
        self._waiting_lists = waiting_lists
        self._events: dict[int, EventView] = {}
        # Tickets and places of the pairs this batch knows: as loaded, and now.
        self._booked_before: dict[Pair, bool] = {}
        self._booked: dict[Pair, bool] = {}
        self._seq_before: dict[Pair, int | None] = {}
        self._seq: dict[Pair, int | None] = {}
        self._unbooked: set[Pair] = set()  # committed tickets taken away
        self._unplaced: set[Pair] = set()  # committed places taken away
        self._line_changes: list[tuple[int, int, object]] = []  # (event, from version, change)
        self.locked_at: float | None = None  # when the database's lock was had (monotonic)
        # Idempotency-Keys: the answers stored before, and those this batch adds.
        self.answers = BatchAnswers(conn)
        self._facts: list[dict] = []  # the journal's new entries, in order
        self._now: datetime | None = None
        self._lapsed: dict[Pair, datetime] = {}  # offers this batch found past their time

    def now(self) -> datetime:
        """The database's clock, read once per batch when an offer needs it."""
        if self._now is None:
            self._now = journal.database_now(self.conn)
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
        """Read every event the changes name and their users' tickets and places."""
        event_ids = sorted({event_id for event_id, _ in pairs if event_id is not None})
        if not event_ids:
            return
        user_ids = sorted({user_id for _, user_id in pairs if user_id is not None})
        found, holdings = tickets.batch_view(self.conn, event_ids, user_ids, self.lock_rows)
        for row in found:
            self._events[row.id] = EventView(*row, loaded=row)
        for pair in pairs:
            if pair[0] in self._events and pair[1] is not None:
                self._booked_before[pair] = self._booked[pair] = False
                self._seq_before[pair] = self._seq[pair] = None
        for kind, event_id, user_id, seq in holdings:
            pair = (event_id, user_id)
            if kind == "b":
                self._booked_before[pair] = self._booked[pair] = True
            else:
                self._seq_before[pair] = self._seq[pair] = seq

    # Reads, as of this point in the batch.

    def event(self, event_id: int) -> EventView | None:
        return self._events.get(event_id)

    def holds_ticket(self, event: EventView, user_id: int) -> bool:
        return self._booked[(event.id, user_id)]

    def place(self, event: EventView, user_id: int) -> int | None:
        """The user's seq in line, or None."""
        return self._seq[(event.id, user_id)]

    def position(self, event: EventView, user_id: int) -> int:
        """A waiting user's 1-based place: the committed rows ahead, as changed here."""
        seq = self._seq[(event.id, user_id)]
        ahead = tickets.waiting_ahead(
            self.conn, event.id, seq
        )  # committed rows: nothing written yet
        ahead -= sum(1 for left in event.left if left < seq)
        ahead += sum(1 for user, s in event.joined if s < seq and self._seq[(event.id, user)] == s)
        return ahead + 1

    def head(self, event: EventView) -> int | None:
        """The first user in line now: the committed line, then those who joined here."""
        if event.line is None:
            event.line = self._waiting_lists.sync(self.conn, event.loaded)
        queue = event.line.queue
        while event.line_index < len(queue):
            user_id = queue[event.line_index]
            pair = (event.id, user_id)
            # Still in line unless this batch took the place away.
            if pair not in self._seq or self._seq[pair] == event.line.seqs[user_id]:
                return user_id
            event.line_index += 1
        for user_id, seq in event.joined:
            if self._seq[(event.id, user_id)] == seq:
                return user_id
        return None

    # Changes, in memory until write().

    def create_event(self, name: str, total_tickets: int, mode: str, ttl: int) -> int:
        return tickets.create_event(self.conn, name, total_tickets, mode, ttl)

    def take_ticket(self, event: EventView) -> None:
        if event.available_tickets <= 0:
            raise RuntimeError(f"event {event.id} has no ticket left to take")
        event.available_tickets -= 1
        event.changed = True

    def release_ticket(self, event: EventView) -> None:
        event.available_tickets += 1
        event.changed = True

    def change_event(self, event: EventView, **values) -> None:
        """Set the event's name, total_tickets, available_tickets or sales_open."""
        for name, value in values.items():
            setattr(event, name, value)
        event.changed = True

    def add_booking(self, event: EventView, user_id: int) -> None:
        pair = (event.id, user_id)
        if self._booked.setdefault(pair, False):
            raise RuntimeError(f"user {user_id} already holds a ticket for event {event.id}")
        self._booked_before.setdefault(pair, False)
        self._booked[pair] = True

    def delete_booking(self, event: EventView, user_id: int) -> None:
        pair = (event.id, user_id)
        self._booked[pair] = False
        if self._booked_before[pair]:
            self._unbooked.add(pair)

    def join_waiting_list(self, event: EventView, user_id: int) -> int:
        """Append the user to the line; their 1-based position."""
        pair = (event.id, user_id)
        seq = event.next_waiting_seq
        event.next_waiting_seq += 1
        self._seq[pair] = seq
        event.joined.append((user_id, seq))
        event.waiting_count += 1
        self._line_changed(event, lambda line: line.append(user_id, seq))
        return event.waiting_count

    def leave_waiting_list(self, event: EventView, user_id: int) -> int:
        """Take the user's place in line away; the seq it had."""
        pair = (event.id, user_id)
        if pair not in self._seq:  # the head of the line, not one of the batch's own users
            self._seq_before[pair] = self._seq[pair] = event.line.seqs[user_id]
        seq = self._seq[pair]
        if seq == self._seq_before[pair]:
            self._unplaced.add(pair)
            event.left.append(seq)
        self._seq[pair] = None
        event.waiting_count -= 1
        self._line_changed(event, lambda line: line.remove(user_id))
        return seq

    # Offers: a freed ticket held for a user (neither available nor booked).

    def offers(self, event: EventView) -> dict[int, tuple[int, datetime]]:
        """The event's live offers this batch can touch: its users', and the lapsed ones."""
        if event.offers is None:
            rows = []
            if event.offered_tickets:
                users = [user for (event_id, user) in self._booked if event_id == event.id]
                rows = offer_store.for_batch(self.conn, event.id, users, self.now())
            event.offers = {user_id: (seq, expires_at) for user_id, seq, expires_at in rows}
        return event.offers

    def offer_of(self, event: EventView, user_id: int) -> datetime | None:
        """When the user's offer lapses, or None if they hold none."""
        held = self.offers(event).get(user_id) if event.offered_tickets else None
        return None if held is None else held[1]

    def lapsed_offers(self, event: EventView) -> list[int]:
        """Users whose offers are past their time, soonest lapsed first, then line order."""
        if not event.offered_tickets:
            return []
        now = self.now()
        due = [(at, seq, user) for user, (seq, at) in self.offers(event).items() if at <= now]
        return [user for _, _, user in sorted(due)]

    def add_offer(self, event: EventView, user_id: int, seq: int) -> datetime:
        """Hold a ticket for the user until the event's offer time is over; that time."""
        offers = self.offers(event)
        expires_at = self.now() + timedelta(seconds=event.offer_ttl_seconds)
        offers[user_id] = event.offers_new[user_id] = (seq, expires_at)
        event.offered_tickets += 1
        event.changed = True
        return expires_at

    def end_offer(self, event: EventView, user_id: int, lapsed: bool = False) -> datetime:
        """The offer is claimed, declined or (`lapsed`) over; when it was to lapse."""
        _, expires_at = self.offers(event).pop(user_id)
        if event.offers_new.pop(user_id, None) is None:
            event.offers_ended.append(user_id)
        event.offered_tickets -= 1
        event.changed = True
        if lapsed:
            self._lapsed[(event.id, user_id)] = expires_at
        return expires_at

    def lapsed_at(self, event: EventView, user_id: int) -> datetime | None:
        """When the user's last offer lapsed, if that is how it ended (for a refusal)."""
        if (event.id, user_id) in self._lapsed:
            return self._lapsed[(event.id, user_id)]
        return offer_store.lapsed_at(self.conn, event.id, user_id)

    def _line_changed(self, event: EventView, change) -> None:
        self._line_changes.append((event.id, event.waitlist_version, change))
        event.waitlist_version += 1
        event.changed = True

    def write(self) -> None:
        """Store the net effect of every change in this batch."""
        deleted_bookings: dict[int, list[int]] = {}
        for event_id, user_id in self._unbooked:
            deleted_bookings.setdefault(event_id, []).append(user_id)
        deleted_places: dict[int, list[int]] = {}
        for event_id, user_id in self._unplaced:
            deleted_places.setdefault(event_id, []).append(user_id)
        new_bookings = [
            {"event_id": event_id, "user_id": user_id}
            for (event_id, user_id), held in self._booked.items()
            if held and self._is_new_booking((event_id, user_id))
        ]
        new_places = [
            {"event_id": event_id, "user_id": user_id, "seq": seq}
            for (event_id, user_id), seq in self._seq.items()
            if seq is not None and seq != self._seq_before[(event_id, user_id)]
        ]
        changed_events = [
            {
                "id": event.id,
                "available": event.available_tickets,
                "waiting": event.waiting_count,
                "version": event.waitlist_version,
                "next_seq": event.next_waiting_seq,
                "name": event.name,
                "total": event.total_tickets,
                "sales_open": event.sales_open,
                "mode": event.waitlist_mode,
                "ttl": event.offer_ttl_seconds,
                "offered": event.offered_tickets,
            }
            for event in self._events.values()
            if event.changed
        ]
        tickets.write_batch(
            self.conn, deleted_bookings, deleted_places, new_bookings, new_places, changed_events
        )
        ended_offers = {e.id: e.offers_ended for e in self._events.values() if e.offers_ended}
        new_offers = [
            {"event_id": e.id, "user_id": user_id, "seq": seq, "expires_at": expires_at}
            for e in self._events.values()
            for user_id, (seq, expires_at) in e.offers_new.items()
        ]
        if ended_offers or new_offers:
            offer_store.write(self.conn, ended_offers, new_offers)
        if self._facts:
            journal.append(self.conn, self._facts)
        self.answers.write()

    def _is_new_booking(self, pair: Pair) -> bool:
        """Held now, and not the same row as before: never held, or deleted and re-added."""
        return not self._booked_before[pair] or pair in self._unbooked

    def committed(self) -> None:
        """After the COMMIT: bring the process's waiting-list copies up to date."""
        for event_id, from_version, change in self._line_changes:
            self._waiting_lists.changed(event_id, from_version, change)
