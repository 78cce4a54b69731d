"""A batch's view of one event's pre-queue (a scheduled on-sale's queued parties): its
users' entries read once, changed in memory, written once; or, at the opening, every
entry taken at once and the queue emptied."""

from sqlalchemy import Connection

from ..storage import queue as queue_store


class Queue:
    __slots__ = ("_cleared", "_dirty", "_entries", "_stored")

    def __init__(self, entries: dict[int, int]):
        self._entries: dict[int, int | None] = dict(entries)  # user -> tickets (None: left)
        self._stored = set(entries)  # users with a row as read
        self._dirty: set[int] = set()
        self._cleared = False

    @classmethod
    def read(cls, conn: Connection, event_id: int, users: list[int]) -> "Queue":
        return cls(queue_store.of_users(conn, event_id, users))

    def of(self, user_id: int) -> int | None:
        """The tickets the user is queued with, or None."""
        return self._entries.get(user_id)

    def put(self, user_id: int, tickets: int | None) -> None:
        """The user's party is queued with `tickets` now (None: not at all)."""
        self._entries[user_id] = tickets
        self._dirty.add(user_id)

    def take_all(self, conn: Connection, event_id: int) -> list[tuple[int, int]]:
        """Every queued party (user_id, tickets), this batch's changes included; the queue
        is empty afterwards."""
        found = dict(queue_store.everyone(conn, event_id))
        for user_id in self._dirty:
            found.pop(user_id, None)
            if (tickets := self._entries[user_id]) is not None:
                found[user_id] = tickets
        self._entries, self._dirty, self._cleared = {}, set(), True
        return list(found.items())

    def write(self, conn: Connection, event_id: int) -> None:
        if self._cleared:
            queue_store.clear(conn, event_id)
            self._stored = set()
        left, changed, joined = [], [], []
        for user_id in sorted(self._dirty):
            tickets = self._entries[user_id]
            if tickets is None:
                if user_id in self._stored:
                    left.append(user_id)
            elif user_id in self._stored:
                changed.append({"e": event_id, "u": user_id, "t": tickets})
            else:
                joined.append({"event_id": event_id, "user_id": user_id, "tickets": tickets})
        queue_store.write(conn, event_id, left, changed, joined)
